"""The local run record that `analysis/` reads and that survives a crash: the writer of the files
`runfolder.RunFolder` names (config.json, history.jsonl with the same keys as W&B, histograms as
count lists; summary.json whose `status` is running, finished, crashed or interrupted; tables/*.json;
forensics.jsonl), holding the run's lock while it writes. Every file is strict JSON: NaN and inf are
the strings "NaN", "Infinity", "-Infinity" (safeio.json_text), read back as floats by `read_history`
and `read_json(..., measured=True)`.

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

from nlu_collapse.runfolder import RUN_LOCK, RunFolder
from nlu_collapse.safeio import (
    DuplicateKeyError,
    FolderLock,
    atomic_write_text,
    json_text,
    loads_record,
    read_json,
    storage_error,
)

__all__ = ["RunRecord", "read_history", "read_json", "write_json"]

log = logging.getLogger(__name__)


def write_json(path: Path, payload) -> None:
    atomic_write_text(path, json_text(payload, indent=2, default=str))


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
            row = loads_record(line_bytes.decode("utf-8"))
        except DuplicateKeyError as err:
            bad.append((number, line_bytes.decode("utf-8"), str(err)))
            continue
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


class RunRecord:
    def __init__(self, run_dir: Path):
        self.folder = RunFolder(run_dir)
        self.dir = self.folder.path
        try:
            self.folder.tables.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise storage_error(self.dir, err) from None
        # One writer per run: a second train.py (or a rerun while this one lives) stops here.
        self.lock = FolderLock(self.dir, RUN_LOCK, what="run").acquire()
        self._remove_temp_files()
        self.history_path = self.folder.history
        self.summary_path = self.folder.summary
        self._open: dict[Path, object] = {}  # append handles of the JSONL logs
        self.summary: dict = self._read_summary()

    def _remove_temp_files(self) -> None:
        """Temporary files of a killed writer (safeio's `.<name>.<pid>.tmp`, never renamed into place):
        with the run's lock held, no live process owns one."""
        for path in self.dir.rglob(".*.tmp"):
            if self.folder.previous not in path.parents:
                path.unlink(missing_ok=True)
                log.info("removed %s, left by a killed writer", path)

    def _read_summary(self) -> dict:
        if not self.summary_path.exists():
            return {}
        try:
            return read_json(self.summary_path, expect=dict, measured=True)
        except ValueError as err:  # rewritten below; the damaged bytes are kept for inspection
            backup = self._backup_path("summary.damaged", ".json")
            os.replace(self.summary_path, backup)
            log.warning("%s; moved it to %s and started a new summary", err, backup)
            return {}

    def _backup_path(self, stem: str, suffix: str) -> Path:
        return self.dir / f"{stem}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}{suffix}"

    def write_config(self, config: dict) -> None:
        write_json(self.folder.config, config)

    def truncate_after(self, after_step: int, redone: str | None = None) -> None:
        """On resume: the step-keyed logs (history, forensics) keep their intact lines up to the
        checkpoint's step, except rows holding the key `redone` (what the resume does again at any step,
        the test); every other line (steps that are redone, unreadable lines) moves to
        `<log>.dropped-<time>.jsonl`, never deleted."""
        for path in self._step_logs:
            rows, bad = _parse_history(path)
            keep = [row["step"] <= after_step and redone not in row for row, _ in rows]
            kept = [raw for (_, raw), k in zip(rows, keep) if k]
            dropped = [raw for (_, raw), k in zip(rows, keep) if not k] + [raw for _, raw, _ in bad]
            for number, _, why in bad:
                log.warning("%s:%d: unreadable line (%s), moved to the backup", path, number, why)
            if not dropped:
                continue
            backup = self._backup_path(f"{path.stem}.dropped", ".jsonl")
            atomic_write_text(backup, "".join(line + "\n" for line in dropped))
            atomic_write_text(path, "".join(line + "\n" for line in kept))
            log.info("resume keeps %d lines of %s up to step %d; %d other lines moved to %s",
                     len(kept), path.name, after_step, len(dropped), backup)

    @property
    def _step_logs(self) -> tuple[Path, Path]:
        return self.history_path, self.folder.forensics

    def start_fresh(self) -> int:
        """A new attempt of this run id. An earlier attempt in the folder (a rerun without a checkpoint)
        moves whole (config, history, summary, tables, checkpoints, ...) to `previous/<n>/`, so nothing
        is appended twice, overwritten or lost. Returns this attempt's number (1 for the first)."""
        earlier = self.folder.earlier_attempts()
        number = max((int(a.name) for a in earlier), default=0) + 1
        if self.folder.has_record():
            self.close_logs()
            target = self.folder.previous / str(number)
            target.mkdir(parents=True)
            for path in sorted(self.dir.iterdir()):
                if path.name not in (RUN_LOCK, self.folder.previous.name):
                    os.replace(path, target / path.name)
            self.folder.tables.mkdir()
            log.info("%s: the earlier attempt moved to %s", self.dir, target)
            number += 1
        self.summary = {}
        return number

    def _append(self, path: Path, row: dict) -> None:
        """One JSON line, flushed: a SIGKILL loses at most the line in flight."""
        try:
            if path not in self._open:
                self._open[path] = path.open("a", encoding="utf-8")
            self._open[path].write(json_text(row) + "\n")
            self._open[path].flush()
        except OSError as err:
            raise storage_error(path, err) from None

    def log(self, row: dict) -> None:
        self._append(self.history_path, row)

    def log_forensics(self, origin: dict) -> None:
        """One replayed non-finite step (telemetry.forensics), keyed by its `step` like a history row."""
        self._append(self.folder.forensics, origin)

    def update_summary(self, values: dict) -> None:
        self.summary.update(values)
        write_json(self.summary_path, self.summary)

    def write_table(self, name: str, columns: list[str], rows: list[list]) -> None:
        write_json(self.folder.table(name), {"columns": columns, "rows": rows})

    def close_logs(self) -> None:
        for handle in self._open.values():
            try:
                handle.close()
            except OSError:  # the flush of a full disk; the error was already raised where it happened
                pass
        self._open = {}

    def close(self) -> None:
        self.close_logs()
        self.lock.release()
