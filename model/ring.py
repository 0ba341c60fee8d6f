"""Recoverable history: the whole training state every N optimizer steps, the newest K kept, so that the
steps before a collapse can be replayed exactly (analysis/fixes.py).

    checkpoints/ring/step-00000000.pt   the initial state, kept for good (a step-1 collapse replays from it)
    checkpoints/ring/step-<s>.pt        after s optimizer steps, s a multiple of --ring_every; the newest
                                        --ring_keep are kept, and the newest one before the run's first
                                        non-finite step is never dropped (it is what a replay needs)

A ring checkpoint holds what `last.pt` holds (model, optimizer, scheduler, fp16 scaler, RNG states,
the train state with the health monitor, the resolved config, the run id), taken at the end of a
step, after everything the training loop does in it: the next step starts from exactly this state.
The data position is the step itself: the batch order is a function of (seed, epoch) and the step
fixes the epoch and the batch in it (train.epoch_order). Each file is one checked, atomic write
(safeio.write_checked), so a kill leaves the old ring or the new one; a resume drops the entries
after the step it resumes from (they belong to steps it trains again) and writes them again.
"""
from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

import torch

from nlu_collapse.model.checkpoint import CheckpointError, load_checkpoint
from nlu_collapse.runfolder import RunFolder
from nlu_collapse.safeio import write_checked

INITIAL_STEP = 0


class CheckpointRing:
    """Args:
        folder: the run's folder (its files are named there).
        every: keep the state every `every` optimizer steps (0: keep nothing, not even the initial state).
        keep: how many of those are kept besides the initial state.
    """

    def __init__(self, folder: RunFolder, every: int, keep: int):
        self.folder, self.every, self.keep = folder, every, keep
        self.pinned: int | None = None  # the newest entry before the first non-finite step: never dropped
        self.seconds, self.bytes, self.writes = 0.0, 0, 0  # what keeping the ring cost this attempt

    def start(self, step: int, state: Callable[[], dict]) -> None:
        """Training starts at `step`: at 0, keep the initial state; on a resume, drop the entries after
        `step` (they describe steps that are trained again, and are written again)."""
        for later, path in self.folder.ring_steps().items():
            if later > step:
                path.unlink(missing_ok=True)
        if step == INITIAL_STEP:
            self.after_step(step, state)

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def after_step(self, step: int, state: Callable[[], dict], nonfinite_at: int | None = None) -> None:
        """At the end of step `step` (0: before the first): write the state if it is due, drop old entries.
        `nonfinite_at`: the run's first non-finite step, if any (pins the entry a replay starts from)."""
        if nonfinite_at is not None and self.pinned is None:
            before = [s for s in self.folder.ring_steps() if s < nonfinite_at]
            self.pinned = before[-1] if before else INITIAL_STEP
        if not self.due(step):
            return
        started = time.perf_counter()
        buffer = io.BytesIO()
        torch.save(state(), buffer)  # in memory: a full disk fails in our write, naming the file
        write_checked(self.folder.ring_checkpoint(step), buffer.getvalue())
        self._drop_old()
        self.seconds += time.perf_counter() - started
        self.bytes, self.writes = buffer.tell(), self.writes + 1

    def _drop_old(self) -> None:
        steps = [s for s in self.folder.ring_steps() if s not in (INITIAL_STEP, self.pinned)]
        for step in steps[:-self.keep]:
            self.folder.ring_checkpoint(step).unlink(missing_ok=True)


def ring_entries(folder: RunFolder) -> dict[int, Path]:
    """The ring's checkpoints by step, oldest first; CheckpointError naming the folder when there are none."""
    entries = folder.ring_steps()
    if not entries:
        raise CheckpointError(f"{folder.ring}: no ring checkpoints (the run was trained with --ring_every=0, or "
                              "by a train.py from before the ring): nothing to replay from")
    return entries


def last_before(folder: RunFolder, step: int) -> tuple[int, dict]:
    """(s, the checkpoint) of the newest ring entry with s < `step`: the state a replay of `step` starts from.
    CheckpointError naming the file when it is damaged, or the folder when there is none."""
    entries = ring_entries(folder)
    before = [s for s in entries if s < step]
    if not before:
        raise CheckpointError(f"{folder.ring}: no ring checkpoint before step {step} (kept: "
                              f"{', '.join(map(str, entries))})")
    return before[-1], load_checkpoint(entries[before[-1]])
