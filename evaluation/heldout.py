"""Held-out scoring: a finished run's model, rebuilt from its record by the loader predict.py uses
(`model.loading.load_run`), predicts its dataset's dev and test splits once; each split is scored on
the sentences phrased as in train (in-template) and on the held-out ones.

Which sentences are held out: the generator's own `held_out_phrasing` field when the JSONL records it
(`phone-assistant-wild`), otherwise a data-derived stand-in, `data.novelty.new_ngram_flags` (a
skeleton trigram train never has; it also counts typos and other noise as new). `analysis/heldout.py`
turns the scored runs into tables.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from nlu_collapse.config import renamed
from nlu_collapse.data import EMBEDDED, DataError, Dataset, load_dataset, materialize_embedded
from nlu_collapse.data.fingerprint import differences as data_differences
from nlu_collapse.data.novelty import new_ngram_flags, recorded_held_out
from nlu_collapse.evaluation.metrics import compute_metrics
from nlu_collapse.model import encode
from nlu_collapse.model.loading import LoadedRun, RunError, load_run
from nlu_collapse.model.prediction import predict_encoded

SPLITS = ("dev", "test")
IN_TEMPLATE, HELD_OUT = "in-template", "held-out"
SUBSETS = tuple((split, subset) for split in SPLITS for subset in (IN_TEMPLATE, HELD_OUT))
RECORDED = "recorded held_out_phrasing"
FALLBACK = "new skeleton trigram (data.novelty.new_ngram_flags; no recorded flag)"
# Config fields that name, place or log a run without changing what it learns: not part of a configuration.
BOOKKEEPING = ("seed", "run_id", "run_name", "output_dir", "resume", "device", "threads", "log_every",
               "task_grad_every", "forensics", "log_model", "wandb_mode", "wandb_project", "wandb_entity",
               "wandb_group")


class HeldoutError(ValueError):
    """An input that cannot be analysed; the message names the path and what was expected."""


@dataclass
class Flags:
    """Which dev and test sentences are held out, and how that was decided."""
    by_split: dict[str, list[bool]]
    source: str


@dataclass
class ScoredRun:
    run_dir: Path
    name: str                     # the run name without its seed
    seed: int | None
    configuration: str            # the grouping key: config without BOOKKEEPING, as sorted JSON
    data: str
    flags: Flags
    checkpoint: str
    step: int
    identity: str | None = None   # the run's identity key (None: recorded before identities)
    sizes: dict[tuple[str, str], int] = field(default_factory=dict)         # (split, subset) -> sentences
    scores: dict[tuple[str, str], dict] = field(default_factory=dict)       # (split, subset) -> compute_metrics


def held_out(dataset: Dataset, data: str) -> Flags:
    """The generator's recorded flags when the native JSONL has them, else the new-trigram stand-in."""
    folder = materialize_embedded(data) if data in EMBEDDED else Path(data)
    recorded = recorded_held_out(folder) if dataset.data_format == "jsonl" else None
    if recorded is not None:
        return Flags(recorded, RECORDED)
    train = dataset.splits["train"]
    return Flags({split: new_ngram_flags(train, dataset.splits[split]) for split in SPLITS}, FALLBACK)


class DataCache:
    """Each dataset read and flagged once, however many runs use it."""

    def __init__(self):
        self._loaded: dict[tuple[str, str], tuple[Dataset, Flags]] = {}

    def get(self, data: str, data_format: str) -> tuple[Dataset, Flags]:
        if (data, data_format) not in self._loaded:
            dataset = load_dataset(data, data_format)
            self._loaded[data, data_format] = dataset, held_out(dataset, data)
        return self._loaded[data, data_format]


def _check_same_data(run: LoadedRun, dataset: Dataset, flags: Flags) -> None:
    """A run scored on data other than what it was trained and tested on would report numbers nobody
    measured: the data's fingerprint must be the one the run recorded (for a record from before
    fingerprints, only the split sizes can be compared)."""
    fingerprint = (run.record.get("identity") or {}).get("data")
    if fingerprint is not None and fingerprint.get("sha256") != dataset.fingerprint.get("sha256"):
        raise HeldoutError(f"{run.run_dir}: {run.config.data} is not the data the run was trained on "
                           f"({'; '.join(data_differences(fingerprint, dataset.fingerprint))})")
    recorded = run.record.get("sizes", {}) if fingerprint is None else {}
    for split in SPLITS:
        size = len(dataset.splits[split])
        if split in recorded and recorded[split] != size:
            raise HeldoutError(f"{run.run_dir}: {run.config.data} now has {size} {split} sentences, the run had "
                               f"{recorded[split]} (expected the data the run was trained on)")
        if len(flags.by_split[split]) != size:
            raise HeldoutError(f"{run.config.data}: {len(flags.by_split[split])} held_out_phrasing flags for {size} "
                               f"{split} sentences (expected one per sentence)")


def subset_scores(examples, predictions, labels, keep: list[bool]) -> dict | None:
    """compute_metrics on the kept sentences only; None when none is kept (no score, not a zero)."""
    if not any(keep):
        return None
    pick = lambda values: None if values is None else [v for v, k in zip(values, keep) if k]  # noqa: E731
    chosen = replace(predictions, tags=pick(predictions.tags), intents=pick(predictions.intents),
                     commands=pick(predictions.commands), intent_probs=None, command_probs=None)
    metrics, _ = compute_metrics(pick(examples), chosen, labels)
    return metrics


def configuration_key(config: dict, data_sha256: str | None) -> str:
    """What groups runs as seeds of one configuration: the config without BOOKKEEPING, and the data bytes."""
    kept = {k: v for k, v in renamed(config).items() if k not in BOOKKEEPING}
    return json.dumps({**kept, "data bytes": data_sha256}, sort_keys=True, default=str)


def name_without_seed(name: str) -> str:
    return re.sub(r"\s*\bseed=\S+", "", name).strip()


def score_run(run_dir: Path, checkpoint: str, device: torch.device, cache: DataCache) -> ScoredRun:
    """Predict dev and test once with the run's own model and label space, then score each subset."""
    try:
        run = load_run(run_dir, checkpoint, device)
    except RunError as err:
        raise HeldoutError(str(err)) from None
    try:
        dataset, flags = cache.get(run.config.data, run.config.data_format)
    except (DataError, OSError) as err:
        raise HeldoutError(f"{run_dir}: its data {run.config.data!r} cannot be read ({err})") from None
    _check_same_data(run, dataset, flags)
    scored = ScoredRun(run_dir, name_without_seed(str(run.record.get("run_name") or run_dir.name)), run.config.seed,
                       configuration_key(run.record["config"], dataset.fingerprint.get("sha256")), dataset.name,
                       flags, checkpoint, run.step, identity=(run.record.get("identity") or {}).get("key"))
    for split in SPLITS:
        examples = dataset.splits[split]
        encoded = encode(examples, run.tokenizer, run.labels, run.config.max_length)
        predictions = predict_encoded(run.model, encoded, run.labels, run.config.batch_size * 2, device,
                                      run.tokenizer.pad_token_id)
        for subset in (IN_TEMPLATE, HELD_OUT):
            keep = [flag == (subset == HELD_OUT) for flag in flags.by_split[split]]
            scored.sizes[split, subset] = sum(keep)
            scored.scores[split, subset] = subset_scores(examples, predictions, run.labels, keep)
    return scored


