"""Shared fixtures: small datasets written by the tests themselves, W&B kept offline."""
from __future__ import annotations

from pathlib import Path

import pytest

from data.formats import write_jsonl_split
from data.phone_assistant import generate


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
    folder = tmp_path_factory.mktemp("small-phone-assistant")
    for split, examples in generate(seed=5, sizes=(960, 96, 96)).items():
        write_jsonl_split(folder / f"{split}.jsonl", examples)
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Two batches of 64 per epoch: W&B checks of multi-epoch runs stay a few seconds."""
    folder = tmp_path_factory.mktemp("tiny-phone-assistant")
    for split, examples in generate(seed=5, sizes=(128, 32, 32)).items():
        write_jsonl_split(folder / f"{split}.jsonl", examples)
    return folder
