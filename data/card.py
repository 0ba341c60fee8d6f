"""Print a dataset card: split sizes, label distributions, O share, the invalid-tag mask, how much of
dev/test is new with respect to train (data/novelty.py) and how imbalanced the data are.

    python -m data.card                              # the default embedded data, phone-assistant-wild
    python -m data.card --data=phone-assistant       # the templated embedded data
    python -m data.card --data path/to/atis          # any supported folder or file
"""
from __future__ import annotations

import argparse
import statistics
from collections import Counter
from pathlib import Path

from nlu_collapse import commandline
from nlu_collapse.data import DEFAULT_DATA, EMBEDDED, Dataset, load_dataset, materialize_embedded
from nlu_collapse.data.novelty import held_out_flags, new_ngram_flags, recorded_held_out, spans, unseen_value_share

RARE_INTENT_SHARE = 0.02  # intents under this share of train count as rare
RARE_TYPE_SPANS = 30      # entity types with fewer train spans count as rare


def _distribution(counter: Counter, total: int) -> str:
    return "\n".join(f"  {name:<28} {count:>6}  {count / total:6.1%}" for name, count in counter.most_common())


def _share(flags: list[bool]) -> str:
    return f"{sum(flags) / len(flags):.1%}"


def novelty_lines(dataset: Dataset, recorded: dict[str, list[bool]] | None = None) -> list[str]:
    """Dev/test against train: new skeletons, new skeleton trigrams, new entity values; and the
    generator's own held-out flags when the data record them."""
    train = dataset.splits["train"]
    lines = ["held out of train (data/novelty.py: pattern = O words + <TYPE> per span):"]
    for split in ("dev", "test"):
        examples = dataset.splits[split]
        n_spans = sum(len(spans(ex)) for ex in examples)
        lines.append(f"  {split + ':':<5} sentences with a pattern never seen in train "
                     f"{_share(held_out_flags(train, examples))}"
                     f", with a pattern trigram never seen {_share(new_ngram_flags(train, examples))}"
                     f"; entity spans with a value never seen in train {unseen_value_share(train, examples):.1%}"
                     f" of {n_spans}")
    if recorded is not None:
        lines.append("  held-out phrasing recorded by the generator (and the share of those / of the rest with a "
                     "pattern never seen in train):")
        for split, flags in recorded.items():
            unseen = held_out_flags(train, dataset.splits[split])
            held, rest = ([u for u, f in zip(unseen, flags) if f == side] for side in (True, False))
            lines.append(f"    {split + ':':<5} {_share(flags)} ({_share(held) if held else 'n/a'} / "
                         f"{_share(rest) if rest else 'n/a'})")
    return lines


def imbalance_lines(dataset: Dataset) -> list[str]:
    train = dataset.splits["train"]
    intents = Counter(ex.intent for ex in train)
    top, top_count = intents.most_common(1)[0]
    rare_intents = [name for name, count in intents.items() if count / len(train) < RARE_INTENT_SHARE]
    types = Counter(kind for ex in train for kind, _ in spans(ex))
    rare_types = sorted((count, kind) for kind, count in types.items() if count < RARE_TYPE_SPANS)
    lengths = [len(ex.tokens) for examples in dataset.splits.values() for ex in examples]
    return ["imbalance (train):",
            f"  largest intent {top} {top_count / len(train):.1%}; {len(rare_intents)} of {len(intents)} intents "
            f"under {RARE_INTENT_SHARE:.0%}",
            f"  {len(rare_types)} of {len(types)} entity types with under {RARE_TYPE_SPANS} spans"
            + (": " + ", ".join(f"{kind} {count}" for count, kind in rare_types) if rare_types else ""),
            f"sentence length in tokens (all splits): min {min(lengths)}, median {statistics.median(lengths):g}, "
            f"max {max(lengths)}"]


def card(dataset: Dataset, recorded: dict[str, list[bool]] | None = None) -> str:
    train = dataset.splits["train"]
    lines = [f"# dataset card: {dataset.name} ({dataset.data_format})", "",
             "splits: " + ", ".join(f"{s} {len(e)}" for s, e in dataset.splits.items())]
    intents = Counter(ex.intent for ex in train)
    lines += ["", f"intents in train ({len(intents)}; largest/smallest = "
              f"{max(intents.values()) / min(intents.values()):.1f}x):", _distribution(intents, len(train))]
    if dataset.labels.commands is None:
        lines += ["", "commands: none (the command head is disabled)"]
    else:
        commands = Counter(ex.command for ex in train)
        lines += ["", f"commands in train ({len(commands)}):", _distribution(commands, len(train))]
    tags = dataset.labels.tag_counts
    n_tokens = sum(tags.values())
    lines += ["", f"tags in train ({n_tokens} tokens, O share {tags['O'] / n_tokens:.1%}):",
              _distribution(tags, n_tokens)]
    lines += ["", "I- tags never seen in train (masked as invalid): " + (", ".join(dataset.labels.invalid_tags) or "none")]
    lines += ["", *novelty_lines(dataset, recorded), "", *imbalance_lines(dataset)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help=f"embedded name ({', '.join(EMBEDDED)}) or path")
    parser.add_argument("--data_format", default="auto", help="auto, jsonl, jointbert or massive")
    args = commandline.parse(parser, argv)
    dataset = load_dataset(args.data, args.data_format)
    folder = materialize_embedded(args.data) if args.data in EMBEDDED else Path(args.data)
    print(card(dataset, recorded_held_out(folder) if folder.is_dir() else None))


if __name__ == "__main__":
    commandline.run(main)  # a missing or malformed dataset: one line naming the file
