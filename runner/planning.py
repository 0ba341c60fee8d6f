"""Planning: a sweep YAML -> its validated config -> every planned run (parameters, argv, run id).

Grid sweeps are expanded, and random ones sampled (`--count` or the YAML's `run_cap`), with W&B's
own sweep engine (the `sweeps` package). Each run's argument list is built from the YAML's
`command:` by W&B's own agent helpers, so it is what `wandb agent` would run; the runner then
appends the YAML's `project` as `--wandb_project` (the agent gets it from the sweep), `--output_dir`
(and `--data` when overridden). `${interpreter}` is this Python, so the runs use the same environment.
"""
from __future__ import annotations

import hashlib
import json
import random
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import yaml

from nlu_collapse.config import (  # the flags train.py accepts
    Config,
    build_parser,
    given_flags,
    identity_config,
    resolve,
)
from nlu_collapse.data import DataError, data_fingerprint
from nlu_collapse.runfolder import SweepFolder, identity_key

DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
# Flags a sweep must not set: the runner owns where each run lives and whether it resumes.
RUNNER_OWNED = {"run_id": "the runner names each run by its identity",
                "output_dir": "the runner puts every run under <out>/<sweep>/runs (use --out)",
                "resume": "the runner resumes a run that has a checkpoint by itself"}


class SweepError(ValueError):
    """A sweep file that cannot be run; the message names the file and what was expected."""


def sweeps_engine():
    """W&B's sweep engine (the `sweeps` package; the repo's sweeps/ folder is deliberately not a package)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a pydantic deprecation notice at import
        import sweeps
    return sweeps


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error (not "the last one wins")."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def _parameter_lines(text: str) -> dict[str, int]:
    """Line of each `parameters:` key in the YAML text (1-based), for messages."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    for key, value in getattr(root, "value", []) if isinstance(root, yaml.MappingNode) else []:
        if key.value == "parameters" and isinstance(value, yaml.MappingNode):
            return {name.value: name.start_mark.line + 1 for name, _ in value.value}
    return {}


def load_sweep(path: Path) -> dict:
    """Read and validate a sweep YAML: W&B's schema, no key given twice, every parameter a real
    train.py flag and none of the flags the runner owns."""
    sweeps = sweeps_engine()
    try:
        text = Path(path).read_text(encoding="utf-8")
        config = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        raise SweepError(f"{path}: no such sweep file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise SweepError(f"{where}: invalid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(config, dict):
        raise SweepError(f"{path}: expected a mapping with method, parameters and command")
    # run_cap is a valid W&B sweep key that the engine's (older) schema does not list yet.
    violations = sweeps.schema_violations_from_proposed_config({k: v for k, v in config.items() if k != "run_cap"})
    if violations:
        raise SweepError(f"{path}: not a valid W&B sweep: " + "; ".join(violations))
    flags = {f.name for f in Config.__dataclass_fields__.values()}
    unknown = sorted(set(config.get("parameters", {})) - flags)
    if unknown:
        raise SweepError(f"{path}: parameter(s) {unknown} are not train.py flags (see config.py)")
    owned = [name for name in config.get("parameters", {}) if name in RUNNER_OWNED]
    if owned:
        lines = _parameter_lines(text)
        raise SweepError("; ".join(f"{path}:{lines.get(name, '?')}: parameter {name!r} is not allowed in a sweep "
                                   f"({RUNNER_OWNED[name]})" for name in owned))
    return config


def expand(config: dict, count: int | None = None, seed: int = 0) -> list[dict]:
    """Every run's parameters ({name: value}), in W&B's order."""
    import numpy as np

    sweeps = sweeps_engine()
    run_cap = config.get("run_cap")
    config = {k: v for k, v in config.items() if k != "run_cap"}  # see load_sweep
    if config["method"] == "grid":
        planned = sweeps.next_runs(config, [], validate=True, n=10**6)
    elif config["method"] == "random":
        n = count or run_cap
        if not n:
            raise SweepError("a random sweep needs --count or run_cap in the YAML")
        random.seed(seed)  # the engine draws from both generators; the same sample on every invocation,
        np.random.seed(seed)  # so finished runs are recognised and skipped
        planned = sweeps.next_runs(config, [], validate=True, n=n)
    else:
        raise SweepError(f"method {config['method']!r}: the local runner expands grid and random sweeps "
                         "(use wandb agent for bayes)")
    as_python = lambda v: v.item() if hasattr(v, "item") else v  # noqa: E731 - numpy scalars from the engine
    return [{name: as_python(p["value"]) for name, p in run.config.items()} for run in planned if run is not None]


def agent_command(config: dict, params: dict, interpreter: str = "python") -> list[str]:
    """The argument list `wandb agent` builds for these parameters, with W&B's own helpers."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

    sweep_vars = create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})
    sweep_vars.update(env=["/usr/bin/env"], interpreter=[interpreter], program=[config.get("program", "train.py")])
    command = []
    if "${args_json_file}" in config.get("command", []):
        raise SweepError("${args_json_file} is not supported by the local runner; use ${args} or ${args_json}")
    for chunk in create_sweep_command(list(config.get("command", DEFAULT_COMMAND))):
        chunk = str(chunk)
        is_macro = chunk.startswith("${") and chunk.endswith("}")
        command += (sweep_vars.get(chunk[2:-1]) or []) if is_macro else [chunk]
    return command


def run_id(sweep_name: str, identity: str) -> str:
    """A run's folder name: its sweep and its identity (configuration and data bytes). A changed YAML or
    changed data makes new runs beside the old ones, never reuses them."""
    return hashlib.sha1(json.dumps({"sweep": sweep_name, "identity": identity}).encode()).hexdigest()[:10]


def resolved_config(params: dict, data: str | None, where: Path) -> dict:
    """The configuration train.py will resolve for these parameters (defaults included), as a dict."""
    argv = [f"--{name}={value}" for name, value in params.items()] + ([f"--data={data}"] if data else [])
    try:
        return asdict(resolve(Config(**vars(build_parser().parse_args(argv))), given_flags(argv)))
    except (SystemExit, ValueError) as err:
        raise SweepError(f"{where}: the run {params} is not a valid train.py configuration "
                         f"({err if isinstance(err, ValueError) else 'see the message above'})") from None


class DataFingerprints:
    """Each dataset of a plan fingerprinted once (data.data_fingerprint). Data that cannot be read gets
    no fingerprint (None): its runs are still planned, and fail when they start, naming the problem,
    while the sweep's other runs go on."""

    def __init__(self):
        self._known: dict[tuple[str, str], str | None] = {}

    def __call__(self, data: str, data_format: str) -> str | None:
        if (data, data_format) not in self._known:
            try:
                self._known[data, data_format] = data_fingerprint(data, data_format)["sha256"]
            except (DataError, OSError):
                self._known[data, data_format] = None
        return self._known[data, data_format]


def plan(sweep_path: Path, out: Path, data: str | None = None, count: int | None = None) -> dict:
    """The sweep's plan: its folder, config and every run (run_id, params, args, identity: the key and
    the configuration and data fingerprint it hashes)."""
    config = load_sweep(sweep_path)
    name = sweep_path.stem + (f"-{Path(data).name}" if data else "")
    folder = SweepFolder(out / name)
    # Under `wandb agent` the runs log to the sweep's project; here the YAML's project is passed on.
    project = [f"--wandb_project={config['project']}"] if config.get("project") else []
    fingerprints, runs = DataFingerprints(), []
    for params in expand(config, count):
        resolved = resolved_config(params, data, sweep_path)
        data_sha = fingerprints(resolved["data"], resolved["data_format"])
        identity = identity_key(identity_config(resolved), data_sha)
        runs.append({"run_id": run_id(sweep_path.stem, identity), "params": params,
                     "args": agent_command(config, params, sys.executable) + project
                     + [f"--output_dir={folder.runs}"] + ([f"--data={data}"] if data else []),
                     "identity": {"key": identity, "config": identity_config(resolved), "data_sha256": data_sha}})
    return {"sweep": str(sweep_path), "name": name, "folder": str(folder.path), "data": data, "config": config,
            "runs": runs}


def stale_reason(record: dict, planned: list[dict]) -> str:
    """Why a recorded run (its config.json) is not one of the planned runs: the settings where it differs
    from every planned run, e.g. "epochs 4 (the plan: 3)", or "other data (test split changed)"."""
    identity = record.get("identity") if isinstance(record.get("identity"), dict) else None
    if identity is None or "key" not in identity:
        return "recorded before run identities (cannot be matched to the plan)"
    config = identity_config(record.get("config") or {})
    reasons = []
    for name in sorted(config):
        values = {json.dumps(run["identity"]["config"].get(name), sort_keys=True) for run in planned}
        if json.dumps(config[name], sort_keys=True) not in values:
            shown = ", ".join(sorted(values))
            reasons.append(f"{name} {json.dumps(config[name])} (the plan: {shown})")
    if identity.get("data", {}).get("sha256") not in {run["identity"]["data_sha256"] for run in planned}:
        reasons.append("other data bytes (the dataset changed since)")
    return "; ".join(reasons) or "another combination of the planned settings"
