"""Whether length-grouped batches may become the default: sweeps/group-by-length.yaml on each embedded
dataset, then, paired by seed, the difference grouped - default of the dev scores at the epoch each run
kept (dev entity F1, dev intent F1) with a 95% t-interval, and of the training loop's steps/s.

    python bench/group_by_length.py                      # both embedded datasets, 2 workers (~4 min)
    python bench/group_by_length.py --out=results        # reuse finished runs there
    python bench/group_by_length.py --write_docs         # and write it into docs/performance.md (docpage.py)

The rule (issue: speed): the default changes only if neither dev score is worse on either dataset,
where worse means the paired interval lies below zero, and the point estimate is not below -0.01.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from nlu_collapse import commandline, docpage
from nlu_collapse.analysis.records import load_local
from nlu_collapse.analysis.stats import fmt_interval, paired_interval
from nlu_collapse.analysis.tune import DEV_ENTITY_F1, dev_scores
from nlu_collapse.data import EMBEDDED
from nlu_collapse.runfolder import SweepFolder
from nlu_collapse.telemetry import keys

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "sweeps" / "group-by-length.yaml"
PAGE = ROOT / "docs" / "performance.md"
DEV_INTENT_F1 = keys.split_metric("dev", keys.macro_f1("intent"))
TOLERANCE = 0.01


def deltas(folder: SweepFolder) -> dict[str, list[float]]:
    """grouped - default for each seed that finished both ways."""
    by_seed: dict[int, dict[bool, tuple[dict, dict]]] = {}
    for run in load_local(folder.path):
        if run.status == "finished":
            by_seed.setdefault(run.seed, {})[bool(run.config.get("group_by_length"))] = (dev_scores(run), run.summary)
    out = {"dev entity F1": [], "dev intent F1": [], "steps/s ratio": []}
    for pair in by_seed.values():
        if len(pair) == 2:
            (dev_on, sum_on), (dev_off, sum_off) = pair[True], pair[False]
            out["dev entity F1"].append(dev_on[DEV_ENTITY_F1] - dev_off[DEV_ENTITY_F1])
            out["dev intent F1"].append(dev_on[DEV_INTENT_F1] - dev_off[DEV_INTENT_F1])
            out["steps/s ratio"].append(sum_on[keys.PERF_STEPS_PER_SECOND] / sum_off[keys.PERF_STEPS_PER_SECOND])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--workers", type=int, default=2)
    docpage.add_write_docs(parser, PAGE, "group-by-length")
    args = commandline.parse(parser, argv)
    command = docpage.command_line("bench/group_by_length.py", argv)
    with docpage.printed_into_if(args.write_docs, PAGE, "group-by-length", command):
        compare(args, command)
    return 0


def compare(args: argparse.Namespace, command: str) -> None:
    print(f"# command: {command}")
    print("\n| dataset | seeds paired | dev entity F1, grouped - default | dev intent F1, grouped - default | "
          "steps/s, grouped / default (mean) | worse? |\n|---|---|---|---|---|---|")
    worse_anywhere = False
    for data in EMBEDDED:
        subprocess.run([sys.executable, str(ROOT / "sweeps" / "local.py"), str(SWEEP), f"--workers={args.workers}",
                        f"--out={args.out}", f"--data={data}"], check=False, stdout=subprocess.DEVNULL)
        found = deltas(SweepFolder(args.out / f"{SWEEP.stem}-{data}"))
        intervals = {name: paired_interval(values) for name, values in found.items() if name != "steps/s ratio"}
        worse = [name for name, (mean, _, high, _) in intervals.items() if high < 0 or mean < -TOLERANCE]
        worse_anywhere = worse_anywhere or bool(worse) or len(found["dev entity F1"]) < 3
        ratio = sum(found["steps/s ratio"]) / max(len(found["steps/s ratio"]), 1)
        print(f"| {data} | {len(found['dev entity F1'])} | {fmt_interval(*intervals['dev entity F1'][:3])} | "
              f"{fmt_interval(*intervals['dev intent F1'][:3])} | {ratio:.2f} | {', '.join(worse) or 'no'} |")
    print(f"\nverdict: --group_by_length {'stays opt-in' if worse_anywhere else 'may become the default'} "
          f"(worse: interval below 0 or mean below -{TOLERANCE}; 3 paired seeds needed on each dataset)")


if __name__ == "__main__":
    commandline.run(main)
