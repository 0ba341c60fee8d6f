"""Checkpoints: model, optimizer, scheduler, scaler, RNG states, resolved config, step, W&B run id.

Each `X.pt` has a sidecar `X.pt.sha256` (its SHA-256 and size), and nothing is loaded whose bytes do
not match it: a torn, truncated or overwritten checkpoint is refused with an error naming the file,
never unpickled. `last.pt` keeps its predecessor as `last.prev.pt`, so a kill or a damaged file costs
at most one epoch: resume falls back to the newest intact one. Loaded with `weights_only=True`:
a checkpoint holds only tensors and plain Python values, so loading one never runs code.
"""
from __future__ import annotations

import io
import random
from pathlib import Path

import torch

from nlu_collapse.runfolder import CK_MODEL, RunFolder, previous
from nlu_collapse.safeio import atomic_write, sidecar, verify, write_checked


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged or unverifiable; the message names the file."""


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, model, *, keep_previous: bool = False, **state) -> None:
    """The model's weights and `state` (plain values and tensors: optimiser state, RNG, progress),
    serialised in memory, then written with their checksum atomically. With `keep_previous` (a
    resumable checkpoint) the intact predecessor is kept as `<name>.prev.pt` first."""
    buffer = io.BytesIO()
    torch.save({CK_MODEL: model.state_dict(), **state}, buffer)  # in memory: a full disk fails in our write
    path = Path(path)
    if keep_previous and verify(path) is None:
        _copy_intact(path, previous(path))
    write_checked(path, buffer.getvalue())


def _copy_intact(source: Path, target: Path) -> None:
    atomic_write(target, source.read_bytes())
    atomic_write(sidecar(target), sidecar(source).read_bytes())  # after the bytes: a kill between is a mismatch


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """A verified checkpoint; raises CheckpointError naming the file otherwise."""
    problem = verify(path)
    if problem:
        raise CheckpointError(problem)
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # bytes that match their checksum but are no checkpoint of ours
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(checkpoint, dict) or CK_MODEL not in checkpoint:
        raise CheckpointError(f"{path}: not a checkpoint written by train.py")
    return checkpoint


def load_resumable(folder: RunFolder, device: torch.device | str = "cpu") -> tuple[dict, Path]:
    """The newest intact of `last.pt` and `last.prev.pt` (RunFolder's triage), with its path;
    CheckpointError naming each refused file otherwise (best.pt too, when damaged: the test
    evaluation loads it)."""
    first, problems = folder.resume_problems()
    candidates = folder.resume_candidates()
    for candidate in candidates[candidates.index(first):] if first else ():
        try:
            return load_checkpoint(candidate, device), candidate
        except CheckpointError as err:  # damaged, or matches its checksum yet is no checkpoint of ours
            problems.append(str(err))
    raise CheckpointError("cannot resume: " + "; ".join(problems) + " (rerun without --resume, or the sweep "
                          "runner with --fresh, to start this run over)")
