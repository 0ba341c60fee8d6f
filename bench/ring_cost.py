"""What the checkpoint ring (model/ring.py) costs a healthy default run: step time and disk bytes.

    .venv/bin/python bench/ring_cost.py                  # the default run (5 epochs, 625 steps), 2 rounds
    .venv/bin/python bench/ring_cost.py --ring_every=10  # another interval
    .venv/bin/python bench/ring_cost.py --write_docs     # and write it into docs/fixes.md (docpage.py)

Two measurements, both printed. In one run: the seconds the ring's writes took against the run's own
training-loop seconds (train.py's `perf/train_seconds`, which do not include them). Side by side: the
same run with the ring on and off (--ring_every=0), alternating, each timed over `Training.train`
(every step, the epoch-end evaluations and checkpoints). The disk cost is the ring folder's bytes at
the end of the run.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from nlu_collapse import commandline, docpage
from nlu_collapse.config import Config
from nlu_collapse.runfolder import RunFolder

PAGE = Path(__file__).resolve().parent.parent / "docs" / "fixes.md"


def timed_run(flags: list[str], out: Path, run_id: str) -> dict:
    from nlu_collapse import train

    training = train.Training.setup([f"--output_dir={out}", f"--run_id={run_id}", "--wandb_mode=disabled", *flags])
    started = time.perf_counter()
    training.train()
    wall = time.perf_counter() - started
    training.test()
    steps, ring = training.state.step, training.ring
    disk = sum(p.stat().st_size for p in RunFolder(out / run_id).ring_steps().values())
    return {"steps": steps, "train_wall": wall, "loop_seconds": training.state.train_seconds,
            "ring_seconds": ring.seconds, "ring_writes": ring.writes, "ring_file_bytes": ring.bytes,
            "ring_disk_bytes": disk}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ring_every", type=int, default=Config.ring_every)
    parser.add_argument("--ring_keep", type=int, default=Config.ring_keep)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--flags", default="", help="more train.py flags, space-separated (e.g. --max_steps=300)")
    docpage.add_write_docs(parser, PAGE, "ring-cost")
    args = commandline.parse(parser, argv)
    with docpage.printed_into_if(args.write_docs, PAGE, "ring-cost", docpage.command_line("bench/ring_cost.py", argv)):
        measure(args)
    return 0


def measure(args: argparse.Namespace) -> None:
    common = [f"--threads={args.threads}", *args.flags.split()]
    on_flags = [*common, f"--ring_every={args.ring_every}", f"--ring_keep={args.ring_keep}"]
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            on = timed_run(on_flags, Path(tmp), f"on-{round_}")
            off = timed_run([*common, "--ring_every=0"], Path(tmp), f"off-{round_}")
            rounds.append((on, off))
            print(f"round {round_ + 1}: ring on {on['train_wall']:.2f} s, off {off['train_wall']:.2f} s for "
                  f"{on['steps']} steps; in the ring-on run the ring's {on['ring_writes']} writes took "
                  f"{on['ring_seconds']:.3f} s against {on['loop_seconds']:.2f} s of training loop", flush=True)
    on, _ = rounds[-1]
    in_run = [r['ring_seconds'] / r['loop_seconds'] for r, _ in rounds]
    side = [a['train_wall'] / b['train_wall'] - 1 for a, b in rounds]
    mib = 1024 ** 2
    print(f"\nring every {args.ring_every} steps, {args.ring_keep} kept, {on['steps']} steps, {args.threads} threads\n")
    print("| measure | value |\n|---|---|")
    print(f"| ring writes per run | {on['ring_writes']} (the initial state and every {args.ring_every} steps) |")
    print(f"| ring write time / training-loop time, same run | {', '.join(f'{x:.2%}' for x in in_run)} "
          f"(median {statistics.median(in_run):.2%}) |")
    print(f"| mean time per ring write | {1000 * on['ring_seconds'] / on['ring_writes']:.1f} ms |")
    step = statistics.median(b['loop_seconds'] / b['steps'] for _, b in rounds)
    write = on['ring_seconds'] / on['ring_writes']
    print(f"| a write against the steps between two writes: mean write / ({args.ring_every} x median step time of "
          f"the ring-off runs, {1000 * step:.1f} ms) | {write / (args.ring_every * step):.2%} |")
    print(f"| train() wall time, ring on / off - 1, alternating runs | {', '.join(f'{x:+.2%}' for x in side)} |")
    print(f"| one ring checkpoint (model, AdamW state, scheduler, RNG, train state) | "
          f"{on['ring_file_bytes'] / mib:.2f} MiB |")
    print(f"| ring folder at the end of the run | {on['ring_disk_bytes'] / mib:.2f} MiB |")


if __name__ == "__main__":
    commandline.run(main)
