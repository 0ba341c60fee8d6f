"""Run a W&B sweep YAML locally, in parallel, with no account: the offline twin of `wandb agent`.

    python sweeps/local.py sweeps/ablation.yaml                 # 24 runs, 2 workers, W&B offline
    python sweeps/local.py sweeps/baseline.yaml --data=path/to/atis --workers=2
    python sweeps/local.py sweeps/mechanism.yaml --dry_run      # print the command of every run

Grid sweeps are expanded, and random ones sampled (`--count` or the YAML's `run_cap`), with W&B's
own sweep engine (the `sweeps` package). Each run's argument list is built from the YAML's
`command:` by W&B's own agent helpers, so it is what `wandb agent` would run; the runner then
appends the YAML's `project` as `--wandb_project` (the agent gets it from the sweep), `--output_dir`
(and `--data` when overridden) and runs it as a subprocess from a list, never a shell string.
`${interpreter}` is this Python, so the runs use the same environment (`wandb agent` runs the first
`python` on PATH: activate the venv before starting it).

All runs of a sweep share one folder and one W&B group:

    <out>/<sweep>[-<data>]/sweep.json        the sweep, every planned run and its status
    <out>/<sweep>[-<data>]/runs/<run_id>/    train.py's run records (what analysis/ reads)
    <out>/<sweep>[-<data>]/runs/wandb/       W&B offline runs (`wandb sync`, `wandb leet`)
    <out>/<sweep>[-<data>]/logs/<run_id>.log each run's console output

A failed run is recorded and the others go on. Running the same command again skips the runs
that finished and resumes the ones that stopped after a checkpoint.

One runner owns a sweep folder at a time (`<folder>/.runner.lock`, an flock the kernel drops when
the runner dies); a second one exits at once naming the holder's pid. Runs die with their runner
(Linux: PR_SET_PDEATHSIG sends them SIGTERM, so they record the crash), and each run holds its own
lock, so a run is never trained twice at once. A run whose checkpoints are all damaged is marked
failed with that reason and left alone until `--fresh` starts it over.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import yaml

from config import Config  # the flag names train.py accepts (the project is installed: pip install -e .)
from safeio import FolderLock, LockedError, atomic_write_text, read_json, verify
from telemetry import keys
from telemetry.record import read_summary

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
RUNNING: set[subprocess.Popen] = set()  # runs in flight, stopped with the runner


class SweepError(ValueError):
    """A sweep file that cannot be run; the message names the file and what was expected."""


def _sweeps_engine():
    """W&B's sweep engine (the `sweeps` package; this folder is deliberately not a package)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a pydantic deprecation notice at import
        import sweeps
    return sweeps


def load_sweep(path: Path) -> dict:
    """Read and validate a sweep YAML: W&B's schema, and every parameter a real train.py flag."""
    sweeps = _sweeps_engine()

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

    sweeps = _sweeps_engine()
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
    config = load_sweep(sweep_path)
    name = sweep_path.stem + (f"-{Path(data).name}" if data else "")
    folder = out / name
    # Under `wandb agent` the runs log to the sweep's project; here the YAML's project is passed on.
    project = [f"--wandb_project={config['project']}"] if config.get("project") else []
    runs = []
    for params in expand(config, count):
        rid = run_id(sweep_path.stem, params, data)
        runs.append({"run_id": rid, "params": params,
                     "args": agent_command(config, params, sys.executable) + project
                     + [f"--output_dir={folder / 'runs'}"] + ([f"--data={data}"] if data else [])})
    return {"sweep": str(sweep_path), "name": name, "folder": str(folder), "data": data, "config": config,
            "runs": runs}


def run_status(folder: Path, rid: str) -> str:
    try:
        status = read_summary(folder / "runs" / rid).get(keys.STATUS, "pending")
    except ValueError:  # damaged: train.py keeps a backup and rewrites it when the run goes on
        return "pending"
    return status if isinstance(status, str) else "pending"


def resume_problem(run_dir: Path) -> str | None:
    """Why this run cannot resume (every last checkpoint damaged, or best.pt), or None: no checkpoint, or an intact one.
    Checked here with the checksums alone, so a hopeless resume is not relaunched on every rerun."""
    candidates = [run_dir / "checkpoints" / name for name in ("last.pt", "last.prev.pt")]
    if not any(path.exists() for path in candidates):
        return None
    best = run_dir / "checkpoints" / "best.pt"
    problems = [verify(best)] if best.exists() and verify(best) else [verify(path) for path in candidates]
    if None in problems:
        return None
    return "cannot resume: " + "; ".join(problems) + "; rerun the sweep with --fresh to start this run over"


def _prctl():
    """libc's prctl, looked up in the runner: a forked child should only call it, not load anything."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the runner's own SIGTERM/Ctrl-C handling still applies
        return None


PRCTL = _prctl()
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int):
    """preexec_fn: the child gets SIGTERM when the runner dies, even by SIGKILL (Linux only)."""
    def setup():
        if PRCTL is not None:
            PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # the runner died before prctl took effect
                os.kill(os.getpid(), signal.SIGTERM)
    return setup


class ForkServer:
    """The runner's side of sweeps/forkserver.py: one pre-warmed process per sweep that forks each run
    (same argv, environment and working directory as a fresh `python train.py ...`; see its docstring).
    If it cannot start or dies, runs fall back to plain subprocesses."""

    def __init__(self, log_path: Path):
        self._lock = threading.Lock()
        self._done: dict[str, tuple[threading.Event, list]] = {}
        self.pids: dict[str, int] = {}
        self.alive = True
        self._ready = threading.Event()
        with log_path.open("a", encoding="utf-8") as log:
            self.process = subprocess.Popen([sys.executable, str(ROOT / "sweeps" / "forkserver.py")], cwd=ROOT,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                            preexec_fn=_die_with_parent(os.getpid()))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            message = json.loads(line)
            if message.get("ready"):
                self._ready.set()
            elif "pid" in message:
                self.pids[message["id"]] = message["pid"]
            elif "code" in message:
                self.pids.pop(message["id"], None)
                event, result = self._done.pop(message["id"])
                result.append(message["code"])
                event.set()
        self.alive = False  # the server is gone: whatever was in flight failed; later runs use subprocesses
        self._ready.set()
        with self._lock:
            for event, _ in self._done.values():
                event.set()

    def run(self, run_id: str, argv: list[str], env: dict, log_path: Path) -> int | None:
        """Fork one run and wait for it; its exit code (negative: killed by that signal), or None when
        the server is not available (the caller starts a subprocess instead)."""
        self._ready.wait()
        event, result = threading.Event(), []
        with self._lock:
            if not self.alive:
                return None
            self._done[run_id] = (event, result)
            request = {"id": run_id, "argv": argv, "env": env, "cwd": str(ROOT), "log": str(log_path)}
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
        event.wait()
        return result[0] if result else -1

    def terminate_runs(self) -> None:
        for pid in list(self.pids.values()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def close(self) -> None:
        """No more runs: the server exits once the runs in flight have ended."""
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        self.process.wait()


def forkable(args: list[str]) -> tuple[list[str], dict] | None:
    """(argv of the program, environment additions) when `args` is `[env [NAME=VALUE...]] <this python>
    <program.py> ...`, the form `wandb agent` builds from ${env} ${interpreter} ${program} ${args}; None
    for anything else (another interpreter, interpreter options, a non-Python program)."""
    rest, extra = list(args), {}
    if rest and os.path.basename(rest[0]) == "env":
        rest.pop(0)
        while rest and "=" in rest[0] and not rest[0].startswith("-"):
            name, value = rest.pop(0).split("=", 1)
            extra[name] = value
    if len(rest) < 2 or os.path.realpath(shutil.which(rest[0]) or rest[0]) != os.path.realpath(sys.executable):
        return None
    if not rest[1].endswith(".py"):
        return None
    return rest[1:], extra


SERVER: ForkServer | None = None  # the sweep's pre-warmed launcher (--launcher=fork), while one runs


def launch(run: dict, folder: Path, threads: int, fresh: bool = False) -> int:
    """Run one sweep run (resumed if it has a checkpoint, unless `fresh`), forked from the pre-warmed
    launcher when there is one, else as a subprocess; returns its exit code."""
    rid = run["run_id"]
    run_dir = folder / "runs" / rid
    args = list(run["args"])
    checkpoints = run_dir / "checkpoints"
    if not fresh and ((checkpoints / "last.pt").exists() or (checkpoints / "last.prev.pt").exists()):
        args.append(f"--resume={run_dir}")
    env = {**os.environ, "WANDB_RUN_ID": rid, "WANDB_RUN_GROUP": folder.name, "OMP_NUM_THREADS": str(threads),
           "PYTHONUNBUFFERED": "1"}
    log_path = folder / "logs" / f"{rid}.log"
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(args)}\n")
    target = forkable(args) if SERVER is not None else None
    if target is not None:
        code = SERVER.run(rid, target[0], {**env, **target[1]}, log_path)
        if code is not None:
            return code
    with log_path.open("a", encoding="utf-8") as log:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   preexec_fn=_die_with_parent(os.getpid()))
        RUNNING.add(process)
        try:
            code = process.wait()
        finally:
            RUNNING.discard(process)
    return code


def _stop_children_quietly() -> None:
    for process in list(RUNNING):
        process.terminate()
    if SERVER is not None:
        SERVER.terminate_runs()


def _interrupt(signum=None, frame=None):
    """SIGTERM is handled like Ctrl-C."""
    raise KeyboardInterrupt


def execute(sweep: dict, workers: int = 2, fresh: bool = False, launcher: str = "fork") -> dict:
    """Run every planned run that has not finished; returns {run_id: status}. Holds the folder's
    runner lock throughout (LockedError if another runner has it). `launcher`: fork (from a pre-warmed
    process, sweeps/forkserver.py) or subprocess (a fresh interpreter per run)."""
    global SERVER
    folder = Path(sweep["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    with FolderLock(folder, ".runner.lock", what="sweep folder"):
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        if launcher == "fork" and hasattr(os, "fork"):
            SERVER = ForkServer(folder / "logs" / "forkserver.log")
        try:
            return _execute(sweep, folder, workers, fresh)
        finally:
            if SERVER is not None:
                SERVER.close()
            SERVER = None


def _execute(sweep: dict, folder: Path, workers: int, fresh: bool) -> dict:
    from tqdm import tqdm

    (folder / "logs").mkdir(parents=True, exist_ok=True)
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    status = {run["run_id"]: run_status(folder, run["run_id"]) for run in sweep["runs"]}
    problems = {rid: resume_problem(folder / "runs" / rid) for rid in status if status[rid] != "finished"}
    problems = {rid: problem for rid, problem in problems.items() if problem}
    reasons = {} if fresh else dict(problems)  # with --fresh these runs start over; others still resume
    for rid, problem in reasons.items():
        status[rid] = "failed"
        print(f"run {rid}: {problem}", file=sys.stderr)
    todo = [run for run in sweep["runs"] if status[run["run_id"]] != "finished" and run["run_id"] not in reasons]
    write_manifest(sweep, status, reasons)
    print(f"{sweep['name']}: {len(sweep['runs'])} runs, {len(sweep['runs']) - len(todo)} already finished, "
          f"{len(todo)} to run with {workers} worker(s) -> {folder}", flush=True)
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        with tqdm(total=len(todo), desc=sweep["name"], unit="run") as bar:
            futures = {pool.submit(launch, run, folder, threads, run["run_id"] in problems): run["run_id"]
                       for run in todo}
            for future in as_completed(futures):
                rid = futures[future]
                try:
                    code = future.result()
                except OSError as err:  # e.g. the log file cannot be written: this run fails, the others go on
                    code = -1
                    tqdm.write(f"run {rid} could not start: {err}")
                status[rid] = run_status(folder, rid) if code == 0 else "failed"
                if code != 0:
                    reasons[rid] = resume_problem(folder / "runs" / rid) or f"exit {code}"
                    tqdm.write(f"run {rid} failed ({reasons[rid]}); see {folder / 'logs' / (rid + '.log')}")
                else:
                    reasons.pop(rid, None)
                write_manifest(sweep, status, reasons)
                bar.update(1)
    except BaseException:
        _stop_children_quietly()  # Ctrl-C / SIGTERM: the runs in flight stop too, and keep their records
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on Ctrl-C: start nothing new
    return status


def write_manifest(sweep: dict, status: dict, reasons: dict | None = None) -> None:
    """sweep.json: every planned run, its status and, for a failed run, why (`reason`)."""
    reasons = reasons or {}
    runs = [{**run, "status": status[run["run_id"]],
             **({"reason": reasons[run["run_id"]]} if run["run_id"] in reasons else {})} for run in sweep["runs"]]
    manifest = {**sweep, "runs": runs}
    atomic_write_text(Path(sweep["folder"]) / "sweep.json",
                      json.dumps(manifest, indent=2, ensure_ascii=False, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path, help="a sweep YAML, e.g. sweeps/ablation.yaml")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (default 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "results", help="where sweep folders go (default results/)")
    parser.add_argument("--data", default=None, help="dataset passed to every run as --data (default: the YAML's)")
    parser.add_argument("--count", type=int, default=None, help="number of runs of a random sweep")
    parser.add_argument("--dry_run", action="store_true", help="print each run's command and exit")
    parser.add_argument("--launcher", choices=("fork", "subprocess"), default="fork",
                        help="fork: each run is forked from one process that imported torch, transformers and "
                             "wandb once (same argv and environment, no start-up per run; Linux/macOS); "
                             "subprocess: a fresh interpreter per run (default: fork)")
    parser.add_argument("--fresh", action="store_true",
                        help="start over the runs that cannot resume (every checkpoint damaged); the earlier "
                             "attempt moves to its previous/ folder")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers={args.workers}: expected a positive integer")
    try:
        sweep = plan(args.sweep, args.out.resolve(), args.data, args.count)
    except SweepError as err:
        parser.error(str(err))
    if args.dry_run:
        for run in sweep["runs"]:
            print(run["run_id"], " ".join(run["args"]))
        return 0
    start = time.perf_counter()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        status = execute(sweep, args.workers, args.fresh, args.launcher)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the same command resumes {sweep['name']}", file=sys.stderr)
        return 130
    except (LockedError, OSError) as err:  # another runner owns the folder, or it cannot be written
        print(f"error: {err}", file=sys.stderr)
        return 1
    folder = Path(sweep["folder"])
    counts = {s: list(status.values()).count(s) for s in sorted(set(status.values()))}
    print(f"\n{sweep['name']}: {counts} in {time.perf_counter() - start:.0f} s")
    print(f"  run records:   {folder / 'runs'}")
    print(f"  report:        python analysis/report.py {folder}")
    print(f"  browse:        wandb leet {folder / 'runs' / 'wandb'}")
    print(f"  upload:        wandb sync {folder / 'runs' / 'wandb'}   (after `wandb login`)")
    return 0 if all(s == "finished" for s in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
