"""Runs of a sweep, from a local sweep folder or from the W&B API, in one shape.

A local folder is what `sweeps/local.py` writes: `sweep.json` (every planned run and its status)
and `runs/<run_id>/{config,summary}.json, history.jsonl`. Planned runs with no record, crashed
runs and runs still going are kept with their status, so the report can list them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from config import Config
from runfolder import SweepFolder
from telemetry import keys
from telemetry.record import read_history, read_json
from telemetry.wandb_values import from_wandb

log = logging.getLogger(__name__)

# The factors a report groups by (train.py's flags, plus the dataset); a run that does not say has
# train.py's default.
FACTORS = ("mask_value", "gamma", "lambdas", "loss_impl", "loss_level", "data")


@dataclass
class RecordedRun:
    run_id: str
    status: str  # finished | crashed | interrupted | running | pending (never started) | failed | unreadable
    factors: dict                     # FACTORS -> value
    seed: int | None
    summary: dict = field(default_factory=dict)
    history_path: Path | None = None  # local history.jsonl
    config: dict = field(default_factory=dict)  # train.py's flags as the run recorded them (else the sweep's plan)
    _history: list[dict] | None = None

    @property
    def history(self) -> list[dict]:
        if self._history is None:
            self._history = read_history(self.history_path) if self.history_path else []
        return self._history


def _factors(config: dict, params: dict, dataset: str | None) -> dict:
    merged = {**config, **params}
    factors = {name: merged.get(name, getattr(Config, name)) for name in FACTORS}
    try:
        factors["gamma"] = float(factors["gamma"])
    except (TypeError, ValueError):  # a hand-edited config: keep the run, under its raw value
        factors["gamma"] = str(factors["gamma"])
    factors["mask_value"] = str(factors["mask_value"])
    factors["data"] = dataset or Path(str(merged.get("data") or Config.data)).name
    return factors


def load_local(folder: Path) -> list[RecordedRun]:
    sweep = SweepFolder(folder)
    manifest_path = sweep.manifest
    manifest = read_json(manifest_path, expect=dict) if manifest_path.exists() else {}
    planned, sweep_data = manifest.get("runs", []), manifest.get("data")
    if not isinstance(planned, list) or not all(isinstance(r, dict) and isinstance(r.get("run_id"), str)
                                                for r in planned):
        raise ValueError(f"{manifest_path}: runs must be a list of objects with a run_id "
                         "(a file written by sweeps/local.py)")
    run_dirs = sweep.recorded_runs()
    if not planned and not run_dirs:
        raise FileNotFoundError(f"{sweep.path}: no sweep.json and no runs/*/config.json (expected a folder written "
                                "by sweeps/local.py or train.py --output_dir=<folder>/runs)")
    params_by_id = {run["run_id"]: run for run in planned}
    runs = []
    for rid in list(params_by_id) + sorted(set(run_dirs) - set(params_by_id)):
        run_dir = run_dirs.get(rid)
        plan = params_by_id.get(rid, {})
        config_file, summary, damaged = {}, {}, False
        try:  # one damaged run is listed as unreadable, never the end of the whole report
            config_file = run_dir.read_config() if run_dir else {}
            summary = run_dir.read_summary() if run_dir else {}
        except ValueError as err:
            log.warning("%s; the run is listed as unreadable", err)
            damaged = True
        if damaged:
            status = "unreadable"
        elif summary:
            status = str(summary.get(keys.STATUS, "running"))
        else:
            status = "failed" if plan.get("status") == "failed" else "pending"
        config = config_file.get("config", {}) if isinstance(config_file.get("config", {}), dict) else {}
        params = {**({"data": sweep_data} if sweep_data else {}), **plan.get("params", {})}
        runs.append(RecordedRun(run_id=rid, status=status, factors=_factors(config, params, config_file.get("dataset")),
                        seed=config.get("seed", params.get("seed")), summary=summary,
                        history_path=run_dir.history if run_dir else None, config={**params, **config}))
    return runs


# What the report's plots read from each W&B run's history.
HISTORY_KEYS = [keys.LOSS_TOTAL, *(keys.loss(t) for t in keys.TASKS), keys.GRAD_NORM,
                keys.entity_dist(keys.PRED_NON_O), *(keys.max_share(t) for t in keys.SENTENCE_TASKS)]


def load_wandb(path: str, sweep_id: str | None = None, api=None) -> list[RecordedRun]:
    """Runs of `entity/project` (optionally one sweep) through `wandb.Api`."""
    if api is None:
        import wandb

        api = wandb.Api()
    filters = {"sweep": sweep_id} if sweep_id else {}
    runs = []
    for wandb_run in api.runs(path, filters=filters):
        # train.py writes non-finite summary values as text with an `_is_finite` twin (W&B would store null)
        config, summary = dict(wandb_run.config), from_wandb(dict(wandb_run.summary))
        status = {"finished": "finished", "crashed": "crashed", "failed": "crashed", "running": "running"}.get(
            wandb_run.state, wandb_run.state)
        run = RecordedRun(run_id=wandb_run.id, status=status, factors=_factors(config, {}, None),
                  seed=config.get("seed"), summary=summary, config=config)
        run._history = [{keys.STEP: row.get("_step"), **from_wandb({k: row[k] for k in HISTORY_KEYS if k in row})}
                        for row in wandb_run.scan_history() if keys.LOSS_TOTAL in row]
        runs.append(run)
    return runs
