"""What nlu_collapse.toolkit costs a healthy run: step time with and without it, side by side in one process.

    python bench/toolkit_cost.py                        # both loops, 6 rounds of 300 steps (about 2 minutes)
    python bench/toolkit_cost.py --write_docs           # and write it into docs/toolkit.md (docpage.py)

- plain loop: examples/plain_loop.py's model and data, the bare loop (forward, backward, clip, step)
  against the same loop with a CollapseMonitor at its defaults (log_every=10, task_grad_every=100, the
  replay closure handed in every step, the norm from clip_grad_norm_);
- Trainer: examples/hf_trainer_token_classification.py's tiny BERT, `Trainer` against `CollapseTrainer`
  with a CollapseCallback (log_every=10).
Rounds alternate the order (ABBA), so neither side always runs first; the ratio is of the medians of
the per-round seconds per step. Both use one thread, like the examples.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from nlu_collapse import commandline, docpage
from nlu_collapse.telemetry import keys

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "toolkit.md"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plain_seconds_per_step(example, data: Path, steps: int, monitored: bool) -> float:
    """The healthy run of examples/plain_loop.py, with or without the monitor: seconds per step."""
    from nlu_collapse.toolkit import CollapseMonitor, SentenceTask, TokenTask

    torch.manual_seed(0)
    vocab = {"<pad>": 0}
    train_set = example.read_split(data / "train.jsonl", vocab)
    seen = torch.bincount(train_set["tags"][train_set["tags"] >= 0], minlength=len(example.TAGS))
    model = example.Tagger(len(vocab), seen == 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    monitor = CollapseMonitor(model, [SentenceTask("intent", example.INTENTS), TokenTask("tags", example.TAGS)],
                              shared="encoder", log=lambda metrics, step: None) if monitored else None
    generator, n = torch.Generator().manual_seed(0), len(train_set["intent"])
    started = time.perf_counter()
    for step in range(steps):
        rows = torch.randperm(n, generator=generator)[:32]
        batch = {key: value[rows] for key, value in train_set.items()}
        if monitor is not None:
            monitor.begin_step()
        losses, logits = example.forward(model, batch, "healthy")
        if monitor is not None:
            monitor.task_gradients(losses)
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if monitor is not None:
            monitor.observe(loss, losses, logits, {"tags": batch["tags"], "intent": batch["intent"]},
                            closure=lambda: example.forward(model, batch, "healthy")[0], grad_norm=norm)
        optimizer.step()
        if monitor is not None:
            monitor.end_step()
    seconds = (time.perf_counter() - started) / steps
    if monitor is not None:
        assert not monitor.finish()[keys.COLLAPSED]
    return seconds


def trainer_seconds_per_step(example, data: Path, steps: int, monitored: bool, folder: Path) -> float:
    """examples/hf_trainer_token_classification.py's healthy run, Trainer or CollapseTrainer + callback."""
    from transformers import BertConfig, BertForTokenClassification, PrinterCallback, Trainer, TrainingArguments

    from nlu_collapse.toolkit import TokenTask
    from nlu_collapse.toolkit.hf import CollapseCallback, CollapseTrainer

    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    tokenizer = example.build_tokenizer(rows)
    examples = example.encode(rows, tokenizer)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=64, num_labels=len(example.TAGS))
    args = TrainingArguments(output_dir=str(folder), per_device_train_batch_size=32, max_steps=steps,
                             learning_rate=1e-3, report_to="none", save_strategy="no", logging_strategy="no",
                             disable_tqdm=True, use_cpu=True, seed=0)
    kind = CollapseTrainer if monitored else Trainer
    callbacks = [CollapseCallback([TokenTask("ner", example.TAGS)], log=lambda metrics, step: None)]
    callbacks = callbacks if monitored else []
    trainer = kind(model=BertForTokenClassification(config), args=args, train_dataset=examples,
                   data_collator=example.collate, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    output = trainer.train()
    return output.metrics["train_runtime"] / steps


def measure(run, rounds: int) -> tuple[float, float, list, list]:
    """ABBA rounds of run(monitored=False) and run(monitored=True): (median without, median with, all)."""
    without, with_ = [], []
    for index in range(rounds):
        for monitored in (False, True) if index % 2 == 0 else (True, False):
            (with_ if monitored else without).append(run(monitored))
    return statistics.median(without), statistics.median(with_), without, with_


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per measured run")
    docpage.add_write_docs(parser, PAGE, "toolkit-cost")
    args = commandline.parse(parser, argv)
    with docpage.printed_into_if(args.write_docs, PAGE, "toolkit-cost", docpage.command_line("bench/toolkit_cost.py", argv)):
        with docpage.measuring(threads=1):
            compare(args)


def compare(args: argparse.Namespace) -> None:
    plain, hf = load_example("plain_loop"), load_example("hf_trainer_token_classification")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        data = plain.write_data(folder, n_train=800, n_dev=50)
        hf_data = hf.write_data(folder / "ner.jsonl", n=640)
        with contextlib.redirect_stdout(io.StringIO()):
            plain_seconds_per_step(plain, data, 10, True)  # warm-up: first calls, allocator
            results = {
                "plain PyTorch loop, CollapseMonitor": measure(
                    lambda monitored: plain_seconds_per_step(plain, data, args.steps, monitored), args.rounds),
                "HF Trainer, CollapseCallback": measure(
                    lambda monitored: trainer_seconds_per_step(hf, hf_data, args.steps, monitored, folder / "hf"),
                    args.rounds)}
    for name, (without, with_, all_without, all_with) in results.items():
        rounds = " / ".join(", ".join(f"{s * 1e3:.2f}" for s in side) for side in (all_without, all_with))
        rows.append(f"| {name} | {without * 1e3:.2f} | {with_ * 1e3:.2f} | {with_ / without:.3f} | {rounds} |")
    print(f"{args.rounds} rounds of {args.steps} steps, one thread, torch {torch.__version__}\n")
    print("| healthy run | ms/step without | ms/step with | ratio | every round, without / with (ms) |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    commandline.run(main)
