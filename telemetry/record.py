"""The local run record that `analysis/` reads and that survives a crash.

    <output_dir>/<run_id>/config.json     resolved config, label names, dataset, W&B run id
    <output_dir>/<run_id>/history.jsonl   one line per logged step, the same keys as W&B
                                          (histograms as count lists, NaN/inf kept as NaN/Infinity)
    <output_dir>/<run_id>/summary.json    final metrics and the collapse verdict; `status` is
                                          running, finished or crashed
    <output_dir>/<run_id>/tables/*.json   evaluation tables (per-label F1, confusion matrices)

Every history line is flushed when written, so a SIGKILL loses at most the step in flight;
JSON files are replaced atomically, so a reader never sees half a file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path: Path, payload) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_history(path: Path) -> list[dict]:
    """History lines; a torn last line (the step in flight at a kill) is skipped."""
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


class RunRecord:
    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        (self.dir / "tables").mkdir(parents=True, exist_ok=True)
        self.history_path = self.dir / "history.jsonl"
        self.summary_path = self.dir / "summary.json"
        self._history = None
        self.summary: dict = read_json(self.summary_path) if self.summary_path.exists() else {}

    def write_config(self, config: dict) -> None:
        write_json(self.dir / "config.json", config)

    def truncate_history(self, after_step: int) -> None:
        """On resume: drop the lines of steps the checkpoint does not contain (they are redone)."""
        kept = [row for row in read_history(self.history_path) if row["step"] <= after_step]
        tmp = self.history_path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")
        os.replace(tmp, self.history_path)

    def start_fresh(self) -> None:
        """A new run in a folder that already has a record (a rerun without a checkpoint): the earlier
        attempt's history and summary move to `previous/`, so nothing is appended twice or lost."""
        previous = self.dir / "previous"
        for path in (self.history_path, self.summary_path):
            if path.exists():
                previous.mkdir(exist_ok=True)
                os.replace(path, previous / path.name)
        self.summary = {}

    def log(self, row: dict) -> None:
        if self._history is None:
            self._history = self.history_path.open("a", encoding="utf-8")
        self._history.write(json.dumps(row) + "\n")
        self._history.flush()

    def update_summary(self, values: dict) -> None:
        self.summary.update(values)
        write_json(self.summary_path, self.summary)

    def write_table(self, name: str, columns: list[str], rows: list[list]) -> None:
        write_json(self.dir / "tables" / f"{name.replace('/', '_')}.json", {"columns": columns, "rows": rows})

    def close(self) -> None:
        if self._history is not None:
            self._history.close()
            self._history = None
