"""Checkpoints: model, optimizer, scheduler, scaler, RNG states, resolved config, step, W&B run id.

Saved atomically (write, then rename), loaded with `weights_only=True`: a checkpoint holds only
tensors and plain Python values, so loading one never runs code.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import torch


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


def save_checkpoint(path: Path, model, **state) -> None:
    """The model's weights and `state` (plain values and tensors: optimiser state, RNG, progress)."""
    payload = {"model": model.state_dict(), **state}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no checkpoint (expected one written by train.py)")
    return torch.load(path, map_location=device, weights_only=True)
