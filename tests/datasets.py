"""Datasets the tests write: the embedded generator at small sizes, and one unlike it.

`write_imbalanced`: one intent carries over 70% of the sentences, a long tail of rare intents and of entity
types (some with a handful of spans), multi-token spans. The words carry real signal (each intent has
its own cue words, each entity type its own values), so a healthy model can learn it; the imbalance
makes it spend its first steps on the majority class.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from nlu_collapse.data.formats import write_jsonl_split
from nlu_collapse.data.phone_assistant import generate


def write_generated(folder: Path, sizes: tuple[int, int, int]) -> Path:
    """The embedded generator (seed 5) at `sizes` (train, dev, test), as native JSONL in `folder`."""
    for split, examples in generate(seed=5, sizes=sizes).items():
        write_jsonl_split(folder / f"{split}.jsonl", examples)
    return folder

SYLLABLES = "ba be bi bo bu ca co cu da de di do du ga go gu ha he hi ho hu la le li lo lu ma me mi mo mu".split()


def _word(rng: random.Random, syllables: int = 2) -> str:
    return "_".join(rng.choice(SYLLABLES) for _ in range(syllables))


def _spec(rng: random.Random, n_intents: int, n_types: int) -> tuple[list, list, list]:
    # Intent shares: 75% for the first (about 72% of a sampled split), the rest a geometric tail.
    tail = [0.5 ** i for i in range(n_intents - 1)]
    shares = [0.75] + [0.25 * t / sum(tail) for t in tail]
    intents = [(f"intent_{i:02d}", share, [_word(rng) for _ in range(3)],
                [(f"cmd_{i:02d}_{j}", _word(rng)) for j in range(1 + i % 3)]) for i, share in enumerate(shares)]
    # Entity types: frequency falls off so the last types have only a few spans; every third is multi-token.
    types = [(f"T{k:02d}", 0.9 ** k, [_word(rng, 1 + (k % 3 == 0)) for _ in range(6)], 1 + (k % 3 == 0) * 2)
             for k in range(n_types)]
    fillers = [_word(rng, 1) for _ in range(30)]
    return intents, types, fillers


def _sentence(rng: random.Random, intents, types, fillers) -> dict:
    name, _, cues, commands = rng.choices(intents, weights=[i[1] for i in intents])[0]
    tokens, tags = [], []

    def add(words, label=None):
        for position, word in enumerate(words):
            tokens.append(word)
            tags.append("O" if label is None else f"{'B' if position == 0 else 'I'}-{label}")

    add([rng.choice(fillers) for _ in range(rng.randint(0, 2))])
    command, command_cue = rng.choice(commands)
    add([rng.choice(cues), command_cue])
    for _ in range(rng.randint(0, 3)):
        label, _, values, max_len = rng.choices(types, weights=[t[1] for t in types])[0]
        add([rng.choice(values) for _ in range(rng.randint(1, max_len))], label)
        add([rng.choice(fillers) for _ in range(rng.randint(0, 2))])
    return {"tokens": tokens, "tags": tags, "intent": name, "command": command}


def write_imbalanced(folder: Path, n_train: int = 800, n_eval: int = 200, n_intents: int = 10,
                     n_types: int = 24, seed: int = 7) -> Path:
    """Write train/dev/test.jsonl into `folder`; returns the folder."""
    rng = random.Random(seed)
    spec = _spec(rng, n_intents, n_types)
    folder.mkdir(parents=True, exist_ok=True)
    for split, size in (("train", n_train), ("dev", n_eval), ("test", n_eval)):
        rows = [_sentence(rng, *spec) for _ in range(size)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                               encoding="utf-8")
    return folder
