"""Measured cost of the per-step telemetry and of the training loop, side by side in one run.

    .venv/bin/pip install -r bench/requirements.txt    # accelerate, for the HF Trainer comparison
    .venv/bin/python bench/bench.py                    # about 4 minutes on 2 cores
    .venv/bin/python bench/bench.py --steps=150 --repeats=2   # quicker, noisier
    .venv/bin/python bench/bench.py --ablation         # also the 24-run sweep at 1 and 2 workers (~17 min)
    .venv/bin/python bench/bench.py --forensics        # only: what --forensics=first costs a healthy run

Every comparison uses the same model, data, batch size, step count and thread count; runs of the
sides alternate, and ratios use each side's best of `--repeats` (the run least disturbed by the
rest of the machine; shared 2-core machines vary by 20% between identical runs, and every
measurement is printed). Training throughput comes from
train.py's own `perf/steps_per_second` (the training loop only: batching, forward, backward,
optimizer, telemetry, logging; not start-up or evaluation).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from telemetry import keys

ROOT = Path(__file__).resolve().parent.parent


def train_rate(flags: list[str], steps: int, threads: int, out: Path) -> float:
    """steps/s of train.py's loop, in-process."""
    import train

    summary = train.main([f"--max_steps={steps}", "--epochs=100", f"--threads={threads}", f"--output_dir={out}", *flags])
    return summary[keys.PERF_STEPS_PER_SECOND]


def trainer_rate(steps: int, threads: int, out: Path) -> float:
    """steps/s of Hugging Face `Trainer` on the same model, data and loss."""
    import torch
    from transformers import Trainer, TrainingArguments

    import train
    from config import Config
    from data import load_dataset
    from model import encode
    from model.tokenization import collate

    torch.set_num_threads(threads)
    cfg = Config()
    dataset = load_dataset(cfg.data)
    tokenizer = train.load_tokenizer(cfg, dataset, None)
    encoded = encode(dataset.splits["train"], tokenizer, dataset.labels, cfg.max_length)
    criterion, _ = train.build_criterion(cfg, dataset.labels)

    class WithLoss(torch.nn.Module):
        """Trainer wants the loss from forward: the same MultiTaskLoss as train.py, epoch 0 lambdas."""

        def __init__(self):
            super().__init__()
            self.nlu = train.build_model(cfg, dataset.labels, len(tokenizer))

        def forward(self, input_ids, attention_mask, tags, intent, command):
            batch = {"tags": tags, "intent": intent, "command": command}
            return {"loss": criterion(self.nlu(input_ids, attention_mask), batch, 0)[0]}

    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=cfg.batch_size, max_steps=steps,
                             learning_rate=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=int(0.1 * steps),
                             lr_scheduler_type="linear", max_grad_norm=cfg.grad_clip, logging_steps=steps,
                             save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0, seed=0,
                             disable_tqdm=True, remove_unused_columns=False)
    trainer = Trainer(model=WithLoss(), args=args, train_dataset=encoded,
                      data_collator=lambda items: collate(items, tokenizer.pad_token_id))
    metrics = trainer.train().metrics
    return steps / metrics["train_runtime"]


def alternate(sides: dict, repeats: int) -> dict[str, list[float]]:
    """Every measurement of each side, the sides interleaved to share the machine's drift."""
    results = {name: [] for name in sides}
    for _ in range(repeats):
        for name, measure in sides.items():
            results[name].append(measure())
    return results


def subprocess_costs(threads: int, out: Path) -> dict[str, float]:
    """Start-up and import time of a fresh process, and wall time and peak memory of one default run."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import train, wandb"], cwd=ROOT, env=env, check=True)
    imports = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run([sys.executable, "train.py", f"--output_dir={out}", "--run_id=bench-run"], cwd=ROOT, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = json.loads((out / "bench-run" / "summary.json").read_text())
    return {"imports": imports, "wall": wall, "train": summary[keys.PERF_TRAIN_SECONDS], "peak_mib": peak_mib}


def ablation_wall(workers: int, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "sweeps" / "local.py"), str(ROOT / "sweeps" / "ablation.yaml"),
                    f"--workers={workers}", f"--out={out}"], cwd=ROOT, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def forensics_cost(n: int, threads: int, repeats: int, out: Path) -> None:
    """A healthy run with --forensics=first (the default) against --forensics=off, alternated, and the
    per-step hook alone (what every healthy step pays: an RNG-state copy and one finiteness check)."""
    import timeit

    import torch

    from telemetry.forensics import Forensics

    full = ["--wandb_mode=offline", "--log_every=1", "--task_grad_every=50"]
    rates = {"first": [], "off": []}
    for repeat in range(repeats):  # ABBA order: neither side always runs first in a round
        for mode in ("first", "off") if repeat % 2 == 0 else ("off", "first"):
            rates[mode].append(train_rate([*full, f"--forensics={mode}"], n, threads, out / mode))
    print("\n| healthy run, full telemetry | steps/s (best of N) | median | all measurements |\n|---|---|---|---|")
    for mode, values in rates.items():
        print(f"| --forensics={mode} | {max(values):.1f} | {statistics.median(values):.1f} | "
              f"{', '.join(f'{v:.1f}' for v in values)} |")
    print(f"\ntime per step, --forensics=first / off (best of {repeats}): "
          f"{max(rates['off']) / max(rates['first']):.3f}")
    forensics = Forensics("first", out)
    loss, norm = torch.tensor(1.0), torch.tensor(1.0)

    def healthy_step():
        forensics.begin_step(1)
        forensics.check(None, None, None, 0, None, loss, norm, {})

    calls = 20000
    seconds = min(timeit.repeat(healthy_step, number=calls, repeat=3)) / calls
    print(f"the hook alone on a healthy step: {seconds * 1e6:.1f} us "
          f"({seconds * max(rates['off']):.2%} of a step at {max(rates['off']):.1f} steps/s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="training steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per side (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for every side")
    parser.add_argument("--ablation", action="store_true", help="also time the 24-run ablation at 1 and 2 workers")
    parser.add_argument("--forensics", action="store_true", help="only the cost of --forensics=first on a healthy run")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    os.environ["WANDB_SILENT"] = "true"
    tmp = Path(tempfile.mkdtemp(prefix="nlu-bench-"))
    n, t = args.steps, args.threads
    print(f"# bench: {n} steps x {args.repeats} repeats, {t} threads, batch 32, tiny encoder, embedded data")
    print(f"# command: python bench/bench.py --steps={n} --repeats={args.repeats} --threads={t}"
          + (" --ablation" if args.ablation else "") + (" --forensics" if args.forensics else ""))
    if args.forensics:
        forensics_cost(n, t, args.repeats, tmp)
        return

    full = ["--wandb_mode=offline", "--log_every=1", "--task_grad_every=50"]
    rates = alternate({
        "full telemetry, W&B offline, every step": lambda: train_rate(full, n, t, tmp / "full"),
        "telemetry and logging off": lambda: train_rate(["--wandb_mode=disabled", f"--log_every={10**9}",
                                                         "--task_grad_every=0"], n, t, tmp / "off"),
        "full telemetry + task-gradient norms every step": lambda: train_rate(
            ["--wandb_mode=offline", "--log_every=1", "--task_grad_every=1"], n, t, tmp / "task1"),
        "HF Trainer, same model/data/loss": lambda: trainer_rate(n, t, tmp / "trainer"),
    }, args.repeats)
    print("\n| loop | steps/s (best of N) | median | all measurements |\n|---|---|---|---|")
    for name, values in rates.items():
        print(f"| {name} | {max(values):.1f} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
    rates = {name: max(values) for name, values in rates.items()}  # best of N: the least disturbed run
    full_rate, off_rate = rates["full telemetry, W&B offline, every step"], rates["telemetry and logging off"]
    task_rate, trainer = rates["full telemetry + task-gradient norms every step"], rates["HF Trainer, same model/data/loss"]
    print("\n| ratio | measured | goal |\n|---|---|---|")
    print(f"| time per step, full telemetry / off | {off_rate / full_rate:.3f} | <= 1.10 |")
    print(f"| time per step, task grads every step / every 50 | {full_rate / task_rate:.3f} | (price of the option) |")
    print(f"| steps/s, this loop with full telemetry / HF Trainer | {full_rate / trainer:.3f} | >= 1.0 |")
    print(f"| steps/s, this loop without telemetry / HF Trainer | {off_rate / trainer:.3f} | |")

    costs = subprocess_costs(t, tmp / "subprocess")
    print("\n| one default run in a fresh process (python train.py, W&B offline) | seconds | share |\n|---|---|---|")
    print(f"| whole process | {costs['wall']:.1f} | 100% |")
    print(f"| start-up: interpreter + imports (torch, transformers, wandb) | {costs['imports']:.1f} | "
          f"{costs['imports'] / costs['wall']:.0%} |")
    print(f"| training loop | {costs['train']:.1f} | {costs['train'] / costs['wall']:.0%} |")
    rest = costs["wall"] - costs["imports"] - costs["train"]
    print(f"| data, tokenizer, model set-up, W&B init/finish, evaluation, checkpoints | {rest:.1f} | "
          f"{rest / costs['wall']:.0%} |")
    print(f"\npeak memory (max RSS) of one run: {costs['peak_mib']:.0f} MiB")

    if args.ablation:
        print("\n| 24-run ablation (sweeps/local.py sweeps/ablation.yaml) | wall s |\n|---|---|")
        for workers in (1, 2):
            print(f"| {workers} worker(s) | {ablation_wall(workers, tmp / f'ablation-{workers}'):.0f} |", flush=True)


if __name__ == "__main__":
    main()
