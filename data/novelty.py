"""How much of a dev/test split is new with respect to train, measured from the data alone.

Works on any dataset (no generator needed), so held-out scores can be reported the same way for
the embedded data, ATIS or MASSIVE:

- `pattern(example)`: the sentence skeleton. O-tagged tokens are kept (lowercased), every entity
  span becomes `<TYPE>`: `gọi cho anh Minh nhé` -> `gọi cho <CONTACT> nhé`.
- `held_out_flags(train, examples)`: True for each example whose skeleton never occurs in train,
  i.e. a phrasing the model never saw with any values. Strict: a new combination of seen parts
  (a seen prefix, a seen template, a seen suffix never used together) counts as held out, which
  is why about half of `phone-assistant`'s dev sentences are, although none uses a new template.
- `new_ngram_flags(train, examples)`: True for each example whose skeleton, with sentence
  boundaries, has a trigram never seen in train: a new word sequence somewhere, not only a new
  combination of seen parts (6% of `phone-assistant`'s dev sentences).
- `unseen_value_share(train, examples)`: the share of entity spans whose (type, lowercased text)
  never occurs in train.

All three count surface novelty: a typo, a missing diacritic or an abbreviation in an O word makes a
skeleton new, and in a value a value new. That is what a model meets, but it is not only held-out
phrasing; a generator that knows which phrasings it held out can record them (the embedded
`phone-assistant-wild` writes `held_out_phrasing` into its JSONL, read by `recorded_held_out`).
"""
from __future__ import annotations

import json
from pathlib import Path

from nlu_collapse.data.formats import Example


def spans(example: Example) -> list[tuple[str, str]]:
    """(type, lowercased text) of each entity span; an `I-X` that does not continue an X span starts one."""
    found: list[tuple[str, list[str]]] = []
    previous = "O"
    for token, tag in zip(example.tokens, example.tags):
        if tag != "O" and (tag.startswith("B-") or previous[2:] != tag[2:]):
            found.append((tag[2:], [token.lower()]))
        elif tag != "O":
            found[-1][1].append(token.lower())
        previous = tag
    return [(kind, " ".join(words)) for kind, words in found]


def pattern(example: Example) -> tuple[str, ...]:
    """The skeleton: O tokens lowercased, each entity span replaced by `<TYPE>`."""
    skeleton: list[str] = []
    previous = "O"
    for token, tag in zip(example.tokens, example.tags):
        if tag == "O":
            skeleton.append(token.lower())
        elif tag.startswith("B-") or previous[2:] != tag[2:]:
            skeleton.append(f"<{tag[2:]}>")
        previous = tag
    return tuple(skeleton)


def held_out_flags(train: list[Example], examples: list[Example]) -> list[bool]:
    """True for each example whose pattern never occurs in train."""
    seen = {pattern(ex) for ex in train}
    return [pattern(ex) not in seen for ex in examples]


def _ngrams(example: Example, n: int) -> list[tuple[str, ...]]:
    skeleton = ("<s>",) + pattern(example) + ("</s>",)
    return [skeleton[i:i + n] for i in range(len(skeleton) - n + 1)]


def new_ngram_flags(train: list[Example], examples: list[Example], n: int = 3) -> list[bool]:
    """True for each example whose pattern (with boundary markers) has an n-gram never seen in train."""
    seen = {gram for ex in train for gram in _ngrams(ex, n)}
    return [any(gram not in seen for gram in _ngrams(ex, n)) for ex in examples]


def unseen_value_share(train: list[Example], examples: list[Example]) -> float:
    """Share of the examples' entity spans whose (type, lowercased text) never occurs in train;
    0.0 when the examples have no spans (nothing in them is unseen)."""
    seen = {span for ex in train for span in spans(ex)}
    found = [span for ex in examples for span in spans(ex)]
    return sum(span not in seen for span in found) / len(found) if found else 0.0


def recorded_held_out(folder: Path) -> dict[str, list[bool]] | None:
    """The generator's own `held_out_phrasing` flags of a native JSONL folder's dev and test splits,
    or None when the data does not record them (any dataset not generated with them)."""
    flags: dict[str, list[bool]] = {}
    for split in ("dev", "test"):
        path = Path(folder) / f"{split}.jsonl"
        if not path.is_file():
            return None
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not records or not all(isinstance(r, dict) and isinstance(r.get("held_out_phrasing"), bool)
                                  for r in records):
            return None
        flags[split] = [r["held_out_phrasing"] for r in records]
    return flags
