"""What a dataset's numbers depend on: the SHA-256 of the bytes of every file each split is read
from. A run records it (config.json `identity.data`, W&B's config, the dataset artifact's metadata);
the sweep runner, resume, and held-out scoring compare it, so data replaced at the same path is
seen as other data, never mistaken for the same.

    {"sha256": <over every split>, "splits": {split: <sha256 of its files>},
     "files": {<path relative to the dataset>: <sha256>}}
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from nlu_collapse.data.formats import SPLITS, DataError
from nlu_collapse.safeio import sha256_file


def split_files(path: Path, data_format: str) -> dict[str, list[Path]]:
    """The files each split is read from (`data.formats.read_splits`), in reading order."""
    if data_format == "jsonl" or (data_format == "massive" and path.is_dir()):
        return {s: [path / f"{s}.jsonl"] for s in SPLITS}
    if data_format == "jointbert":
        names = ("seq.in", "seq.out", "label", "command")
        return {s: [path / s / name for name in names if name != "command" or (path / s / name).exists()]
                for s in SPLITS}
    if data_format == "massive":
        return {s: [path] for s in SPLITS}  # one file; `partition` splits it
    raise DataError(f"data_format={data_format!r}: expected one of jsonl, jointbert, massive")


def _combined(named: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name, sha in sorted(named.items()):
        digest.update(f"{name}\0{sha}\n".encode())
    return digest.hexdigest()


def fingerprint(path: Path, data_format: str) -> dict:
    """The fingerprint of the dataset at `path` (a folder or, for MASSIVE, one file)."""
    path = Path(path)
    files = split_files(path, data_format)
    base = path if path.is_dir() else path.parent
    try:
        shas = {file: sha256_file(file) for paths in files.values() for file in paths}
    except OSError as err:
        raise DataError(f"{err.filename}: cannot be read ({err.strerror})") from None
    name = lambda file: file.relative_to(base).as_posix()  # noqa: E731
    splits = {split: _combined({name(f): shas[f] for f in paths}) for split, paths in files.items()}
    return {"sha256": _combined(splits), "splits": splits, "files": {name(f): sha for f, sha in shas.items()}}


def differences(recorded: dict, current: dict) -> list[str]:
    """Which splits differ between two fingerprints, for messages ("test split changed")."""
    before, after = recorded.get("splits", {}), current.get("splits", {})
    return [f"{split} split changed" for split in SPLITS if before.get(split) != after.get(split)]
