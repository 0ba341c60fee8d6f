"""Print a dataset card: split sizes, label distributions, O share and the invalid-tag mask.

    python -m data.card                      # the embedded phone-assistant data
    python -m data.card --data path/to/atis  # any supported folder or file
"""
from __future__ import annotations

import argparse
from collections import Counter

from data import DEFAULT_DATA, Dataset, load_dataset


def _distribution(counter: Counter, total: int) -> str:
    return "\n".join(f"  {name:<28} {count:>6}  {count / total:6.1%}" for name, count in counter.most_common())


def card(dataset: Dataset) -> str:
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
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="dataset name or path")
    parser.add_argument("--data_format", default="auto", help="auto, jsonl, jointbert or massive")
    args = parser.parse_args(argv)
    print(card(load_dataset(args.data, args.data_format)))


if __name__ == "__main__":
    main()
