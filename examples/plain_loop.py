"""A plain PyTorch loop watched by nlu_collapse.toolkit.CollapseMonitor: three runs of a small multi-task
model (a GRU tagger with an intent head, not this repo's model) on imbalanced data this file writes.

    python examples/plain_loop.py                  # the three runs, each with its verdict
    python examples/plain_loop.py --run=nan        # one of them: healthy, nan or collapse
    python examples/write_docs.py                  # regenerate their output in docs/toolkit.md

- healthy: cross-entropy; the first steps predict the majority intent and every tag O (an episode, recovered);
- nan: a dense focal loss over logits whose unseen tags are masked with -inf (0 * -inf in every masked
  column): collapsed at step 1, its origin this file's focal line;
- collapse: from the third epoch on the loader shuffles the labels apart from the words (a data bug): the
  model learns, then falls back to the label prior, every tag O and one intent, with a finite loss:
  collapsed, with that evidence.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nlu_collapse.toolkit import CollapseMonitor, SentenceTask, TokenTask, verdict_lines

RUNS = ("healthy", "nan", "collapse")
INTENTS = ["play_music", "set_alarm", "call", "weather", "navigate", "timer"]  # play_music: ~70% of sentences
ENTITIES = {"song": ["yesterday", "imagine", "hey jude"], "time": ["seven", "noon", "six thirty"],
            "person": ["anna", "bob", "carla diaz"], "city": ["paris", "rome", "new york"],
            "artist": ["adele", "queen"]}
# The label schema names every B-/I- tag; train never holds some of them (I-artist, ...): masked below.
TAGS = ["O"] + [f"{prefix}-{entity}" for entity in ENTITIES for prefix in ("B", "I")]
SLOTS = {"play_music": ["song", "artist"], "set_alarm": ["time"], "call": ["person"], "weather": ["city"],
         "navigate": ["city"], "timer": ["time"]}
FILLERS = "please now the a for me can you with".split()


def write_data(folder: Path, n_train: int, n_dev: int, seed: int = 0) -> Path:
    """Imbalanced JSONL splits: one intent ~70%, a long tail; each sentence has cue words and slot values."""
    rng = random.Random(seed)
    weights = [0.7] + [0.3 * 0.5 ** i / sum(0.5 ** j for j in range(5)) for i in range(5)]
    for split, size in (("train", n_train), ("dev", n_dev)):
        rows = []
        for _ in range(size):
            intent = rng.choices(INTENTS, weights)[0]
            words = [intent.split("_")[0]] + rng.sample(FILLERS, rng.randint(0, 2))
            tags = ["O"] * len(words)
            for entity in SLOTS[intent][:rng.randint(1, len(SLOTS[intent]))]:
                value = rng.choice(ENTITIES[entity]).split()
                value = value if entity != "artist" else value[:1]  # artists are one word: I-artist never occurs
                fillers = rng.sample(FILLERS, rng.randint(1, 2))
                words += value + fillers
                tags += [f"B-{entity}"] + [f"I-{entity}"] * (len(value) - 1) + ["O"] * len(fillers)
            rows.append({"words": words, "tags": tags, "intent": intent})
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def read_split(path: Path, vocab: dict[str, int]) -> dict[str, torch.Tensor]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    length = max(len(r["words"]) for r in rows)
    words = torch.zeros(len(rows), length, dtype=torch.long)
    tags = torch.full((len(rows), length), -100)  # -100: padding, no label
    for i, row in enumerate(rows):
        words[i, :len(row["words"])] = torch.tensor([vocab.setdefault(w, len(vocab)) for w in row["words"]])
        tags[i, :len(row["tags"])] = torch.tensor([TAGS.index(t) for t in row["tags"]])
    return {"words": words, "tags": tags, "intent": torch.tensor([INTENTS.index(r["intent"]) for r in rows])}


class Tagger(nn.Module):
    """Embedding -> GRU (shared) -> a tag per token and an intent per sentence."""

    def __init__(self, vocab_size: int, unseen_tags: torch.Tensor, dim: int = 32):
        super().__init__()
        self.encoder = nn.ModuleDict({"embed": nn.Embedding(vocab_size, dim, padding_idx=0),
                                      "gru": nn.GRU(dim, dim, batch_first=True, bidirectional=True)})
        self.tags = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, len(TAGS)))
        self.intent = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, len(INTENTS)))
        self.register_buffer("unseen_tags", unseen_tags)

    def forward(self, words: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden, _ = self.encoder["gru"](self.encoder["embed"](words))  # (B, T, 2D)
        tags = self.tags(hidden).masked_fill(self.unseen_tags, float("-inf"))  # tags train never has
        return {"tags": tags, "intent": self.intent(hidden.mean(1))}


def dense_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Softmax focal loss in the dense one-hot form: -(onehot * (1 - p)^gamma * log p).sum(-1)."""
    valid = target != -100
    logits, target = logits[valid], target[valid]
    log_p = F.log_softmax(logits, -1)
    onehot = F.one_hot(target, logits.shape[-1]).float()
    per_token = -(onehot * (1 - log_p.exp()) ** gamma * log_p).sum(-1)  # a masked column: 0 * -inf = NaN
    return per_token.mean()


def forward(model: Tagger, batch: dict, run: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(loss per task, logits per task) of one batch."""
    logits = model(batch["words"])
    tag_loss = dense_focal_loss if run == "nan" else lambda z, y: F.cross_entropy(z, y, ignore_index=-100)
    losses = {"tags": tag_loss(logits["tags"].flatten(0, 1), batch["tags"].flatten()),
              "intent": F.cross_entropy(logits["intent"], batch["intent"])}
    return losses, logits


def train(run: str, data: Path, steps: int, log=None, seed: int = 0) -> dict:
    """One run of `steps` optimizer steps (a dev evaluation after each epoch); returns the monitor's verdict."""
    torch.manual_seed(seed)
    vocab = {"<pad>": 0}
    train_set, dev_set = read_split(data / "train.jsonl", vocab), read_split(data / "dev.jsonl", vocab)
    seen = torch.bincount(train_set["tags"][train_set["tags"] >= 0], minlength=len(TAGS))
    model = Tagger(len(vocab), seen == 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    monitor = CollapseMonitor(model, [SentenceTask("intent", INTENTS), TokenTask("tags", TAGS, outside="O")],
                              shared="encoder", log=log, log_every=1, task_grad_every=10, window=5,
                              stop_on_dead=True, name=run)
    generator, batch_size, n = torch.Generator().manual_seed(seed), 32, len(train_set["intent"])
    epoch = 0
    while monitor.steps < steps and not monitor.should_stop:
        order = torch.randperm(n, generator=generator)
        # collapse: from the third epoch on, the labels are shuffled apart from the words (a loader bug)
        label_order = torch.randperm(n, generator=generator) if run == "collapse" and epoch >= 2 else order
        for start in range(0, n - batch_size + 1, batch_size):
            rows, label_rows = order[start:start + batch_size], label_order[start:start + batch_size]
            batch = {"words": train_set["words"][rows], "tags": train_set["tags"][label_rows],
                     "intent": train_set["intent"][label_rows]}
            with monitor.step():
                losses, logits = forward(model, batch, run)
                monitor.task_gradients(losses)
                loss = sum(losses.values())
                optimizer.zero_grad()
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                gold = {"tags": batch["tags"], "intent": batch["intent"]}
                monitor.observe(loss, losses, predictions=logits, gold=gold,
                                closure=lambda: forward(model, batch, run)[0], grad_norm=norm)
                optimizer.step()
            if monitor.should_stop or monitor.steps >= steps:
                break
        with torch.no_grad():
            monitor.evaluate(model(dev_set["words"]), {"tags": dev_set["tags"], "intent": dev_set["intent"]}, epoch)
        epoch += 1
    return monitor.finish()


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", choices=RUNS, action="append", help="one run (repeatable); default: all three")
    parser.add_argument("--steps", type=int, default=150, help="optimizer steps per run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the same numbers on every machine
    verdicts, lines = {}, []
    with tempfile.TemporaryDirectory() as folder:
        data = write_data(Path(folder), n_train=800, n_dev=200)
        for run in args.run or RUNS:
            verdicts[run] = train(run, data, args.steps)
            lines += [f"--- {run}", *verdict_lines(verdicts[run])]
    print("\n".join(lines))
    return verdicts


if __name__ == "__main__":
    main()
