"""Build the model, and rebuild a trained one from its run record.

`build_model` is the one constructor train.py and `load_run` share. `load_run` needs nothing but
the run directory train.py wrote: the resolved config and label names (`config.json`), the
weights (`checkpoints/best.pt` or `last.pt`), the tokenizer (`tokenizer/`) and the encoder's
architecture (`encoder/config.json`, so a tiny encoder of any `tiny_*` size rebuilds as trained;
runs from before it was recorded fall back to the config: the tiny_* flags, or the Hugging Face
encoder name, which then has to be loadable offline). No data is read: the label
vocabularies and the invalid-label mask are the run's own, in the run's order.
"""
from __future__ import annotations

import copy
import json
import pickle
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from nlu_collapse.config import Config, renamed
from nlu_collapse.data.labels import LabelSpace, Vocab
from nlu_collapse.model.checkpoint import CheckpointError, load_checkpoint
from nlu_collapse.model.multitask import MultiTaskNLU, build_encoder, tiny_architecture, tiny_encoder
from nlu_collapse.runfolder import CHECKPOINTS, CK_MODEL, CK_TRAIN_STATE, TS_STEP, RunFolder
from nlu_collapse.safeio import read_json


class RunError(ValueError):
    """A run directory that cannot be loaded; the message names the path and what is missing."""


# Keys of a Hugging Face config file that name Python code to import from the folder (transformers runs it
# when `trust_remote_code` is granted, and asks at a terminal when it is left unset).
CUSTOM_CODE_KEYS = ("auto_map", "custom_pipelines")


def refuse_custom_code(folder: Path) -> None:
    """A run folder is data, never code: one whose Hugging Face config files (`*.json` in `folder`) name
    custom code is refused before transformers reads them. Everything here also loads with
    `trust_remote_code=False`, so no prompt is ever shown and nothing from the folder is imported."""
    for path in sorted(Path(folder).glob("*.json")):
        try:
            content = read_json(path)
        except (OSError, ValueError):  # a damaged file: the loader names it
            continue
        named = [key for key in CUSTOM_CODE_KEYS if isinstance(content, dict) and key in content]
        if named:
            raise RunError(f"{path}: names custom code to run ({named[0]}: {json.dumps(content[named[0]])[:80]}); "
                           f"code from a run folder is never run (train.py writes no {named[0]}; delete the entry "
                           "to load the folder with transformers' own classes)")


def save_encoder_config(config, folder: Path) -> None:
    """The encoder's architecture for `load_run`, without the custom-code entries a hub config may carry
    (the encoder was built without running them; `refuse_custom_code` would refuse the run folder)."""
    config = copy.deepcopy(config)
    for key in CUSTOM_CODE_KEYS:
        if hasattr(config, key):
            delattr(config, key)
    config.save_pretrained(folder)


@dataclass
class LoadedRun:
    run_dir: Path
    config: Config
    record: dict                  # config.json as written: run_id, run_name, dataset, labels, ...
    summary: dict                 # summary.json ({} when absent): metrics and the collapse verdict
    labels: LabelSpace
    tokenizer: PreTrainedTokenizerBase
    model: MultiTaskNLU
    checkpoint: str               # best or last
    step: int                     # the optimizer step the weights are from


def build_model(cfg: Config, labels: LabelSpace, vocab_size: int, encoder=None) -> MultiTaskNLU:
    """The multi-task model for `cfg` (a tiny encoder sized by its tiny_* flags); `encoder` replaces
    the one `build_encoder` would make."""
    encoder = encoder if encoder is not None else build_encoder(cfg.encoder, vocab_size, tiny_architecture(cfg))
    return MultiTaskNLU(encoder, len(labels.intents), len(labels.commands) if labels.commands else None,
                        len(labels.tags), torch.tensor(labels.invalid_mask), cfg.mask,
                        cfg.dropout)


def labels_from_record(record: dict) -> LabelSpace:
    """The label space as the run saved it (train counts are not recorded, so `tag_counts` is empty)."""
    names = record["labels"]
    return LabelSpace(intents=Vocab(names["intents"]),
                      commands=Vocab(names["commands"]) if names.get("commands") else None,
                      tags=Vocab(names["tags"]), tag_counts=Counter(), invalid_tags=list(names["invalid_tags"]))


def _read_record(run_dir: Path) -> tuple[dict, Config, LabelSpace]:
    path = RunFolder(run_dir).config
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such directory (expected a run directory written by train.py)")
    if not path.is_file():
        raise RunError(f"{run_dir}: not a run directory (no config.json; expected one written by train.py)")
    try:
        record = read_json(path, expect=dict)
        known = {f.name for f in fields(Config)}
        cfg = Config(**{k: v for k, v in renamed(record["config"]).items() if k in known})
        labels = labels_from_record(record)
    except (ValueError, KeyError, TypeError) as err:
        raise RunError(f"{path}: not a run config written by train.py ({type(err).__name__}: {err})") from None
    return record, cfg, labels


def _encoder(run_dir: Path, cfg: Config, vocab_size: int):
    """The encoder's architecture, randomly initialised: the checkpoint supplies every weight. The
    recorded encoder/config.json comes first, as the architecture that was trained; a tiny run from
    before it was recorded is rebuilt from its tiny_* flags (defaults for runs older than those)."""
    folder = RunFolder(run_dir)
    saved, recorded = folder.encoder, folder.encoder_config.is_file()
    if cfg.encoder == "tiny" and not recorded:
        return build_encoder("tiny", vocab_size, tiny_architecture(cfg))
    try:
        config = AutoConfig.from_pretrained(saved if recorded else cfg.encoder, trust_remote_code=False)
    except (OSError, ValueError) as err:  # missing or unreadable; ValueError: no or an unknown model_type
        name = folder.encoder_config.relative_to(folder.path)
        problem = (f"{name} cannot be read" if recorded
                   else f"no {name} and the encoder {cfg.encoder!r} cannot be loaded offline")
        raise RunError(f"{run_dir}: {problem} ({str(err).splitlines()[0]})") from None
    return tiny_encoder(config) if cfg.encoder == "tiny" else AutoModel.from_config(config, trust_remote_code=False)


def load_run(run_dir: str | Path, checkpoint: str = "best", device: torch.device | str = "cpu") -> LoadedRun:
    """Model (eval mode, on `device`), tokenizer and labels of a run, from its record alone."""
    run_dir = Path(run_dir)
    if checkpoint not in CHECKPOINTS:
        raise RunError(f"--checkpoint={checkpoint!r}: expected one of {', '.join(CHECKPOINTS)}")
    record, cfg, labels = _read_record(run_dir)
    folder = RunFolder(run_dir)
    weights = folder.checkpoint(checkpoint)
    missing = [str(path.relative_to(run_dir)) + ("/" if path == folder.tokenizer else "")
               for path in (weights, folder.tokenizer) if not path.exists()]
    if missing:
        raise RunError(f"{run_dir}: missing {' and '.join(missing)} (the run did not finish an epoch, "
                       f"or the record is incomplete)")
    for part in (folder.tokenizer, folder.encoder):  # before transformers reads either
        refuse_custom_code(part)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder.tokenizer, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise RunError(f"{folder.tokenizer}: cannot be loaded ({str(err).splitlines()[0]})") from None
    model = build_model(cfg, labels, len(tokenizer), encoder=_encoder(run_dir, cfg, len(tokenizer)))
    try:
        state = load_checkpoint(weights, device)
        model.load_state_dict(state[CK_MODEL])
    except (CheckpointError, RuntimeError, KeyError, EOFError, OSError, pickle.UnpicklingError) as err:  # damaged
        raise RunError(f"{weights}: not a checkpoint of this run ({type(err).__name__}: "
                       f"{str(err).splitlines()[0]})") from None
    try:
        summary = folder.read_summary()
    except ValueError as err:
        raise RunError(str(err)) from None
    return LoadedRun(run_dir, cfg, record, summary, labels, tokenizer, model.to(device).eval(), checkpoint,
                     int(state.get(CK_TRAIN_STATE, {}).get(TS_STEP, 0)))
