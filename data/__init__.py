"""Datasets: the embedded ones (`phone-assistant`, `phone-assistant-wild`) and readers for JSONL,
JointBERT and MASSIVE."""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from nlu_collapse.config import Config
from nlu_collapse.data.fingerprint import fingerprint
from nlu_collapse.data.formats import FORMATS, DataError, Example, detect_format, jsonl_text, read_splits
from nlu_collapse.data.labels import UNKNOWN, LabelSpace, build_label_space, count_unknown
from nlu_collapse.safeio import atomic_write_text

log = logging.getLogger(__name__)

DEFAULT_DATA = Config.data  # the default dataset, spelled once (in the run configuration)
DATA_DIR = Path(__file__).resolve().parent  # embedded datasets are written to DATA_DIR / <name>
# Embedded datasets: name -> (generator module, seed). Each module has `generate(seed)`; one that also has
# `generate_flagged(seed)` gets its held-out-phrasing flags written into the JSONL (`held_out_phrasing`).
EMBEDDED = {  # the default first
    "phone-assistant-wild": ("nlu_collapse.data.phone_assistant_wild", 13),
    "phone-assistant": ("nlu_collapse.data.phone_assistant", 13),
}

__all__ = ["DEFAULT_DATA", "EMBEDDED", "FORMATS", "UNKNOWN", "DataError", "Dataset", "Example", "LabelSpace",
           "data_fingerprint", "load_dataset", "materialize_embedded", "resolve_data"]


@dataclass
class Dataset:
    name: str
    data_format: str
    splits: dict[str, list[Example]]
    labels: LabelSpace
    fingerprint: dict = field(default_factory=dict)  # data.fingerprint: the SHA-256 of every file read


def _generated_text(name: str) -> dict[str, str]:
    """The JSONL text of each split of an embedded dataset, flags included where the generator has them."""
    module_name, seed = EMBEDDED[name]
    module = importlib.import_module(module_name)
    if hasattr(module, "generate_flagged"):
        return {split: jsonl_text([ex for ex, _ in flagged], [{"held_out_phrasing": f} for _, f in flagged])
                for split, flagged in module.generate_flagged(seed).items()}
    return {split: jsonl_text(examples) for split, examples in module.generate(seed).items()}


def materialize_embedded(name: str = DEFAULT_DATA) -> Path:
    """Write an embedded dataset as native JSONL on first use (it is generated, not committed). Each file
    is written whole and renamed into place, so a concurrent reader never sees half of one."""
    if name not in EMBEDDED:
        raise DataError(f"{name!r} is not an embedded dataset (expected one of {', '.join(EMBEDDED)})")
    folder = DATA_DIR / name
    if not all((folder / f"{s}.jsonl").exists() for s in ("train", "dev", "test")):
        for split, text in _generated_text(name).items():
            atomic_write_text(folder / f"{split}.jsonl", text)
        log.info("generated the embedded %s dataset in %s", name, folder)
    return folder


def resolve_data(data: str = DEFAULT_DATA, data_format: str = "auto") -> tuple[Path, str]:
    """(path, format) of a dataset given by embedded name or path, with `auto` format detection."""
    path = materialize_embedded(data) if data in EMBEDDED else Path(data)
    if data_format == "auto":
        data_format = detect_format(path)
    elif data_format not in FORMATS:
        raise DataError(f"data_format={data_format!r}: expected auto or one of {', '.join(FORMATS)}")
    return path, data_format


def data_fingerprint(data: str = DEFAULT_DATA, data_format: str = "auto") -> dict:
    """The fingerprint of a dataset without parsing it (the sweep runner's plan)."""
    return fingerprint(*resolve_data(data, data_format))


def load_dataset(data: str = DEFAULT_DATA, data_format: str = "auto") -> Dataset:
    """Read a dataset by embedded name (`phone-assistant`, `phone-assistant-wild`) or path, with `auto`
    format detection, and fingerprint the files it was read from."""
    path, data_format = resolve_data(data, data_format)
    try:
        before = fingerprint(path, data_format)
    except DataError:  # a missing file: the reader below names it, with what was expected
        before = None
    splits = read_splits(path, data_format)
    after = fingerprint(path, data_format)
    if after != before:  # replaced while being read: neither version is known to be what was read
        raise DataError(f"{path}: changed while it was being read; run again once it is written")
    labels = build_label_space(splits["train"])
    for split in ("dev", "test"):
        count_unknown(labels, split, splits[split])
    return Dataset(name=data if data in EMBEDDED else path.name, data_format=data_format,
                   splits=splits, labels=labels, fingerprint=after)
