"""Run a W&B sweep YAML locally, in parallel, with no account: the offline twin of `wandb agent`.

    python sweeps/local.py sweeps/ablation.yaml                 # 24 runs, 2 workers, W&B offline
    python sweeps/local.py sweeps/baseline.yaml --data=path/to/atis --workers=2
    python sweeps/local.py sweeps/mechanism.yaml --dry_run      # print the command of every run

The runner lives in `runner/`: planning (the YAML -> runs, with W&B's own sweep engine and agent
helpers, so each run's argv is what `wandb agent` would run), launching (fork server or subprocess;
runs die with the runner) and the pool (workers, the manifest, resume triage). `${interpreter}` is
this Python, so the runs use the same environment (`wandb agent` runs the first `python` on PATH:
activate the venv before starting it).

All runs of a sweep share one folder (laid out in `runfolder.SweepFolder`) and one W&B group:

    <out>/<sweep>[-<data>]/sweep.json        the sweep, every planned run and its status
    <out>/<sweep>[-<data>]/runs/<run_id>/    train.py's run records (what analysis/ reads)
    <out>/<sweep>[-<data>]/runs/wandb/       W&B offline runs (`wandb sync`, `wandb leet`)
    <out>/<sweep>[-<data>]/logs/<run_id>.log each run's console output

Each run's verdict is printed as it ends (`run <id> [<varied parameters>]: healthy, test entity F1 0.578`;
collapsed, not learned yet, or failed with why), and the count of each outcome at the end.
A failed run is recorded and the others go on. Running the same command again skips the runs
that finished and resumes the ones that stopped after a checkpoint; a second runner on the same
folder exits at once naming the holder's pid.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from nlu_collapse import commandline
from nlu_collapse.runfolder import SweepFolder
from nlu_collapse.runner.planning import SweepError, plan
from nlu_collapse.runner.pool import execute, outcome_counts
from nlu_collapse.safeio import LockedError

ROOT = Path(__file__).resolve().parent.parent


def _interrupt(signum=None, frame=None):
    """SIGTERM is handled like Ctrl-C."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path, help="a sweep YAML, e.g. sweeps/ablation.yaml")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (default 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "results", help="where sweep folders go (default results/)")
    parser.add_argument("--data", default=None, help="dataset passed to every run as --data (default: the YAML's)")
    parser.add_argument("--count", type=int, default=None, help="number of runs of a random sweep")
    parser.add_argument("--dry_run", action="store_true", help="print each run's command and exit")
    parser.add_argument("--launcher", choices=("fork", "subprocess"), default="fork",
                        help="fork: each run is forked from one process that imported torch, transformers and "
                             "wandb once (same argv and environment, no start-up per run; Linux/macOS); "
                             "subprocess: a fresh interpreter per run (default: fork)")
    parser.add_argument("--fresh", action="store_true",
                        help="start over the runs that cannot resume (every checkpoint damaged); the earlier "
                             "attempt moves to its previous/ folder")
    args = commandline.parse(parser, argv)
    if args.workers < 1:
        parser.error(f"--workers={args.workers}: expected a positive integer")
    if not args.dry_run:
        commandline.writable_folder(args.out, "--out")  # before planning: one line naming the flag
    try:
        sweep = plan(args.sweep, args.out.resolve(), args.data, args.count)
    except SweepError as err:
        parser.error(str(err))
    if args.dry_run:
        for run in sweep["runs"]:
            print(run["run_id"], " ".join(run["args"]))
        return 0
    start = time.perf_counter()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        status = execute(sweep, args.workers, args.fresh, args.launcher)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the same command resumes {sweep['name']}", file=sys.stderr)
        return 130
    except (LockedError, OSError) as err:  # another runner owns the folder, or it cannot be written
        print(f"error: {commandline.one_line(err)}", file=sys.stderr)
        return 1
    folder = SweepFolder(sweep["folder"])
    outcomes = ", ".join(f"{n} {name}" for name, n in outcome_counts(sweep, status).items())
    print(f"\n{sweep['name']}: {len(status)} runs: {outcomes} in {time.perf_counter() - start:.0f} s")
    print(f"  run records:   {folder.runs}")
    print(f"  report:        python analysis/report.py {folder.path}")
    print(f"  browse:        wandb leet {folder.wandb}")
    print(f"  upload:        wandb sync {folder.wandb}   (after `wandb login`)")
    return 0 if all(s == "finished" for s in status.values()) else 1


if __name__ == "__main__":
    commandline.run(main, "interrupted: nothing started yet")  # Ctrl-C while planning, a bad --out: one line
