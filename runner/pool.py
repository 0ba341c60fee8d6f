"""Running: every planned run that has not finished, over a pool of workers, with the manifest
(`sweep.json`: every planned run, its status and, for a failed run, why) rewritten as runs end.

One runner owns a sweep folder at a time (an flock the kernel drops when the runner dies); a second
one fails at once naming the holder's pid. Each run holds its own lock, so a run is never trained
twice at once. A failed run is recorded and the others go on; running again skips the finished runs
and resumes the ones that stopped after a checkpoint. A run whose checkpoints are all damaged is
marked failed with that reason and left alone until `fresh` starts it over. As each run ends, one
line says its verdict (`verdict_line`); `outcome_counts` sums them up at the end.
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed

from nlu_collapse import commandline
from nlu_collapse.runfolder import RUNNER_LOCK, SweepFolder
from nlu_collapse.runner.launching import Launcher
from nlu_collapse.runner.planning import stale_reason
from nlu_collapse.safeio import FolderLock, atomic_write_text, json_text
from nlu_collapse.telemetry import keys

FAILED = "failed"


def run_env(folder: SweepFolder, run_id: str, threads: int) -> dict:
    """What `wandb agent` would set for a run (its id, its group), plus the thread budget."""
    return {**os.environ, "WANDB_RUN_ID": run_id, "WANDB_RUN_GROUP": folder.name, "OMP_NUM_THREADS": str(threads),
            "PYTHONUNBUFFERED": "1"}


def run_args(run: dict, folder: SweepFolder, fresh: bool) -> list[str]:
    """The run's command; `--resume` when it has a checkpoint to continue from (unless `fresh`)."""
    run_dir = folder.run(run["run_id"])
    return list(run["args"]) + ([f"--resume={run_dir.path}"] if not fresh and run_dir.can_resume() else [])


def resume_problem(folder: SweepFolder, run_id: str) -> str | None:
    """Why the run cannot resume (its checkpoints checked by checksum alone), with what to do."""
    problem = folder.run(run_id).resume_problem()
    return f"{problem}; rerun the sweep with --fresh to start this run over" if problem else None


def write_manifest(sweep: dict, status: dict, reasons: dict | None = None, stale: list[dict] | None = None) -> None:
    """sweep.json: every planned run, its status and, for a failed run, why (`reason`); and `stale`:
    the run folders under runs/ that are not of this plan (kept, never counted), each with why."""
    reasons = reasons or {}
    runs = [{**run, "status": status[run["run_id"]],
             **({"reason": reasons[run["run_id"]]} if run["run_id"] in reasons else {})} for run in sweep["runs"]]
    atomic_write_text(SweepFolder(sweep["folder"]).manifest,
                      json_text({**sweep, "runs": runs, "stale": stale or []}, indent=2, default=str))


def outcome(folder: SweepFolder, run_id: str, status: str) -> str:
    """A run's outcome: its verdict (healthy, collapsed, not learned yet) once it finished, else its status."""
    if status != "finished":
        return status
    try:
        return str(folder.run(run_id).read_summary().get(keys.OUTCOME, status))
    except ValueError:  # a damaged summary: the status is all there is to say
        return status


def varied(sweep: dict) -> list[str]:
    """The parameters whose value differs between the sweep's runs (what tells one run from another)."""
    names = dict.fromkeys(name for run in sweep["runs"] for name in run["params"])
    return [name for name in names if len({json_text(run["params"].get(name)) for run in sweep["runs"]}) > 1]


def verdict_line(run: dict, folder: SweepFolder, status: str, reason: str | None, shown: list[str]) -> str:
    """`run <id> [<varied parameters>]: <outcome>, test entity F1 <x>` (or why it failed, and its log)."""
    rid = run["run_id"]
    params = " ".join(f"{name}={run['params'][name]}" for name in shown if name in run["params"])
    head = f"run {rid}" + (f" [{params}]" if params else "")
    if status == FAILED:
        return f"{head}: failed ({reason}); see {folder.log(rid)}"
    try:
        f1 = folder.run(rid).read_summary().get(keys.split_metric("test", keys.ENTITY_F1))
    except ValueError:
        f1 = None
    score = f", test entity F1 {f1:.3f}" if isinstance(f1, (int, float)) and not isinstance(f1, bool) else ""
    return f"{head}: {outcome(folder, rid, status)}{score}"


def outcome_counts(sweep: dict, status: dict) -> dict[str, int]:
    """{outcome: runs}, most frequent first, over every planned run."""
    folder = SweepFolder(sweep["folder"])
    outcomes = [outcome(folder, run["run_id"], status[run["run_id"]]) for run in sweep["runs"]]
    return {name: outcomes.count(name) for name in sorted(set(outcomes), key=lambda o: (-outcomes.count(o), o))}


def stale_runs(sweep: dict, folder: SweepFolder) -> list[dict]:
    """Run folders under runs/ that the plan does not hold (an earlier YAML, other data): kept as they
    are, listed with why, never resumed or counted."""
    planned = {run["run_id"] for run in sweep["runs"]}
    stale = []
    for rid, run_folder in folder.recorded_runs().items():
        if rid in planned:
            continue
        try:
            record = run_folder.read_config()
        except ValueError as err:
            stale.append({"run_id": rid, "why": f"unreadable record ({err})"})
            continue
        stale.append({"run_id": rid, "identity": run_folder.identity().get("key"),
                      "why": stale_reason(record, sweep["runs"])})
    return stale


def replaced(run: dict, folder: SweepFolder) -> str | None:
    """Why the record in a planned run's folder is not that run (another identity), or None. Such a
    record is never resumed or counted: the run starts over and the record moves to previous/."""
    run_folder = folder.run(run["run_id"])
    if not run_folder.has_record() or not run_folder.is_run():
        return None
    recorded = run_folder.identity().get("key")
    if recorded == run["identity"]["key"]:
        return None
    return "its folder held a record of another configuration or data; started over (the record is kept in previous/)"


def execute(sweep: dict, workers: int = 2, fresh: bool = False, launcher: str = "fork") -> dict:
    """Run every planned run that has not finished; returns {run_id: status}. Holds the folder's
    runner lock throughout (LockedError if another runner has it). `launcher`: fork (from a pre-warmed
    process, runner/forkserver.py) or subprocess (a fresh interpreter per run)."""
    folder = SweepFolder(sweep["folder"])
    folder.path.mkdir(parents=True, exist_ok=True)
    with FolderLock(folder.path, RUNNER_LOCK, what="sweep folder"):
        folder.logs.mkdir(parents=True, exist_ok=True)
        folder.runs.mkdir(parents=True, exist_ok=True)
        launch = Launcher(folder.logs / "forkserver.log", fork=launcher == "fork")
        try:
            return _execute(sweep, folder, workers, fresh, launch)
        finally:
            with commandline.interrupts_deferred("closing the fork server first"):
                launch.close()


def _execute(sweep: dict, folder: SweepFolder, workers: int, fresh: bool, launch: Launcher) -> dict:
    from tqdm import tqdm

    others = {run["run_id"]: why for run in sweep["runs"] if (why := replaced(run, folder))}
    status = {run["run_id"]: "pending" if run["run_id"] in others else folder.run(run["run_id"]).status()
              for run in sweep["runs"]}
    problems = {rid: resume_problem(folder, rid) for rid in status if status[rid] != "finished" and rid not in others}
    problems = {rid: problem for rid, problem in problems.items() if problem}
    reasons = {} if fresh else dict(problems)  # with --fresh these runs start over; others still resume
    stale = stale_runs(sweep, folder)
    for rid, why in others.items():
        print(f"run {rid}: {why}", file=sys.stderr)
    if stale:
        print(f"{len(stale)} run folder(s) under {folder.runs} are not of this plan (kept, marked stale in "
              f"{folder.manifest.name}, never counted): " + "; ".join(f"{s['run_id']}: {s['why']}" for s in stale),
              file=sys.stderr)
    for rid, problem in reasons.items():
        status[rid] = FAILED
        print(f"run {rid}: {problem}", file=sys.stderr)
    todo = [run for run in sweep["runs"] if status[run["run_id"]] != "finished" and run["run_id"] not in reasons]
    write_manifest(sweep, status, reasons, stale)
    print(f"{sweep['name']}: {len(sweep['runs'])} runs, {len(sweep['runs']) - len(todo)} already finished, "
          f"{len(todo)} to run with {workers} worker(s) -> {folder.path}", flush=True)
    threads = max(1, (os.cpu_count() or 1) // workers)
    shown = varied(sweep)

    def one(run: dict) -> int:
        rid = run["run_id"]
        fresh_start = rid in problems or rid in others
        return launch.run(rid, run_args(run, folder, fresh_start), run_env(folder, rid, threads), folder.log(rid))

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        with tqdm(total=len(todo), desc=sweep["name"], unit="run") as bar:
            futures = {pool.submit(one, run): run["run_id"] for run in todo}
            runs = {run["run_id"]: run for run in todo}
            for future in as_completed(futures):
                rid = futures[future]
                try:
                    code = future.result()
                except OSError as err:  # e.g. the log file cannot be written: this run fails, the others go on
                    code = -1
                    tqdm.write(f"run {rid} could not start: {err}")
                status[rid] = folder.run(rid).status() if code == 0 else FAILED
                if code != 0:
                    reasons[rid] = resume_problem(folder, rid) or f"exit {code}"
                else:
                    reasons.pop(rid, None)
                write_manifest(sweep, status, reasons, stale)
                tqdm.write(verdict_line(runs[rid], folder, status[rid], reasons.get(rid), shown))
                bar.update(1)
    except BaseException:
        with commandline.interrupts_deferred("stopping the runs in flight first (each keeps its record)"):
            launch.stop_all()  # Ctrl-C / SIGTERM: the runs in flight stop too, and keep their records
            pool.shutdown(wait=True, cancel_futures=True)  # on Ctrl-C: start nothing new
        raise
    pool.shutdown(wait=True)
    return status
