"""The local run record that `analysis/` reads and that survives a crash.

    <output_dir>/<run_id>/config.json     resolved config, label names, dataset, W&B run id
    <output_dir>/<run_id>/history.jsonl   one line per logged step, the same keys as W&B
                                          (histograms as count lists, NaN/inf kept as NaN/Infinity)
    <output_dir>/<run_id>/summary.json    final metrics and the collapse verdict; `status` is
                                          running, finished, crashed or interrupted
    <output_dir>/<run_id>/tables/*.json   evaluation tables (per-label F1, confusion matrices)
    <output_dir>/<run_id>/.lock           held (flock) by the process writing the record

Every history line is flushed when written, so a SIGKILL loses at most the step in flight;
JSON files are replaced atomically, so a reader never sees half a file. Nothing is deleted:
history lines a resume does not keep, and a damaged summary, move to named backups.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from safeio import FolderLock, atomic_write_text, read_json, storage_error

__all__ = ["RunRecord", "read_history", "read_json", "write_json"]

log = logging.getLogger(__name__)


def write_json(path: Path, payload) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, ensure_ascii=False, default=str))


def _parse_history(path: Path) -> tuple[list[tuple[dict, str]], list[tuple[int, str, str]]]:
    """([(row, raw line)], [(line number, raw line, why)]) of a history file."""
    rows, bad = [], []
    if not path.exists():
        return rows, bad
    raw = path.read_bytes()
    for number, line_bytes in enumerate(raw.split(b"\n"), start=1):
        if not line_bytes.strip():
            continue
        try:
            row = json.loads(line_bytes.decode("utf-8"))
        except UnicodeDecodeError:
            bad.append((number, line_bytes.decode("utf-8", errors="replace"), "not UTF-8"))
            continue
        except json.JSONDecodeError as err:
            bad.append((number, line_bytes.decode("utf-8"), f"invalid JSON ({err.msg})"))
            continue
        if not isinstance(row, dict) or not isinstance(row.get("step"), int) or isinstance(row.get("step"), bool):
            bad.append((number, line_bytes.decode("utf-8"),
                        "not a history row (expected an object with an integer step)"))
            continue
        rows.append((row, line_bytes.decode("utf-8")))
    return rows, bad


def read_history(path: Path) -> list[dict]:
    """Every readable history row. Each line that cannot be read (a torn last line after a kill, or
    damage) is skipped with a warning naming `<file>:<line>`; the rows after it are still read."""
    rows, bad = _parse_history(Path(path))
    for number, _, why in bad:
        log.warning("%s:%d: skipped history line: %s", path, number, why)
    return [row for row, _ in rows]


def read_summary(run_dir: Path) -> dict:
    """A run's summary.json: {} when there is none yet; a ValueError naming the file when damaged.
    The one reader of a run's status (`status`), for train.py, the sweep runner, analysis and predict."""
    path = Path(run_dir) / "summary.json"
    return read_json(path, expect=dict) if path.exists() else {}


class RunRecord:
    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        try:
            (self.dir / "tables").mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise storage_error(self.dir, err) from None
        # One writer per run: a second train.py (or a rerun while this one lives) stops here.
        self.lock = FolderLock(self.dir, ".lock", what="run").acquire()
        self.history_path = self.dir / "history.jsonl"
        self.summary_path = self.dir / "summary.json"
        self._history = None
        self.summary: dict = self._read_summary()

    def _read_summary(self) -> dict:
        if not self.summary_path.exists():
            return {}
        try:
            return read_json(self.summary_path, expect=dict)
        except ValueError as err:  # rewritten below; the damaged bytes are kept for inspection
            backup = self._backup_path("summary.damaged", ".json")
            os.replace(self.summary_path, backup)
            log.warning("%s; moved it to %s and started a new summary", err, backup)
            return {}

    def _backup_path(self, stem: str, suffix: str) -> Path:
        return self.dir / f"{stem}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}{suffix}"

    def write_config(self, config: dict) -> None:
        write_json(self.dir / "config.json", config)

    def truncate_history(self, after_step: int) -> None:
        """On resume: keep the intact rows up to the checkpoint's step; every other line (steps that
        are redone, unreadable lines) moves to `history.dropped-<time>.jsonl`, never deleted."""
        rows, bad = _parse_history(self.history_path)
        kept = [raw for row, raw in rows if row["step"] <= after_step]
        dropped = [raw for row, raw in rows if row["step"] > after_step] + [raw for _, raw, _ in bad]
        for number, _, why in bad:
            log.warning("%s:%d: unreadable history line (%s), moved to the backup", self.history_path, number, why)
        if not dropped:
            return
        backup = self._backup_path("history.dropped", ".jsonl")
        atomic_write_text(backup, "".join(line + "\n" for line in dropped))
        atomic_write_text(self.history_path, "".join(line + "\n" for line in kept))
        log.info("resume keeps %d history rows up to step %d; %d other lines moved to %s",
                 len(kept), after_step, len(dropped), backup)

    def start_fresh(self) -> None:
        """A new run in a folder that already has a record (a rerun without a checkpoint): the earlier
        attempt's history, summary and checkpoints move to `previous/`, so nothing is appended twice or lost."""
        previous = self.dir / "previous"
        for path in (self.history_path, self.summary_path, self.dir / "checkpoints"):
            if path.exists():
                previous.mkdir(exist_ok=True)
                target = previous / path.name
                if target.is_dir():  # an even earlier attempt's checkpoints: keep them apart
                    target = previous / f"{path.name}-{time.strftime('%Y%m%dT%H%M%S')}"
                os.replace(path, target)
        self.summary = {}

    def log(self, row: dict) -> None:
        try:
            if self._history is None:
                self._history = self.history_path.open("a", encoding="utf-8")
            self._history.write(json.dumps(row) + "\n")
            self._history.flush()
        except OSError as err:
            raise storage_error(self.history_path, err) from None

    def update_summary(self, values: dict) -> None:
        self.summary.update(values)
        write_json(self.summary_path, self.summary)

    def write_table(self, name: str, columns: list[str], rows: list[list]) -> None:
        write_json(self.dir / "tables" / f"{name.replace('/', '_')}.json", {"columns": columns, "rows": rows})

    def close(self) -> None:
        if self._history is not None:
            try:
                self._history.close()
            except OSError:  # the flush of a full disk; the error was already raised where it happened
                pass
            self._history = None
        self.lock.release()
