"""Label vocabularies built from the training split, and the invalid-label mask.

Entity tags: `O` first (so a collapsed model's argmax 0 reads as "no entity"), then
`B-X`, `I-X` for every entity type X seen in train, types sorted. Intents and commands
are sorted, so the first intent of an assistant's list is index 0 (`add-contacts` here).

Invalid tags: every `I-X` that never occurs in train (for the embedded data the one-token
types PHONE, ACTION, MODE, PLATFORM). These are what the model masks.

Labels that appear in dev/test but not in train map to UNKNOWN: ignored by the loss
(the model cannot be trained on them) but kept as their original strings for evaluation,
where they always count as errors.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from nlu_collapse.data.formats import Example

log = logging.getLogger(__name__)

UNKNOWN = -100  # the ignore index of torch's losses


@dataclass
class Vocab:
    names: list[str]
    index: dict[str, int] = field(init=False)

    def __post_init__(self):
        self.index = {name: i for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def encode(self, name: str) -> int:
        return self.index.get(name, UNKNOWN)


@dataclass
class LabelSpace:
    intents: Vocab
    commands: Vocab | None  # None: the data has no command labels, the command head is disabled
    tags: Vocab
    tag_counts: Counter      # train counts per tag
    invalid_tags: list[str]  # I- tags never seen in train: masked by the model

    @property
    def invalid_mask(self) -> list[bool]:
        invalid = set(self.invalid_tags)
        return [name in invalid for name in self.tags.names]


def build_label_space(train: list[Example]) -> LabelSpace:
    tag_counts = Counter(tag for ex in train for tag in ex.tags)
    types = sorted({tag[2:] for tag in tag_counts if tag != "O"})
    tags = ["O"] + [f"{prefix}-{t}" for t in types for prefix in ("B", "I")]
    has_commands = [ex.command is not None for ex in train]
    if any(has_commands) and not all(has_commands):
        missing = has_commands.index(False)
        raise ValueError(f"train sentence {missing + 1} has no command while others do "
                         "(expected a command for every sentence or for none)")
    return LabelSpace(
        intents=Vocab(sorted({ex.intent for ex in train})),
        commands=Vocab(sorted({ex.command for ex in train})) if all(has_commands) else None,
        tags=Vocab(tags),
        tag_counts=tag_counts,
        invalid_tags=[t for t in tags if t.startswith("I-") and tag_counts[t] == 0],
    )


def masked_gold(labels: LabelSpace, examples: list[Example]) -> Counter:
    """Gold tags of `examples` that the model masks (I- tags train never has), with their counts."""
    invalid = set(labels.invalid_tags)
    return Counter(tag for ex in examples for tag in ex.tags if tag in invalid)


def count_unknown(labels: LabelSpace, split: str, examples: list[Example]) -> Counter:
    """Labels of a dev/test split that train never saw; logs one warning with the counts."""
    unknown = Counter()
    for ex in examples:
        unknown["intent"] += labels.intents.encode(ex.intent) == UNKNOWN
        if labels.commands is not None:
            unknown["command"] += labels.commands.encode(ex.command) == UNKNOWN
        unknown["tag"] += sum(labels.tags.encode(t) == UNKNOWN for t in ex.tags)
    unknown = +unknown
    if unknown:
        log.warning("%s: labels unseen in train (mapped to UNKNOWN, ignored by the loss, "
                    "counted as errors in evaluation): %s", split, dict(unknown))
    return unknown


def label_differences(recorded: dict, labels: LabelSpace) -> list[str]:
    """How `labels` differ from the label names a run recorded (config.json `labels`), one phrase per
    label kind, e.g. "intent labels differ from the run's: renamed 'call' -> 'phone_call'"."""
    found = []
    for field_name, kind, vocab in (("intents", "intent", labels.intents), ("commands", "command", labels.commands),
                                    ("tags", "tag", labels.tags)):
        old, new = list(recorded.get(field_name) or []), list(vocab.names) if vocab is not None else []
        if old == new:
            continue
        removed, added = [n for n in old if n not in new], [n for n in new if n not in old]
        if removed and len(removed) == len(added):
            what = "renamed " + ", ".join(f"{a!r} -> {b!r}" for a, b in zip(removed, added))
        else:
            parts = [f"added {added}"] * bool(added) + [f"removed {removed}"] * bool(removed)
            what = "; ".join(parts) or "the same names in another order"
        found.append(f"{kind} labels differ from the run's: {what}")
    return found
