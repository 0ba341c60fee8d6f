"""Measured cost of the per-step telemetry and of the training loop, side by side in one run.

    .venv/bin/pip install -r bench/requirements.txt    # accelerate, for the HF Trainer comparison
    .venv/bin/python bench/bench.py                    # about 7 minutes on 2 cores
    .venv/bin/python bench/bench.py --steps=150 --repeats=2   # quicker, noisier
    .venv/bin/python bench/bench.py --ablation         # also the 24-run ablation, 2 workers, forked runs (~10 min)
    .venv/bin/python bench/bench.py --ablation --launchers=fork,subprocess   # and with a fresh interpreter per run
    .venv/bin/python bench/bench.py --forensics        # only: what --forensics=first costs a healthy run
    .venv/bin/python bench/bench.py --device=cuda --precision=bf16   # on a GPU machine
    .venv/bin/python bench/bench.py --goals            # everything the speed goals need (~25 min): rates, the
                                                       # ablation, the main job from a fresh clone, the test suite
    .venv/bin/python bench/bench.py --goals --write_docs   # and write it into docs/performance.md (docpage.py)

Every comparison uses the same model, data, batch size, step count and thread count; runs of the
sides alternate, and each ratio is printed from each side's best of `--repeats` (the run least
disturbed by the rest of the machine) and within each round (shared 2-core machines vary by 20%
between identical runs; every measurement is printed). The bare loop (`bare_rate`) is the ceiling
of any loop on this model. Training throughput comes from
train.py's own `perf/steps_per_second` (the training loop only: batching, forward, backward,
optimizer, telemetry, logging; not start-up or evaluation). The per-step breakdown comes from the
named ranges train.py opens around each phase of a step (`phase`), summed by torch.profiler.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nlu_collapse import commandline, docpage
from nlu_collapse.runfolder import RunFolder
from nlu_collapse.telemetry import keys

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "performance.md"


def train_rate(flags: list[str], steps: int, threads: int, out: Path) -> float:
    """steps/s of train.py's loop, in-process."""
    from nlu_collapse import train
    summary = train.main([f"--max_steps={steps}", "--epochs=100", f"--threads={threads}", f"--output_dir={out}", *flags])
    return summary[keys.PERF_STEPS_PER_SECOND]


def bare_rate(steps: int, threads: int, out: Path, device: str = "cpu", precision: str = "fp32",
              losses: list | None = None, flags: list[str] = ()) -> float:
    """steps/s of the least a loop around this model must do: train.py's batches, forward, loss,
    backward, clipping, optimizer and schedule, and nothing else (no telemetry, no record, no W&B, no
    progress bar). Its ratio to HF Trainer is the ceiling of any loop's ratio to Trainer on this model.
    `losses` receives each step's total loss (a test compares them with train.py's: the same work);
    `flags` are more train.py flags (another --data)."""
    import torch

    from nlu_collapse import train
    from nlu_collapse.model.tokenization import collate

    cfg, _, folder, _ = train.resolve_run([f"--max_steps={steps}", "--epochs=100", f"--threads={threads}",
                                               f"--output_dir={out}", "--wandb_mode=disabled", f"--device={device}",
                                               f"--precision={precision}", *flags])
    run = train.build(cfg, folder, resuming=False)
    model, optimisation, train_set = run.model, run.optimisation, run.encoded["train"]
    per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        epoch, first = divmod(step, per_epoch)
        if first == 0:
            order = train.epoch_order(len(train_set), cfg.seed, epoch)
        chosen = order[first * cfg.batch_size:(first + 1) * cfg.batch_size].tolist()
        batch = collate([train_set[i] for i in chosen], run.tokenizer.pad_token_id)
        batch = {k: v.to(run.device, non_blocking=True) for k, v in batch.items()}
        with run.autocast():
            logits = model(batch["input_ids"], batch["attention_mask"])
        total, _, _ = run.criterion(logits, batch, epoch)
        optimisation.backward(total)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimisation.step()
        if losses is not None:
            losses.append(total.item())
    total.item()  # on a GPU: wait for the last step
    return steps / (time.perf_counter() - start)


def trainer_rate(steps: int, threads: int, out: Path, device: str = "cpu", precision: str = "fp32") -> float:
    """steps/s of Hugging Face `Trainer` on the same model, data and loss."""
    import torch
    from transformers import Trainer, TrainingArguments

    from nlu_collapse import train
    from nlu_collapse.config import Config
    from nlu_collapse.data import load_dataset
    from nlu_collapse.model import encode
    from nlu_collapse.model.tokenization import collate

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
                             save_strategy="no", report_to=[], use_cpu=device == "cpu", bf16=precision == "bf16", dataloader_num_workers=0, seed=0,
                             disable_tqdm=True, remove_unused_columns=False)
    trainer = Trainer(model=WithLoss(), args=args, train_dataset=encoded,
                      data_collator=lambda items: collate(items, tokenizer.pad_token_id))
    metrics = trainer.train().metrics
    return steps / metrics["train_runtime"]


def alternate(sides: dict, repeats: int) -> dict[str, list[float]]:
    """Every measurement of each side, the sides interleaved to share the machine's drift (what the
    runs print, train.py's verdict lines and Trainer's log dicts, is kept out of the bench's tables)."""
    results = {name: [] for name in sides}
    for _ in range(repeats):
        for name, measure in sides.items():
            with contextlib.redirect_stdout(io.StringIO()):
                results[name].append(measure())
    return results


def subprocess_costs(threads: int, out: Path, flags: list[str] = ()) -> dict[str, float]:
    """Start-up and import time of a fresh process, and wall time and peak memory of one default run."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import nlu_collapse.train, wandb"], cwd=ROOT, env=env, check=True)
    imports = time.perf_counter() - start
    start = time.perf_counter()
    measured = subprocess.run([sys.executable, str(ROOT / "bench" / "peak_rss.py"), sys.executable, "train.py",
                               f"--output_dir={out}", "--run_id=bench-run", *flags],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              check=True)
    wall = time.perf_counter() - start
    result = json.loads(measured.stdout.strip().splitlines()[-1])  # train.py prints its verdict line before
    if result["returncode"] != 0:
        raise RuntimeError(f"train.py {' '.join(flags)} exited with {result['returncode']}")
    peak_mib = result["peak_mib"]
    summary = RunFolder(out / "bench-run").read_summary()
    return {"imports": imports, "wall": wall, "train": summary[keys.PERF_TRAIN_SECONDS], "peak_mib": peak_mib}


PHASES = ("collate", "host_transfer", "forward", "loss", "backward", "clip", "optimizer", "forensics", "telemetry",
          "logging")


def phase_breakdown(flags: list[str], steps: int, threads: int, out: Path) -> dict[str, float]:
    """Milliseconds per step in each named phase of train.py's step, under torch.profiler (which adds
    its own small cost per op), plus `step`: the loop's measured time per step."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from nlu_collapse import train
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof, contextlib.redirect_stdout(io.StringIO()):
        summary = train.main([f"--max_steps={steps}", "--epochs=100", f"--threads={threads}", f"--output_dir={out}",
                              *flags])
    ms = {}
    for event in prof.key_averages():
        name = event.key.split("/")[0]
        if name in PHASES or event.key.startswith("telemetry/"):
            ms[event.key] = ms.get(event.key, 0.0) + event.cpu_time_total / 1000 / steps
            if "/" in event.key:
                ms[name] = ms.get(name, 0.0) + event.cpu_time_total / 1000 / steps
    ms["step"] = 1000 / summary[keys.PERF_STEPS_PER_SECOND]
    return ms


def optimizer_choice(threads: int, steps: int = 50) -> dict[str, float]:
    """ms per AdamW step, fused vs foreach, on the default model's parameters with the same gradients;
    and whether the two leave bitwise identical weights."""
    import torch

    from nlu_collapse import train
    from nlu_collapse.config import Config
    from nlu_collapse.data import load_dataset

    torch.set_num_threads(threads)
    cfg = Config()
    dataset = load_dataset(cfg.data)
    vocab = len(train.load_tokenizer(cfg, dataset, None))
    results, weights = {}, {}
    for kind in ("fused", "foreach"):
        torch.manual_seed(0)
        model = train.build_model(cfg, dataset.labels, vocab)
        params = [p for p in model.parameters()]
        for p in params:
            p.grad = torch.randn_like(p) * 1e-2
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, **{kind: True})
        optimizer.step()  # state allocation out of the timing
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.step()
        results[kind] = (time.perf_counter() - start) / steps * 1000
        weights[kind] = torch.cat([p.detach().reshape(-1) for p in params])
    results["identical"] = bool(torch.equal(weights["fused"], weights["foreach"]))
    return results


def ablation(workers: int, launcher: str, out: Path) -> dict[str, float]:
    """Wall time of the 24-run ablation, and the sum of its runs' own training-loop seconds."""
    from nlu_collapse.data import DEFAULT_DATA
    from nlu_collapse.runfolder import SweepFolder

    start = time.perf_counter()  # the main job's sweep of the default dataset (analysis/reproduce.py names it so)
    subprocess.run([sys.executable, str(ROOT / "sweeps" / "local.py"), str(ROOT / "sweeps" / "ablation.yaml"),
                    f"--workers={workers}", f"--out={out}", f"--launcher={launcher}", f"--data={DEFAULT_DATA}"],
                   cwd=ROOT, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    runs = SweepFolder(out / f"ablation-{DEFAULT_DATA}").recorded_runs().values()
    summaries = [run.read_summary() for run in runs if run.summary.exists()]
    loop = sum(summary.get(keys.PERF_TRAIN_SECONDS, 0.0) for summary in summaries)
    return {"wall": wall, "loop": loop, "runs": len(summaries)}


def forensics_cost(n: int, threads: int, repeats: int, out: Path) -> None:
    """A healthy run with --forensics=first (the default) against --forensics=off, alternated, and the
    per-step hook alone (what every healthy step pays: an RNG-state copy and one finiteness check)."""
    import timeit

    import torch

    from nlu_collapse.telemetry.forensics import Forensics

    full = ["--wandb_mode=offline", "--log_every=1", "--task_grad_every=50"]
    rates = {"first": [], "off": []}
    for repeat in range(repeats):  # ABBA order: neither side always runs first in a round
        for mode in ("first", "off") if repeat % 2 == 0 else ("off", "first"):
            with contextlib.redirect_stdout(io.StringIO()):
                rates[mode].append(train_rate([*full, f"--forensics={mode}"], n, threads, out / mode))
    print("\n| healthy run, full telemetry | steps/s (best of N) | median | all measurements |\n|---|---|---|---|")
    for mode, values in rates.items():
        print(f"| --forensics={mode} | {max(values):.1f} | {statistics.median(values):.1f} | "
              f"{', '.join(f'{v:.1f}' for v in values)} |")
    print(f"\ntime per step, --forensics=first / off (best of {repeats}): "
          f"{max(rates['off']) / max(rates['first']):.3f}")
    forensics = Forensics("first")
    loss, norm = torch.tensor(1.0), torch.tensor(1.0)

    def healthy_step():
        forensics.begin_step(1)
        forensics.check(None, None, loss, norm, {})

    calls = 20000
    seconds = min(timeit.repeat(healthy_step, number=calls, repeat=3)) / calls
    print(f"the hook alone on a healthy step: {seconds * 1e6:.1f} us "
          f"({seconds * max(rates['off']):.2%} of a step at {max(rates['off']):.1f} steps/s)")


def readme_command(marker: str) -> str:
    """The README's own command line that runs `marker` (its set-up included): what a new user types."""
    lines = [line.strip() for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()]
    return next(line for line in lines if line.startswith("python3 -m venv") and marker in line)


def main_job(out: Path) -> dict[str, float]:
    """The README's main-job command in a fresh clone of the committed code (HEAD), each `&&` part timed:
    venv, installation, then the main job itself (whose own output says where its seconds went)."""
    clone = out / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    parts = readme_command("analysis/reproduce.py").split(" && ")
    seconds = {}
    for part in parts:
        start = time.perf_counter()
        done = subprocess.run(part, shell=True, cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"})
        seconds[part] = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{part!r} exited {done.returncode}: {done.stdout[-2000:]}")
        if "reproduce.py" in part:  # its closing lines: where its seconds went
            lines = done.stdout.splitlines()
            start = next((i for i, line in enumerate(lines) if line.startswith("where the seconds went")), len(lines))
            print("\n" + "\n".join(lines[start:]))
    return seconds


def test_suite() -> float:
    """Seconds of the README's test command without its set-up (this checkout's venv), on this machine."""
    command = readme_command("pytest").split(" && ")[-1]
    start = time.perf_counter()
    done = subprocess.run(command, shell=True, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    print(f"\ntest suite ({command}): {seconds:.0f} s, {done.stdout.strip().splitlines()[-1]}")
    return seconds


def print_goals(goals: list[tuple[str, str, str, bool]]) -> None:
    """Each goal the speed issue set, with this run's figure and whether it is met."""
    print("\n| goal (this run of the bench, this machine) | measured | goal | met |\n|---|---|---|---|")
    for label, figure, goal, met in goals:
        print(f"| {label} | {figure} | {goal} | {'met' if met else 'not met'} |")


def print_rates(rates: dict[str, list[float]]) -> None:
    """Every measurement; the best of N is the run the rest of the machine disturbed least."""
    print("\n| loop | steps/s (best of N) | median | all measurements |\n|---|---|---|---|")
    for name, values in rates.items():
        print(f"| {name} | {max(values):.1f} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |")


def print_ratios(measured: dict[str, list[float]], rows: list[tuple[str, str, str, str]]) -> None:
    """Each ratio of rates (numerator side / denominator side) from the sides' best runs, and beside
    it the same ratio within each round (the two sides measured minutes apart): their spread is how
    far this machine's noise lets one run of the bench resolve a ratio."""
    print("\n| ratio (one run of this bench) | best / best | each round | goal |\n|---|---|---|---|")
    for label, top, bottom, goal in rows:
        rounds = ", ".join(f"{a / b:.3f}" for a, b in zip(measured[top], measured[bottom]))
        print(f"| {label} | {max(measured[top]) / max(measured[bottom]):.3f} | {rounds} | {goal} |")


def print_breakdown(ms: dict[str, float]) -> None:
    print("\n| phase of a step (full telemetry, under torch.profiler) | ms/step | share |\n|---|---|---|")
    for name in PHASES:
        print(f"| {name} | {ms.get(name, 0.0):.2f} | {ms.get(name, 0.0) / ms['step']:.1%} |")
        for sub in sorted(k for k in ms if k.startswith(name + "/")):
            print(f"| &nbsp;&nbsp;{sub} | {ms[sub]:.2f} | {ms[sub] / ms['step']:.1%} |")
    rest = ms["step"] - sum(ms.get(name, 0.0) for name in PHASES)
    print(f"| rest of the loop (batch order, health check, progress bar) | {rest:.2f} | {rest / ms['step']:.1%} |")
    print(f"| whole step | {ms['step']:.2f} | 100% |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="training steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per side (best and median reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for every side")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where every side trains")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="train.py --precision")
    parser.add_argument("--ablation", action="store_true", help="also the 24-run ablation with 2 workers")
    parser.add_argument("--launchers", default="fork", help="with --ablation: comma-separated sweeps/local.py "
                        "launchers to time, e.g. fork,subprocess (default: fork)")
    parser.add_argument("--ablation_out", type=Path, default=None,
                        help="with --ablation: the sweeps' output folder (default: a temporary one; runs already "
                             "finished there are skipped, so give a fresh one to time them)")
    parser.add_argument("--compile", action="store_true", help="also a default run with --compile against without")
    parser.add_argument("--forensics", action="store_true", help="only the cost of --forensics=first on a healthy run")
    parser.add_argument("--main_job", action="store_true",
                        help="also the README's main-job command in a fresh clone of HEAD, installation included")
    parser.add_argument("--tests", action="store_true", help="also the README's test command (without set-up)")
    parser.add_argument("--goals", action="store_true", help="--ablation, --main_job and --tests, then every goal")
    docpage.add_write_docs(parser, PAGE, "bench")
    args = commandline.parse(parser, argv)
    command = docpage.command_line("bench/bench.py", argv)
    with docpage.printed_into_if(args.write_docs, PAGE, "bench", command):
        bench(args, parser, command)


def bench(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> None:
    if args.goals:
        args.ablation = args.main_job = args.tests = True
    goals = []
    import logging

    logging.basicConfig(level=logging.WARNING)
    os.environ["WANDB_SILENT"] = "true"
    tmp = Path(tempfile.mkdtemp(prefix="nlu-bench-"))
    n, t = args.steps, args.threads
    print(f"# bench: {n} steps x {args.repeats} repeats, {t} threads, batch 32, tiny encoder, default data, "
          f"{args.device} {args.precision}")
    print(f"# command: {command}")
    if args.forensics:
        forensics_cost(n, t, args.repeats, tmp)
        return
    device = [f"--device={args.device}", f"--precision={args.precision}"]
    full = ["--wandb_mode=offline", "--log_every=1", "--task_grad_every=50", *device]
    no_wandb = ["--wandb_mode=disabled", "--log_every=1", "--task_grad_every=50", *device]
    off = ["--wandb_mode=disabled", f"--log_every={10**9}", "--task_grad_every=0", *device]
    sides = {
        "full": ("full telemetry, W&B offline, every step", lambda: train_rate(full, n, t, tmp / "full")),
        "no_wandb": ("full telemetry, W&B disabled (local record only)",
                     lambda: train_rate(no_wandb, n, t, tmp / "no_wandb")),
        "off": ("telemetry and logging off", lambda: train_rate(off, n, t, tmp / "off")),
        "bare": ("bare loop: forward, loss, backward, clip, optimizer only",
                 lambda: bare_rate(n, t, tmp / "bare", args.device, args.precision)),
        "trainer": ("HF Trainer, same model/data/loss",
                    lambda: trainer_rate(n, t, tmp / "trainer", args.device, args.precision)),
        "grouped": ("full telemetry, --group_by_length (opt-in)",
                    lambda: train_rate([*full, "--group_by_length=True"], n, t, tmp / "grouped")),
    }
    measured = alternate({key: measure for key, (_, measure) in sides.items()}, args.repeats)
    print_rates({label: measured[key] for key, (label, _) in sides.items()})
    best = {key: max(values) for key, values in measured.items()}
    goals += [("steps/s, full telemetry and W&B offline / HF Trainer (best / best)", f"{best['full'] / best['trainer']:.3f}",
               ">= 1.0", best["full"] / best["trainer"] >= 1.0),
              ("time per step, full telemetry / off (best / best)", f"{best['off'] / best['full']:.3f}", "<= 1.10",
               best["off"] / best["full"] <= 1.10)]
    print_ratios(measured, [
        ("steps/s, this loop with full telemetry / HF Trainer", "full", "trainer", ">= 1.0"),
        ("time per step, full telemetry / off", "off", "full", "<= 1.10"),
        ("steps/s, this loop without telemetry / HF Trainer", "off", "trainer", ""),
        ("ceiling of any loop on this model: bare loop / HF Trainer", "bare", "trainer", ""),
        ("of the telemetry cost: computing it (W&B disabled / off)", "off", "no_wandb", ""),
        ("of the telemetry cost: W&B's offline rows (full / W&B disabled)", "no_wandb", "full", ""),
        ("steps/s, --group_by_length / default batches (full telemetry)", "grouped", "full", "(opt-in: other batches)"),
    ])

    print_breakdown(phase_breakdown(full, n, t, tmp / "profile"))
    if args.device == "cpu":
        opt = optimizer_choice(t)
        print(f"\nAdamW step on the default model: fused {opt['fused']:.2f} ms, foreach {opt['foreach']:.2f} ms "
              f"(foreach/fused {opt['foreach'] / opt['fused']:.2f}); bitwise identical weights: {opt['identical']}")

    costs = subprocess_costs(t, tmp / "subprocess", device)
    print("\n| one default run in a fresh process (python train.py, W&B offline) | seconds | share |\n|---|---|---|")
    print(f"| whole process | {costs['wall']:.1f} | 100% |")
    print(f"| start-up: interpreter + imports (torch, transformers, wandb) | {costs['imports']:.1f} | "
          f"{costs['imports'] / costs['wall']:.0%} |")
    print(f"| training loop | {costs['train']:.1f} | {costs['train'] / costs['wall']:.0%} |")
    rest = costs["wall"] - costs["imports"] - costs["train"]
    print(f"| data, tokenizer, model set-up, W&B init/finish, evaluation, checkpoints | {rest:.1f} | "
          f"{rest / costs['wall']:.0%} |")
    print(f"\npeak memory (max RSS) of one run: {costs['peak_mib']:.0f} MiB (goal <= 640)")
    goals.append(("peak memory (max RSS) of one default run", f"{costs['peak_mib']:.0f} MiB", "<= 640 MiB",
                  costs["peak_mib"] <= 640))
    if args.compile:
        compiled = subprocess_costs(t, tmp / "compiled", [*device, "--compile=True"])
        print(f"\n--compile (opt-in), one default run: whole process {compiled['wall']:.1f} s vs {costs['wall']:.1f} s, "
              f"training loop {compiled['train']:.1f} s vs {costs['train']:.1f} s (includes compilation)")

    if args.ablation:
        print("\n| 24-run ablation, 2 workers (sweeps/local.py sweeps/ablation.yaml) | wall s | sum of runs' "
              "perf/train_seconds | efficiency: wall / (sum / 2) | goal |\n|---|---|---|---|---|")
        launchers = args.launchers.split(",")
        if args.ablation_out and len(launchers) > 1:
            parser.error("--ablation_out takes one launcher (each launcher needs its own fresh folder)")
        for launcher in launchers:
            result = ablation(2, launcher, args.ablation_out or tmp / launcher)
            efficiency = result["wall"] / (result["loop"] / 2)
            print(f"| --launcher={launcher} ({result['runs']} runs) | {result['wall']:.0f} | {result['loop']:.0f} | "
                  f"{efficiency:.3f} | <= 1.15, wall <= 180 s |", flush=True)
            goals += [(f"24-run ablation of the default dataset, 2 workers, --launcher={launcher}: wall",
                       f"{result['wall']:.0f} s", "<= 180 s", result["wall"] <= 180),
                      (f"its efficiency: wall / (sum of the runs' loops / 2), --launcher={launcher}",
                       f"{efficiency:.3f}", "<= 1.15", efficiency <= 1.15)]
            print(f"\nfloor of the wall time with zero per-run overhead (--launcher={launcher}): the runs' training "
                  f"loops alone, {result['loop']:.0f} s / 2 workers = {result['loop'] / 2:.0f} s", flush=True)

    if args.main_job:
        seconds = main_job(tmp / "main-job")
        print("\n| the README's main-job command, fresh clone of HEAD, each part | seconds |\n|---|---|")
        for part, value in seconds.items():
            print(f"| `{part}` | {value:.0f} |")
        total = sum(seconds.values())
        print(f"| whole command | {total:.0f} ({total / 60:.1f} min) |")
        goals.append(("the main job from a fresh clone, installation included", f"{total:.0f} s ({total / 60:.1f} min)",
                      "<= 8 min", total <= 480))
    if args.tests:
        seconds = test_suite()
        goals.append(("the test suite (README's command, set-up excluded)", f"{seconds:.0f} s", "<= 4 min",
                      seconds <= 240))
    print_goals(goals)


if __name__ == "__main__":
    commandline.run(main)
