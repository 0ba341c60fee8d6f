"""Shared fixtures: small datasets written by the tests themselves, W&B kept offline."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.datasets import write_generated


@pytest.fixture(autouse=True)
def _no_wandb_account(monkeypatch, tmp_path):
    """Tests never reach W&B's servers, whatever the machine's login state."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """The embedded generator at a small size: the same label structure, fast to train on."""
    return write_generated(tmp_path_factory.mktemp("small-phone-assistant"), (960, 96, 96))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Two batches of 64 per epoch: W&B checks of multi-epoch runs stay a few seconds."""
    return write_generated(tmp_path_factory.mktemp("tiny-phone-assistant"), (128, 32, 32))


@pytest.fixture(scope="session")
def nan_run(tmp_path_factory, tiny_data) -> Path:
    """A short run whose loss is NaN from step 1 (the -inf mask with the dense focal loss), in the runs/
    folder of a sweep-like folder (`nan_run.parent.parent`), W&B disabled."""
    from nlu_collapse import train

    runs = tmp_path_factory.mktemp("nan-sweep") / "runs"
    summary = train.main([f"--data={tiny_data}", f"--output_dir={runs}", "--wandb_mode=disabled", "--mask_value=-inf",
                          "--epochs=1", "--max_steps=3", "--threads=1", "--run_id=nan"])
    return runs / summary["run_id"]


@pytest.fixture
def crash_in_second_epoch(monkeypatch):
    """train.py's dev evaluation raises KeyboardInterrupt (as a Ctrl-C would) the second time it runs;
    call the fixture's `restore()` to evaluate normally again."""
    from nlu_collapse import train
    real_evaluate, calls = train.Evaluator.__call__, []

    def evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated kill")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train.Evaluator, "__call__", evaluate)

    class Crash:
        @staticmethod
        def restore():
            monkeypatch.setattr(train.Evaluator, "__call__", real_evaluate)
    return Crash
