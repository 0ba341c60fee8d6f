"""The pre-warmed launcher (runner/forkserver.py): a forked run is the process `wandb agent` would start.

Every check runs a probe program through sweeps/local.py with each launcher and compares what the
probe saw (argv, environment, working directory, sys.path[0], stdin, torch's thread count) and how
each way of ending (exit 0, `sys.exit("error: ...")`, an uncaught exception, a signal) is reported.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nlu_collapse.runner import launching
from nlu_collapse.safeio import read_json
from tests.scripts import local

ROOT = Path(__file__).resolve().parent.parent

# seed selects how the probe ends: 0 normally, 1 sys.exit with a message, 2 an exception, 3 SIGKILL.
PROBE = textwrap.dedent("""
    import json, os, signal, sys
    seed = int([a.split("=", 1)[1] for a in sys.argv if a.startswith("--seed=")][0])
    import torch
    seen = {"argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[0], "stdin": sys.stdin.read(),
            "threads": torch.get_num_threads(), "name": __name__,
            "env": {k: os.environ.get(k) for k in ("WANDB_RUN_ID", "WANDB_RUN_GROUP", "OMP_NUM_THREADS",
                                                    "PYTHONUNBUFFERED", "PROBE_MARK")}}
    print("SEEN " + json.dumps(seen))
    if seed == 1:
        sys.exit("error: the probe was told to fail")
    if seed == 2:
        raise RuntimeError("the probe raised")
    if seed == 3:
        os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.fixture(scope="module")
def probe_sweep(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("probe")
    (folder / "probe.py").write_text(PROBE)
    sweep = folder / "probe.yaml"
    sweep.write_text(textwrap.dedent(f"""
        program: {folder / 'probe.py'}
        method: grid
        parameters:
          seed: {{values: [0, 1, 2, 3]}}
        command: [ "${{env}}", "${{interpreter}}", "${{program}}", "${{args}}" ]
    """))
    return sweep


def _run(sweep: Path, out: Path, launcher: str, monkeypatch) -> dict:
    monkeypatch.setenv("PROBE_MARK", "from-the-runner")
    code = local.main([str(sweep), f"--out={out}", "--workers=2", f"--launcher={launcher}"])
    assert code == 1  # three of the four probes fail on purpose
    folder = out / sweep.stem
    manifest = read_json(folder / "sweep.json")
    results = {}
    for run in manifest["runs"]:
        log = (folder / "logs" / f"{run['run_id']}.log").read_text()
        seen = [json.loads(line[5:]) for line in log.splitlines() if line.startswith("SEEN ")]
        results[run["params"]["seed"]] = {"seen": seen[0], "reason": run.get("reason"), "log": log,
                                          "run_id": run["run_id"], "status": run["status"]}
    return results


@pytest.fixture(scope="module")
def both(probe_sweep, tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        out = tmp_path_factory.mktemp("runs")
        return {launcher: _run(probe_sweep, out / launcher, launcher, monkeypatch)
                for launcher in ("fork", "subprocess")}


def test_a_forked_run_sees_what_a_fresh_interpreter_sees(both):
    for seed in range(4):
        forked, fresh = both["fork"][seed]["seen"], both["subprocess"][seed]["seen"]
        out_flag = lambda argv: [a for a in argv if not a.startswith("--output_dir=")]  # noqa: E731 - per-launcher folder
        assert out_flag(forked["argv"]) == out_flag(fresh["argv"])
        assert forked["argv"][0] == fresh["argv"][0] and forked["argv"][0].endswith("probe.py")
        assert {k: v for k, v in forked.items() if k != "argv"} == {k: v for k, v in fresh.items() if k != "argv"}
        assert forked["env"]["WANDB_RUN_ID"] == both["fork"][seed]["run_id"]
        assert forked["env"]["PROBE_MARK"] == "from-the-runner" and forked["stdin"] == ""
        assert forked["threads"] == int(forked["env"]["OMP_NUM_THREADS"]) == max(1, (os.cpu_count() or 1) // 2)
        assert forked["name"] == "__main__" and forked["path0"] == str(Path(forked["argv"][0]).parent)


def test_every_way_of_ending_is_reported_as_a_fresh_process_reports_it(both):
    for launcher, runs in both.items():
        assert runs[0]["status"] != "failed" and runs[0]["reason"] is None
        assert runs[1]["reason"] == "exit 1" and "error: the probe was told to fail" in runs[1]["log"]
        assert runs[2]["reason"] == "exit 1"
        assert "Traceback" in runs[2]["log"] and "RuntimeError: the probe raised" in runs[2]["log"]
        assert runs[3]["reason"] == f"exit {-signal.SIGKILL}", launcher


def test_forkable_accepts_only_this_interpreter_running_a_python_program():
    assert launching.forkable(["/usr/bin/env", sys.executable, "train.py", "--seed=1"]) == (["train.py", "--seed=1"], {})
    assert launching.forkable(["/usr/bin/env", "A=1", sys.executable, "train.py"]) == (["train.py"], {"A": "1"})
    assert launching.forkable([sys.executable, "-u", "train.py"]) is None           # interpreter options
    assert launching.forkable(["/usr/bin/env", "/usr/bin/python2", "train.py"]) is None  # another interpreter
    assert launching.forkable(["/usr/bin/env", sys.executable, "-m", "train"]) is None
    assert launching.forkable(["/usr/bin/env", "bash", "run.sh"]) is None


def test_a_run_after_a_code_change_starts_a_fresh_interpreter(tmp_path):
    """Modules the server imported are stale once edited: the next run execs a fresh interpreter."""
    probe = tmp_path / "which.py"
    probe.write_text("import sys; print('warm' if 'nlu_collapse.train' in sys.modules else 'fresh', sys.argv[1:])\n")
    server = subprocess.Popen([sys.executable, "-m", "nlu_collapse.runner.forkserver"], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    edited = ROOT / "config.py"
    before = edited.stat()
    try:
        assert json.loads(server.stdout.readline()) == {"ready": True}

        def run(rid: str) -> str:
            request = {"id": rid, "argv": [str(probe), "--x=1"], "env": dict(os.environ), "cwd": str(ROOT),
                       "log": str(tmp_path / f"{rid}.log")}
            server.stdin.write((json.dumps(request) + "\n").encode())
            server.stdin.flush()
            assert "pid" in json.loads(server.stdout.readline())
            assert json.loads(server.stdout.readline()) == {"id": rid, "code": 0}
            return (tmp_path / f"{rid}.log").read_text().strip()

        assert run("before") == "warm ['--x=1']"
        os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
        assert run("after") == "fresh ['--x=1']"
    finally:
        os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
        server.stdin.close()
        server.wait(timeout=60)
