"""Launching: one sweep run as its own process, forked from the pre-warmed fork server
(`runner/forkserver.py`) when it can be, else as a subprocess from an argument list (never a shell).

Runs die with their runner: on Linux PR_SET_PDEATHSIG sends them SIGTERM when the parent dies, even
by SIGKILL, so they record the crash. `set_parent_death_signal` is the one copy of that OS-specific
code; the fork server's children call it too.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG = 1


def _prctl():
    """libc's prctl, looked up once here: a forked child should only call it, not load anything."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: SIGTERM/Ctrl-C handling of runner and server still applies
        return None


PRCTL = _prctl()


def set_parent_death_signal(sig: int, parent: int) -> bool:
    """This process gets `sig` when `parent` dies (Linux only); False when the parent died before
    that took effect (the caller must then end itself)."""
    if PRCTL is None:
        return True
    PRCTL(PR_SET_PDEATHSIG, sig)
    return os.getppid() == parent


def die_with_parent(parent: int):
    """preexec_fn of a child that must get SIGTERM when the runner dies."""
    def setup():
        if not set_parent_death_signal(signal.SIGTERM, parent):
            os.kill(os.getpid(), signal.SIGTERM)
    return setup


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


class ForkServer:
    """The runner's side of runner/forkserver.py: one pre-warmed process per sweep that forks each run
    (same argv, environment and working directory as a fresh `python train.py ...`; see its docstring).
    If it cannot start or dies, runs fall back to plain subprocesses."""

    def __init__(self, log_path: Path):
        self._lock = threading.Lock()
        self._done: dict[str, tuple[threading.Event, list]] = {}
        self.pids: dict[str, int] = {}
        self.alive = True
        self._ready = threading.Event()
        with log_path.open("a", encoding="utf-8") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "nlu_collapse.runner.forkserver"], cwd=ROOT,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                            preexec_fn=die_with_parent(os.getpid()))
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


class Launcher:
    """Starts runs and can stop every one in flight. `fork`: through a ForkServer (Linux/macOS),
    else, or when the server is gone, each run is a subprocess."""

    def __init__(self, server_log: Path, fork: bool = True):
        self.server = ForkServer(server_log) if fork and hasattr(os, "fork") else None
        self._running: set[subprocess.Popen] = set()

    def run(self, run_id: str, args: list[str], env: dict, log_path: Path) -> int:
        """Run `args` (a `wandb agent`-style command) to its end; its exit code."""
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(args)}\n")
        target = forkable(args) if self.server is not None else None
        if target is not None:
            code = self.server.run(run_id, target[0], {**env, **target[1]}, log_path)
            if code is not None:
                return code
        with log_path.open("a", encoding="utf-8") as log:
            process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       preexec_fn=die_with_parent(os.getpid()))
            self._running.add(process)
            try:
                return process.wait()
            finally:
                self._running.discard(process)

    def stop_all(self) -> None:
        """SIGTERM to every run in flight (they record the crash and keep their records)."""
        for process in list(self._running):
            process.terminate()
        if self.server is not None:
            self.server.terminate_runs()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
