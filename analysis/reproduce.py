"""Reproduce everything with one command: run the ablation sweep offline, then write the report.

    python analysis/reproduce.py                    # 24 runs on the embedded data, 2 workers
    python analysis/reproduce.py --workers=1 --out=/tmp/results
    python analysis/reproduce.py --sweep=sweeps/baseline.yaml --data=path/to/atis

Runs already finished in the output folder are skipped, so an interrupted reproduction resumes.
The report (Markdown, CSV) and the collapse-curve plots land in `<out>/<sweep>/report/`.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", type=Path, default=ROOT / "sweeps" / "ablation.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--data", default=None, help="run the sweep on this dataset instead of the YAML's")
    args = parser.parse_args(argv)
    sweep_cmd = [sys.executable, str(ROOT / "sweeps" / "local.py"), str(args.sweep), f"--workers={args.workers}",
                 f"--out={args.out}"] + ([f"--data={args.data}"] if args.data else [])
    sweep_code = subprocess.run(sweep_cmd, check=False).returncode
    folder = args.out / (args.sweep.stem + (f"-{Path(args.data).name}" if args.data else ""))
    if not (folder / "sweep.json").exists():
        return sweep_code or 1
    report_code = subprocess.run([sys.executable, str(ROOT / "analysis" / "report.py"), str(folder)],
                                 check=False).returncode
    return sweep_code or report_code


if __name__ == "__main__":
    sys.exit(main())
