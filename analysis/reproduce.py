"""Reproduce everything with one command: run the ablation sweep offline on both embedded datasets,
then write one report with a table per dataset and the cross-dataset summary.

    python analysis/reproduce.py                    # 24 runs on each embedded dataset, 2 workers
    python analysis/reproduce.py --data=phone-assistant-wild --workers=1 --out=/tmp/results
    python analysis/reproduce.py --sweep=sweeps/baseline.yaml --data=path/to/atis

Runs already finished in the output folder are skipped, so an interrupted reproduction resumes.
Each dataset's runs go to `<out>/<sweep>-<dataset>/`; the report (Markdown, CSV) and the
collapse-curve plots land in the first one's `report/`. At the end it prints where its seconds went:
each sweep's wall time beside its runs' own training loops (the rest is start-up, data, evaluation,
checkpoints, W&B), and the report with its plots.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from nlu_collapse import commandline
from nlu_collapse.data import EMBEDDED  # the embedded datasets (the project is installed: pip install -e .)
from nlu_collapse.runfolder import SweepFolder
from nlu_collapse.telemetry import keys

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", type=Path, default=ROOT / "sweeps" / "ablation.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--data", action="append", default=None,
                        help="a dataset to run the sweep on (repeat for several; default: both embedded datasets)")
    args = commandline.parse(parser, argv)
    sweep_code, folders, seconds = 0, [], []
    for data in args.data or list(EMBEDDED):
        sweep_cmd = [sys.executable, str(ROOT / "sweeps" / "local.py"), str(args.sweep), f"--workers={args.workers}",
                     f"--out={args.out}", f"--data={data}"]
        start = time.perf_counter()
        sweep_code = subprocess.run(sweep_cmd, check=False).returncode or sweep_code
        folder = SweepFolder(args.out / f"{args.sweep.stem}-{Path(data).name}")
        seconds.append((f"sweep {folder.name}", time.perf_counter() - start, loops(folder)))
        if folder.manifest.exists():
            folders.append(folder.path)
    if not folders:
        return sweep_code or 1
    start = time.perf_counter()
    report_code = subprocess.run([sys.executable, str(ROOT / "analysis" / "report.py"), *map(str, folders)],
                                 check=False).returncode
    seconds.append(("report and plots", time.perf_counter() - start, None))
    print("where the seconds went:")
    for what, wall, loop in seconds:
        within = f" (its runs' training loops: {loop:.0f} s of run time over {args.workers} workers)" if loop else ""
        print(f"  {what}: {wall:.0f} s{within}")
    return sweep_code or report_code


def loops(folder: SweepFolder) -> float:
    """The sum of a sweep's runs' own training-loop seconds (perf/train_seconds)."""
    total = 0.0
    for run in folder.recorded_runs().values():
        try:
            total += float(run.read_summary().get(keys.PERF_TRAIN_SECONDS) or 0.0)
        except ValueError:  # a damaged summary: the report lists it
            pass
    return total


if __name__ == "__main__":
    commandline.run(main)
