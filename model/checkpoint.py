"""Checkpoints: model, optimizer, scheduler, scaler, RNG states, resolved config, step, W&B run id.

Each `X.pt` carries its own SHA-256 and size in a trailer (safeio's checked files) and is written with
one atomic rename, so a kill at any instant leaves the old file or the new one, whole; nothing is loaded
whose bytes do not match: a damaged or truncated checkpoint is refused with an error naming the file,
never unpickled. A reader verifies and loads the same bytes, from one read: a live run's checkpoint is
never refused because it was replaced in between. Both `best.pt` and `last.pt` keep their predecessor
(`best.prev.pt`, `last.prev.pt`, a hard link where possible), so damage costs at most one epoch. Loaded
with `weights_only=True`: a checkpoint holds only tensors and plain Python values, so loading one never
runs code. Plain `torch.load` also reads these files (the zip reader ignores the trailer).
"""
from __future__ import annotations

import io
import logging
from pathlib import Path

import torch

from nlu_collapse.runfolder import CK_MODEL, RunFolder, previous
from nlu_collapse.safeio import keep_copy, read_checked, verify, write_checked


log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged or unverifiable; the message names the file."""


def save_checkpoint(path: Path, model, **state) -> None:
    """The model's weights and `state` (plain values and tensors: optimiser state, RNG, progress),
    serialised in memory, then written with their checksum in one atomic write; the intact predecessor
    is kept as `<name>.prev.pt` first (a kill between the two leaves both intact)."""
    buffer = io.BytesIO()
    torch.save({CK_MODEL: model.state_dict(), **state}, buffer)  # in memory: a full disk fails in our write
    path = Path(path)
    if verify(path) is None:
        keep_copy(path, previous(path))
    write_checked(path, buffer.getvalue())


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """A verified checkpoint; raises CheckpointError naming the file otherwise."""
    payload, problem = read_checked(path)
    if problem:
        raise CheckpointError(problem)
    try:
        checkpoint = torch.load(io.BytesIO(payload), map_location=device, weights_only=True)
    except Exception as err:  # bytes that match their checksum but are no checkpoint of ours
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(checkpoint, dict) or CK_MODEL not in checkpoint:
        raise CheckpointError(f"{path}: not a checkpoint written by train.py")
    return checkpoint


def load_resumable(folder: RunFolder, device: torch.device | str = "cpu") -> tuple[dict, Path]:
    """The newest intact of `last.pt` and `last.prev.pt` (RunFolder's triage), with its path;
    CheckpointError naming each refused file otherwise (best.pt too, when it and its predecessor are
    lost: the test evaluation loads it). A lost best.pt is restored from best.prev.pt, with a warning."""
    first, problems = folder.resume_problems()
    candidates = folder.resume_candidates()
    for candidate in candidates[candidates.index(first):] if first else ():
        try:
            checkpoint = load_checkpoint(candidate, device)
        except CheckpointError as err:  # damaged, or matches its checksum yet is no checkpoint of ours
            problems.append(str(err))
            continue
        lost = verify(folder.best)
        if lost:
            keep_copy(folder.best_previous, folder.best)
            log.warning("%s; restored the previous best-on-dev checkpoint from %s", lost, folder.best_previous.name)
        return checkpoint, candidate
    raise CheckpointError("cannot resume: " + "; ".join(problems) + " (rerun without --resume, or the sweep "
                          "runner with --fresh, to start this run over)")
