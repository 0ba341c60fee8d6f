"""A Hugging Face Trainer run watched by nlu_collapse.toolkit's CollapseCallback: three runs of a tiny,
randomly initialised BertForTokenClassification (built from a BertConfig, its word-level tokenizer built
here: nothing is downloaded) on imbalanced NER data this file writes.

    python examples/hf_trainer_token_classification.py               # the three runs, each with its verdict
    python examples/hf_trainer_token_classification.py --run=nan     # one of them: healthy, nan or collapse
    python examples/write_docs.py                                    # regenerate their output in docs/toolkit.md

- healthy: the model's own cross-entropy; its first steps tag every token O (an episode, recovered);
- nan: `compute_loss_func` is a dense focal loss over logits whose unseen tags are masked with -inf
  (0 * -inf in every masked column): collapsed at step 1, its origin this file's focal line;
- collapse: the learning rate warms up to 0.05, far past what this model takes: it learns, then every
  token falls back to O with a finite loss: collapsed, with that evidence.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (BertConfig, BertForTokenClassification, PreTrainedTokenizerFast, PrinterCallback,
                          TrainingArguments)
from transformers.utils import logging as hf_logging

from nlu_collapse.toolkit import TokenTask, verdict_lines
from nlu_collapse.toolkit.hf import CollapseCallback, CollapseTrainer

RUNS = ("healthy", "nan", "collapse")
TYPES = {"PER": (["anna", "bob", "carla", "dmitri", "eve"], 0.5), "LOC": (["paris", "rome", "oslo", "lima"], 0.3),
         "ORG": (["acme corp", "globex inc", "initech"], 0.15), "DATE": (["monday", "june first"], 0.05)}
# The label schema has I- tags for every type; train never holds I-PER or I-LOC (one-word values): masked below.
TAGS = ["O"] + [f"{prefix}-{kind}" for kind in TYPES for prefix in ("B", "I")]
FILLERS = "the a to in at with met saw from went said on".split()


def write_data(path: Path, n: int, seed: int = 0) -> Path:
    """JSONL of sentences: most tokens O, entity types with falling frequency, values at varying positions."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words, tags = rng.sample(FILLERS, rng.randint(1, 3)), []
        tags = ["O"] * len(words)
        for _ in range(rng.randint(1, 2)):
            kind = rng.choices(list(TYPES), [share for _, share in TYPES.values()])[0]
            value = rng.choice(TYPES[kind][0]).split()
            fillers = rng.sample(FILLERS, rng.randint(1, 3))
            words += value + fillers
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(value) - 1) + ["O"] * len(fillers)
        rows.append({"words": words, "tags": tags})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def build_tokenizer(rows: list[dict]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the data's words (one token per word)."""
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])}
    for row in rows:
        for word in row["words"]:
            vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]")


def encode(rows: list[dict], tokenizer) -> list[dict]:
    """Token ids with [CLS] ... [SEP], and each word's tag on its first token (-100 elsewhere)."""
    examples = []
    for row in rows:
        encoded = tokenizer(row["words"], is_split_into_words=True)
        labels, previous = [], None
        for word in encoded.word_ids():
            labels.append(-100 if word is None or word == previous else TAGS.index(row["tags"][word]))
            previous = word
        examples.append({"input_ids": encoded["input_ids"], "labels": labels})
    return examples


def collate(examples: list[dict]) -> dict[str, torch.Tensor]:
    length = max(len(e["input_ids"]) for e in examples)
    pad = lambda values, fill: [v + [fill] * (length - len(v)) for v in values]  # noqa: E731
    ids = torch.tensor(pad([e["input_ids"] for e in examples], 0))
    labels = torch.tensor(pad([e["labels"] for e in examples], -100))
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": labels}


def masked_focal_loss(unseen: torch.Tensor, gamma: float = 2.0):
    """compute_loss_func: a softmax focal loss in the dense one-hot form over logits whose unseen tags
    are masked with -inf: -(onehot * (1 - p)^gamma * log p).sum(-1)."""
    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"].masked_fill(unseen, float("-inf"))  # tags train never has
        valid = labels != -100
        log_p = F.log_softmax(logits[valid], -1)
        onehot = F.one_hot(labels[valid], len(TAGS)).float()
        per_token = -(onehot * (1 - log_p.exp()) ** gamma * log_p).sum(-1)  # a masked column: 0 * -inf = NaN
        return per_token.mean()
    return loss


def train(run: str, data: Path, epochs: float, folder: Path, log=None, seed: int = 0) -> dict:
    """One Trainer run; returns the CollapseCallback's verdict."""
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    tokenizer = build_tokenizer(rows)
    examples = encode(rows, tokenizer)
    seen = torch.zeros(len(TAGS), dtype=torch.bool)
    seen[[label for e in examples for label in e["labels"] if label >= 0]] = True
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=64, num_labels=len(TAGS))
    model = BertForTokenClassification(config)
    args = TrainingArguments(output_dir=str(folder / run), per_device_train_batch_size=32, num_train_epochs=epochs,
                             learning_rate=0.05 if run == "collapse" else 1e-3, warmup_steps=0.5 if run == "collapse"
                             else 0.0, lr_scheduler_type="constant_with_warmup", report_to="none", save_strategy="no",
                             logging_strategy="no", seed=seed, disable_tqdm=True, use_cpu=True)
    callback = CollapseCallback([TokenTask("ner", TAGS, outside="O")], log=log, log_every=1, window=5,
                                stop_on_dead=True, name=run)
    loss = masked_focal_loss(~seen) if run == "nan" else None  # None: the model's own cross-entropy
    trainer = CollapseTrainer(model=model, args=args, train_dataset=examples, data_collator=collate,
                              callbacks=[callback], compute_loss_func=loss)
    trainer.remove_callback(PrinterCallback)  # its end-of-training line: the verdicts below say more
    trainer.train()
    return callback.verdict


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", choices=RUNS, action="append", help="one run (repeatable); default: all three")
    parser.add_argument("--epochs", type=float, default=5, help="training epochs per run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the same numbers on every machine
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # transformers' notes on a randomly initialised model: expected here
    verdicts, lines = {}, []
    try:
        with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="transformers")
            data = write_data(Path(folder) / "train.jsonl", n=640)
            for run in args.run or RUNS:
                verdicts[run] = train(run, data, args.epochs, Path(folder))
                lines += [f"--- {run}", *verdict_lines(verdicts[run])]
    finally:
        hf_logging.set_verbosity(verbosity)
    print("\n".join(lines))
    return verdicts


if __name__ == "__main__":
    main()
