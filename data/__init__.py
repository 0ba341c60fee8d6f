"""Datasets: the embedded `phone-assistant` default and readers for JSONL, JointBERT and MASSIVE."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from data.formats import FORMATS, DataError, Example, detect_format, read_splits, write_jsonl_split
from data.labels import UNKNOWN, LabelSpace, build_label_space, count_unknown

log = logging.getLogger(__name__)

DEFAULT_DATA = "phone-assistant"
EMBEDDED_DIR = Path(__file__).resolve().parent / DEFAULT_DATA
EMBEDDED_SEED = 13

__all__ = ["DEFAULT_DATA", "FORMATS", "UNKNOWN", "DataError", "Dataset", "Example", "LabelSpace",
           "load_dataset", "materialize_embedded"]


@dataclass
class Dataset:
    name: str
    data_format: str
    splits: dict[str, list[Example]]
    labels: LabelSpace


def materialize_embedded(folder: Path = EMBEDDED_DIR) -> Path:
    """Write the embedded dataset as native JSONL on first use (it is generated, not committed)."""
    if not all((folder / f"{s}.jsonl").exists() for s in ("train", "dev", "test")):
        from data.phone_assistant import generate

        for split, examples in generate(EMBEDDED_SEED).items():
            write_jsonl_split(folder / f"{split}.jsonl", examples)
        log.info("generated the embedded %s dataset in %s", DEFAULT_DATA, folder)
    return folder


def load_dataset(data: str = DEFAULT_DATA, data_format: str = "auto") -> Dataset:
    """Read a dataset by name (`phone-assistant`) or path, with `auto` format detection."""
    path = materialize_embedded() if data == DEFAULT_DATA else Path(data)
    if data_format == "auto":
        data_format = detect_format(path)
    elif data_format not in FORMATS:
        raise DataError(f"data_format={data_format!r}: expected auto or one of {', '.join(FORMATS)}")
    splits = read_splits(path, data_format)
    labels = build_label_space(splits["train"])
    for split in ("dev", "test"):
        count_unknown(labels, split, splits[split])
    return Dataset(name=data if data == DEFAULT_DATA else path.name, data_format=data_format,
                   splits=splits, labels=labels)
