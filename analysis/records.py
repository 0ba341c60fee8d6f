"""Runs of a sweep, from a local sweep folder or from the W&B API, in one shape.

A local folder is what `sweeps/local.py` writes (`runfolder.SweepFolder`: the plan in `sweep.json`,
a record per run under `runs/`). Planned runs with no record, crashed runs and runs still going are
kept with their status, so the report can list them.

Runs are keyed by identity (config.json `identity.key`: the configuration and the data bytes), so a
number is only ever counted once and only for the plan it belongs to:
- `duplicate`: a second record of an identity already counted (a copied folder, a rerun under a new
  W&B id) is listed, not counted as another seed;
- `stale`: a record whose identity the plan does not hold (an earlier version of the YAML, replaced
  data), or a planned folder holding another identity, is listed with why, never averaged in.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from nlu_collapse.config import Config
from nlu_collapse.runfolder import RunFolder, SweepFolder
from nlu_collapse.runner.planning import stale_reason
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.record import read_history, read_json
from nlu_collapse.telemetry.wandb_values import from_wandb

log = logging.getLogger(__name__)

# The factors a report groups by (train.py's flags, plus the dataset), then the knobs a claim's conditions
# cross with them (analysis/conditions.py); a run that does not say has train.py's default.
FACTORS = ("mask_value", "gamma", "lambdas", "loss_impl", "loss_level", "data")
KNOBS = ("warmup_ratio", "entity_warmup", "epochs", "unit_class_weights")
STALE, DUPLICATE = "stale", "duplicate"
NOT_COUNTED = (STALE, DUPLICATE)


@dataclass
class RecordedRun:
    run_id: str
    status: str  # finished | crashed | interrupted | running | pending (never started) | failed | unreadable
    #              | stale | duplicate (not counted: see the module docstring; `why` says which)
    factors: dict                     # FACTORS and KNOBS -> value
    seed: int | None
    summary: dict = field(default_factory=dict)
    history_path: Path | None = None  # local history.jsonl
    config: dict = field(default_factory=dict)  # train.py's flags as the run recorded them (else the sweep's plan)
    identity: str | None = None       # the recorded identity key (None: recorded before identities)
    why: str = ""                     # why a stale or duplicate run is not counted
    _history: list[dict] | None = None

    @property
    def counted(self) -> bool:
        return self.status not in NOT_COUNTED

    @property
    def history(self) -> list[dict]:
        if self._history is None:
            self._history = read_history(self.history_path) if self.history_path else []
        return self._history


def _factors(config: dict, params: dict, dataset: str | None) -> dict:
    merged = {**config, **params}
    factors = {name: merged.get(name, getattr(Config, name)) for name in FACTORS + KNOBS}
    for name, kind in (("warmup_ratio", float), ("epochs", int)):
        try:
            factors[name] = kind(factors[name])
        except (TypeError, ValueError):  # a hand-edited config: keep the run, under its raw value
            factors[name] = str(factors[name])
    factors["unit_class_weights"] = str(factors["unit_class_weights"]).strip().lower() in ("true", "1", "yes")
    factors["entity_warmup"] = "preset" if factors["entity_warmup"] is None else str(factors["entity_warmup"])
    try:
        factors["gamma"] = float(factors["gamma"])
    except (TypeError, ValueError):  # a hand-edited config: keep the run, under its raw value
        factors["gamma"] = str(factors["gamma"])
    factors["mask_value"] = str(factors["mask_value"])
    factors["data"] = dataset or Path(str(merged.get("data") or Config.data)).name
    return factors


def _recorded(run_dir: RunFolder | None) -> tuple[dict, dict, bool]:
    """(config.json, summary.json, damaged?) of a run folder; one damaged run never ends the report."""
    if run_dir is None:
        return {}, {}, False
    try:
        return run_dir.read_config(), run_dir.read_summary(), False
    except ValueError as err:
        log.warning("%s; the run is listed as unreadable", err)
        return {}, {}, True


def _from_record(rid: str, run_dir: RunFolder | None, plan: dict, sweep_data: str | None) -> RecordedRun:
    config_file, summary, damaged = _recorded(run_dir)
    if damaged:
        status = "unreadable"
    elif summary:
        status = str(summary.get(keys.STATUS, "running"))
    else:
        status = "failed" if plan.get("status") == "failed" else "pending"
    config = config_file.get("config", {}) if isinstance(config_file.get("config", {}), dict) else {}
    params = {**({"data": sweep_data} if sweep_data else {}), **plan.get("params", {})}
    identity = config_file.get("identity") if isinstance(config_file.get("identity"), dict) else {}
    return RecordedRun(run_id=rid, status=status, factors=_factors(config, params, config_file.get("dataset")),
                       seed=config.get("seed", params.get("seed")), summary=summary,
                       history_path=run_dir.history if run_dir else None, config={**params, **config},
                       identity=identity.get("key"))


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
    runs = []
    for plan in planned:  # in the plan's order
        run = _from_record(plan["run_id"], run_dirs.get(plan["run_id"]), plan, sweep_data)
        expected = (plan.get("identity") or {}).get("key")
        if expected and run.identity != expected and run.status not in ("pending", "failed"):
            run.status, run.why = STALE, "its folder holds a record of another configuration or data than the plan"
        runs.append(run)
    planned_keys = {(plan.get("identity") or {}).get("key") for plan in planned} - {None}
    for rid in sorted(set(run_dirs) - {plan["run_id"] for plan in planned}):
        run = _from_record(rid, run_dirs[rid], {}, sweep_data)
        if planned_keys and run.identity not in planned_keys:
            run.status, run.why = STALE, stale_reason(run_dirs[rid].read_config() if run.status != "unreadable"
                                                      else {}, planned)
        runs.append(run)
    return dedupe(runs)


def dedupe(runs: list[RecordedRun]) -> list[RecordedRun]:
    """A second counted record of an identity (a copied folder, a rerun) becomes a `duplicate` of the
    first, preferring a finished one: one identity, one number."""
    first: dict[str, RecordedRun] = {}
    for run in sorted((r for r in runs if r.counted and r.identity), key=lambda r: r.status != "finished"):
        if run.identity in first:
            run.status = DUPLICATE
            run.why = f"the same run as {first[run.identity].run_id} (same identity), not counted"
        else:
            first[run.identity] = run
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
        identity = config.get("identity") if isinstance(config.get("identity"), dict) else {}
        run = RecordedRun(run_id=wandb_run.id, status=status, factors=_factors(config, {}, None),
                          seed=config.get("seed"), summary=summary, config=config, identity=identity.get("key"))
        run._history = [{keys.STEP: row.get("_step"), **from_wandb({k: row[k] for k in HISTORY_KEYS if k in row})}
                        for row in wandb_run.scan_history() if keys.LOSS_TOTAL in row]
        runs.append(run)
    return dedupe(runs)
