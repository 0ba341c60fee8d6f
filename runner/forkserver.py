"""A pre-warmed launcher: one process that has imported torch, transformers, wandb and train.py's
modules once, and forks every sweep run from there instead of starting a fresh interpreter.

A run started this way is still its own process, with exactly the argv, environment and working
directory `wandb agent` would give it: the child sets `sys.argv`, `os.environ`, the working
directory, `sys.path[0]` and its stdio as the fresh interpreter would have them, then runs the
program as `__main__` (runpy). It also runs the code on disk when it starts: if a repository module
the server imported has changed since, the run replaces itself with a fresh interpreter (exec). What
it saves is the interpreter start-up and the imports, paid once per sweep instead of once per run
(measured by `python bench/bench.py --ablation`).

The runner (runner/launching.py) talks to it over pipes, one JSON object per line:

    runner -> server   {"id": ..., "argv": [program, *args], "env": {...}, "cwd": ..., "log": path}
    server -> runner   {"ready": true}                      once the modules are imported
                       {"id": ..., "pid": N}                the run started
                       {"id": ..., "code": C}               it ended (C < 0: killed by signal -C)

Only the runner's own interpreter running a `.py` program can be forked (the runner checks, and
starts anything else as a subprocess). The server dies with the runner (PR_SET_PDEATHSIG), passes
SIGTERM on to its runs, and each run dies with the server, so no run outlives the sweep.
"""
from __future__ import annotations

import atexit
import importlib
import json
import os
import runpy
import select
import signal
import sys
import traceback

from nlu_collapse.runner.launching import set_parent_death_signal

# What a run imports, so that a forked run imports nothing heavy itself. Importing is all the server
# does with them: no torch op runs here, so no thread pool exists to be broken by fork().
PRELOAD = ("nlu_collapse.train", "wandb", "wandb.sdk.wandb_run", "wandb.sdk.wandb_init", "sklearn.metrics",
           "seqeval.metrics", "transformers.optimization", "tokenizers", "nlu_collapse.telemetry.tracking",
           "nlu_collapse.telemetry.forensics")

PROTOCOL = None  # the pipe to the runner: the server's original stdout (fd 1 itself goes to stderr)


def _send(message: dict) -> None:
    PROTOCOL.write(json.dumps(message) + "\n")
    PROTOCOL.flush()


def _exit_code(err: SystemExit) -> int:
    """What the interpreter does with an uncaught SystemExit: None -> 0, int -> it, else print it -> 1."""
    if err.code is None:
        return 0
    if isinstance(err.code, int):
        return err.code
    print(err.code, file=sys.stderr)
    return 1


def _loaded_sources(root: str) -> dict[str, int]:
    """Modification times of the repository's modules the server has imported."""
    times = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and os.path.abspath(path).startswith(root + os.sep):
            try:
                times[path] = os.stat(path).st_mtime_ns
            except OSError:
                pass
    return times


LOADED: dict[str, int] = {}  # the repository's modules as the server imported them (path -> mtime)


def _stale() -> bool:
    """True when a module the server imported has changed on disk since: the run must see today's code."""
    for path, mtime in LOADED.items():
        try:
            if os.stat(path).st_mtime_ns != mtime:
                return True
        except OSError:
            return True
    return False


def _child(request: dict, server_pid: int) -> None:
    """In the forked process: become the run `python <argv...>` would start, run it, never return."""
    if not set_parent_death_signal(signal.SIGTERM, server_pid):  # the server died before it took effect
        os._exit(128 + signal.SIGTERM)
    # Exit handlers that the imports registered belong to the server: what they clean up is shared by
    # every run (wandb's media temp directory), so a run that ends must not remove it under the others.
    atexit._clear()
    for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    log_fd = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    os.close(null_fd)
    sys.stdin = open(0, encoding="utf-8", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    program = os.path.abspath(request["argv"][0])
    if _stale():  # the code was edited during the sweep: this run starts a fresh interpreter, as it would have
        os.execve(sys.executable, [sys.executable, *request["argv"]], dict(os.environ))
    sys.argv = list(request["argv"])
    sys.path[0] = os.path.dirname(program)  # as `python program.py` sets it
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:  # a fresh interpreter sizes torch's pool from it at start-up
        import torch

        torch.set_num_threads(int(threads))
    code = 0
    try:
        runpy.run_path(program, run_name="__main__")
    except SystemExit as err:
        code = _exit_code(err)
    except KeyboardInterrupt:
        traceback.print_exc()
        code = 128 + signal.SIGINT
    except BaseException:  # what the interpreter prints for an uncaught exception, and its exit status
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()  # the run's own handlers, as a normal interpreter exit runs them
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


class Server:
    """The fork loop: requests on stdin, one child per request, exit statuses back on stdout."""

    def __init__(self):
        self.children: dict[int, str] = {}  # pid -> request id
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.stopping = False

    def _on_signal(self, signum, frame):
        if signum == signal.SIGTERM:
            self.stopping = True
        try:
            os.write(self.wake_w, b"x")
        except BlockingIOError:
            pass

    def start(self, request: dict) -> None:
        for stream in (sys.stdout, sys.stderr, PROTOCOL):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            for fd in (self.wake_r, self.wake_w, PROTOCOL.fileno()):
                os.close(fd)
            _child(request, os.getppid())
        self.children[pid] = request["id"]
        _send({"id": request["id"], "pid": pid})

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            rid = self.children.pop(pid, None)
            if rid is not None:
                _send({"id": rid, "code": os.waitstatus_to_exitcode(status)})

    def stop_children(self) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        while self.children:  # they record the crash and exit; report each
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            rid = self.children.pop(pid, None)
            if rid is not None:
                _send({"id": rid, "code": os.waitstatus_to_exitcode(status)})

    def serve(self) -> None:
        signal.signal(signal.SIGCHLD, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the runner, which stops the runs
        stdin = sys.stdin.buffer
        buffer = b""
        open_input = True
        while not self.stopping and (open_input or self.children):
            readable, _, _ = select.select([self.wake_r] + ([stdin] if open_input else []), [], [], 1.0)
            if self.wake_r in readable:
                os.read(self.wake_r, 4096)
            self.reap()
            if stdin in readable:
                chunk = os.read(stdin.fileno(), 65536)
                if not chunk:
                    open_input = False  # the runner is done: finish the runs in flight, then exit
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        self.start(json.loads(line))
        if self.children:
            self.stop_children()


def main() -> None:
    global PROTOCOL
    set_parent_death_signal(signal.SIGTERM, os.getppid())  # the runner died: SIGTERM, which stops the runs too
    PROTOCOL = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever an import prints cannot corrupt the protocol
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[0] = root
    for name in PRELOAD:
        importlib.import_module(name)
    LOADED.update(_loaded_sources(root))
    _send({"ready": True})
    Server().serve()


if __name__ == "__main__":
    main()
