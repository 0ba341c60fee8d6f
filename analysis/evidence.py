"""The evidence behind docs/results.md: a sweep folder's runs as one JSON-lines file, small enough to commit.

    python analysis/evidence.py results/ablation-phone-assistant-wild results/ablation-phone-assistant

writes `docs/evidence/<sweep folder name>.jsonl`: a header line (the sweep's name, dataset, the command
that ran it, when), then one line per run of the plan, as `analysis/records.py` reads it from the
folder: run id, status (stale and duplicate runs included, with why: they are listed, never counted),
factors, seed, the resolved config, the identity (the configuration and the data's bytes, with the code
version in `config.json`), the whole summary and the dev rows of the history (what `analysis/tune.py`
ranks by). `docs/build.py` renders every results table from these files, so CI can regenerate the
pages and check them without the run folders; each number on a page traces to a run id and its
identity in its file. Plots need the full history: they are made from the folders (analysis/report.py).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from nlu_collapse import commandline
from nlu_collapse.analysis.records import RecordedRun, load_local
from nlu_collapse.runfolder import RunFolder, SweepFolder
from nlu_collapse.safeio import atomic_write_text, decode_nonfinite, json_text, read_json
from nlu_collapse.telemetry import keys

ROOT = Path(__file__).resolve().parent.parent
EVIDENCE = ROOT / "docs" / "evidence"
KIND = "nlu-collapse sweep evidence"


def _dev_rows(run: RecordedRun) -> list[dict]:
    """Each dev evaluation's split-level scores (per-type rows left out: the summary has the test's)."""
    prefix, per_type = keys.split_metric("dev", ""), keys.entity_type_metric("dev", "", "")
    return [{k: v for k, v in row.items() if (k.startswith(prefix) and not k.startswith(per_type.rstrip("/")))
             or k in (keys.STEP, keys.EPOCH)} for row in run.history if any(k.startswith(prefix) for k in row)]


def _code_versions(folder: SweepFolder, runs: list[RecordedRun]) -> list[str]:
    versions = set()
    for run in runs:
        path = folder.runs / run.run_id
        try:
            code = RunFolder(path).read_config().get("identity", {}).get("code", {})
        except (OSError, ValueError):
            continue
        if code.get("git_commit"):
            versions.add(code["git_commit"][:12] + ("+dirty" if code.get("git_dirty") else ""))
    return sorted(versions)


def _plan(folder: SweepFolder) -> tuple[str, str | None]:
    """(the sweep YAML's file name, the dataset) from the folder's plan (`sweep.json`, as sweeps/local.py writes it)."""
    manifest = read_json(folder.manifest, expect=dict) if folder.manifest.exists() else {}
    return Path(str(manifest.get("sweep", "?"))).name, manifest.get("data")


def sweep_command(folder: SweepFolder) -> str:
    """The command that makes the folder's runs."""
    sweep, data = _plan(folder)
    return f"python sweeps/local.py sweeps/{sweep}" + (f" --data={data}" if data else "")


def export(path: Path) -> Path:
    """One sweep folder -> docs/evidence/<name>.jsonl; returns the file written."""
    folder = SweepFolder(path)
    runs = load_local(path)
    sweep, data = _plan(folder)
    header = {"kind": KIND, "name": folder.name, "sweep": f"sweeps/{sweep}", "data": data,
              "command": sweep_command(folder),
              "code_versions": _code_versions(folder, runs),
              "exported": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    lines = [json_text(header)]
    for run in runs:
        lines.append(json_text({"run_id": run.run_id, "status": run.status, "factors": run.factors, "seed": run.seed,
                                "config": run.config, "identity": run.identity, "why": run.why,
                                "summary": run.summary, "dev_history": _dev_rows(run)}))
    out = EVIDENCE / f"{folder.name}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(line.replace("\n", " ") for line in lines) + "\n")
    return out


def load(path: Path) -> tuple[dict, list[RecordedRun]]:
    """(header, runs) of an evidence file, the runs as `analysis/records.py` makes them."""
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        header = json.loads(lines[0])
        if header.get("kind") != KIND:
            raise ValueError("no evidence header")
        runs = []
        for line in lines[1:]:
            row = json.loads(line)
            run = RecordedRun(run_id=row["run_id"], status=row["status"], factors=row["factors"], seed=row["seed"],
                              summary=decode_nonfinite(row["summary"]), config=row["config"],
                              identity=row["identity"], why=row["why"])
            run._history = decode_nonfinite(row["dev_history"])
            runs.append(run)
    except (IndexError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not an evidence file written by analysis/evidence.py ({err})") from None
    return header, runs


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="sweep folders written by sweeps/local.py")
    args = commandline.parse(parser, argv)
    written = []
    for folder in args.folders:
        try:
            written.append(export(folder))
        except (FileNotFoundError, ValueError) as err:
            parser.error(str(err))
        print(f"{folder} -> {written[-1]}")
    return written


if __name__ == "__main__":
    commandline.run(main, "interrupted: the files already written are whole")
