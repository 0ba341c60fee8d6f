"""The outcome (healthy, collapsed, not learned yet) of the default configuration at short budgets on
both embedded datasets: the measurement behind telemetry/health.py's rule that a budget ending inside
the initial majority-class phase is `not learned yet`, never `collapsed`.

    .venv/bin/python bench/outcomes.py                      # 5 budgets x 2 seeds x 2 datasets, ~3 min
    .venv/bin/python bench/outcomes.py --steps 60 --seeds 0
    .venv/bin/python bench/outcomes.py --write_docs         # and write it into docs/verdict.md (docpage.py)
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from pathlib import Path

from nlu_collapse import commandline, docpage, train
from nlu_collapse.data import EMBEDDED
from nlu_collapse.telemetry import keys

PAGE = Path(__file__).resolve().parent.parent / "docs" / "verdict.md"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 40, 60, 100, 150], help="--max_steps budgets")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    docpage.add_write_docs(parser, PAGE, "outcomes")
    args = commandline.parse(parser, argv)
    with (docpage.printed_into_if(args.write_docs, PAGE, "outcomes", docpage.command_line("bench/outcomes.py", argv)),
          docpage.measuring()):
        measure(args.steps, args.seeds)


def measure(budgets: list[int], seeds: list[int]) -> None:
    print("| data | max_steps | seed | outcome | collapse step |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as out:
        for data in EMBEDDED:
            for steps in budgets:
                for seed in seeds:
                    with contextlib.redirect_stdout(io.StringIO()):  # the run's own verdict line
                        summary = train.main([f"--data={data}", f"--max_steps={steps}", f"--seed={seed}",
                                              f"--output_dir={out}", "--wandb_mode=disabled", "--task_grad_every=0"])
                    print(f"| {data} | {steps} | {seed} | {summary[keys.OUTCOME]} | "
                          f"{summary[keys.COLLAPSE_STEP] or '-'} |", flush=True)


if __name__ == "__main__":
    commandline.run(main)
