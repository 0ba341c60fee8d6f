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
from pathlib import Path

import yaml

from config import Config  # the flag names train.py accepts
from runfolder import SweepFolder

DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]


class SweepError(ValueError):
    """A sweep file that cannot be run; the message names the file and what was expected."""


def sweeps_engine():
    """W&B's sweep engine (the `sweeps` package; the repo's sweeps/ folder is deliberately not a package)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a pydantic deprecation notice at import
        import sweeps
    return sweeps


def load_sweep(path: Path) -> dict:
    """Read and validate a sweep YAML: W&B's schema, and every parameter a real train.py flag."""
    sweeps = sweeps_engine()
    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
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


def run_id(sweep_name: str, params: dict, data: str | None) -> str:
    key = json.dumps({"sweep": sweep_name, "params": params, "data": data}, sort_keys=True)
    return hashlib.sha1(key.encode()).hexdigest()[:10]


def plan(sweep_path: Path, out: Path, data: str | None = None, count: int | None = None) -> dict:
    """The sweep's plan: its folder, config and every run (run_id, params, args)."""
    config = load_sweep(sweep_path)
    name = sweep_path.stem + (f"-{Path(data).name}" if data else "")
    folder = SweepFolder(out / name)
    # Under `wandb agent` the runs log to the sweep's project; here the YAML's project is passed on.
    project = [f"--wandb_project={config['project']}"] if config.get("project") else []
    runs = []
    for params in expand(config, count):
        rid = run_id(sweep_path.stem, params, data)
        runs.append({"run_id": rid, "params": params,
                     "args": agent_command(config, params, sys.executable) + project
                     + [f"--output_dir={folder.runs}"] + ([f"--data={data}"] if data else [])})
    return {"sweep": str(sweep_path), "name": name, "folder": str(folder.path), "data": data, "config": config,
            "runs": runs}
