"""The one run configuration, and the command line built from it.

The CLI accepts exactly what `wandb agent` passes: `--key=value` (or `--key value`),
booleans as True/False, and None for optional fields. Unknown keys are an error.
Defaults are the write-up's fixed configuration: -1e9 masking, focal gamma 2, new lambdas
with the entity warm-up, dense focal loss. This module imports no torch, so the sweep tools
can check flag names cheaply.
"""
from __future__ import annotations

import argparse
import inspect
import math
import re
import types
import typing
from dataclasses import MISSING, dataclass, fields, replace

CHOICES = {
    "loss_impl": ("dense", "gather"),
    "lambdas": ("old", "new"),
    "device": ("auto", "cpu", "cuda"),
    "precision": ("fp32", "bf16", "fp16"),
    "wandb_mode": ("auto", "online", "offline", "disabled"),
    "data_format": ("auto", "jsonl", "jointbert", "massive"),
    "forensics": ("off", "first", "every"),
}

# Entity-loss reference levels (sweeps/baseline.yaml): each sets alpha, gamma and unit_class_weights.
LOSS_LEVELS = {
    "plain_ce": {"alpha": 1.0, "gamma": 0.0, "unit_class_weights": True},      # exactly cross-entropy
    "weighted_ce": {"alpha": 1.0, "gamma": 0.0, "unit_class_weights": False},  # CE with the class weights
    "focal_g2": {"alpha": 0.25, "gamma": 2.0, "unit_class_weights": False},    # the write-up's fix
    "focal_g3": {"alpha": 0.25, "gamma": 3.0, "unit_class_weights": False},    # the write-up's original
}


@dataclass
class Config:
    # --- data
    data: str = "phone-assistant"  # dataset name (the embedded default) or a path: JSONL / JointBERT folder / MASSIVE
    data_format: str = "auto"      # auto (detected from the layout), jsonl, jointbert or massive
    max_length: int = 128          # subword positions per sentence; longer sentences are cut
    # --- model
    encoder: str = "tiny"          # tiny (random 2x128 BERT, tokenizer built from train) or an HF name/path (vinai/phobert-base, xlm-roberta-base)
    mask_value: str = "-1e9"       # logit of invalid I- tags: -inf (hard), a float such as -1e9 (soft), finfo_min or none
    dropout: float = 0.1           # on encoder outputs before the heads
    # --- entity loss
    loss_impl: str = "dense"       # focal loss form: dense (one-hot over all classes, as the original) or gather (gold class only)
    alpha: float = 0.25            # focal alpha
    gamma: float = 2.0             # focal gamma; 0 with alpha 1 and unit weights is plain cross-entropy
    o_weight: float = 0.1          # class weight of O
    max_class_weight: float = 5.0  # cap of the inverse-frequency entity class weights
    unit_class_weights: bool = False  # True: every class weighs 1 (o_weight / max_class_weight unused)
    loss_level: str | None = None  # plain_ce, weighted_ce, focal_g2 or focal_g3: sets alpha, gamma and unit_class_weights (LOSS_LEVELS)
    # --- task weights
    lambdas: str = "new"           # task-weight preset: old (entity/intent/command 0.8/0.15/0.05) or new (0.5/0.3/0.2, entity warm-up 0.3, 0.4)
    lambda_entity: float | None = None   # overrides the preset's entity weight
    lambda_intent: float | None = None   # overrides the preset's intent weight
    lambda_command: float | None = None  # overrides the preset's command weight
    entity_warmup: str | None = None     # entity weight per epoch before lambda_entity, e.g. 0.3,0.4; off disables; None = preset
    # --- optimisation
    epochs: int = 3                # passes over train
    max_steps: int | None = None   # stop after this many optimizer steps (None: epochs decide)
    batch_size: int = 32           # sentences per optimizer step
    lr: float = 5e-4               # AdamW peak learning rate (use ~5e-5 for a pretrained encoder)
    weight_decay: float = 0.01     # AdamW weight decay (not on biases and LayerNorm weights)
    warmup_ratio: float = 0.1      # linear LR warm-up share of the total steps, then linear decay
    grad_clip: float | None = 1.0  # max global grad norm; None or 0 disables clipping
    seed: int = 0                  # seeds Python and torch; with the epoch, the batch order
    device: str = "auto"           # auto (cuda if available), cpu or cuda
    precision: str = "fp32"        # fp32, or bf16 / fp16 autocast (fp16 adds a GradScaler)
    threads: int | None = None     # torch CPU threads (None: torch's default)
    # --- run, logging, W&B
    output_dir: str = "runs"       # the run record goes to <output_dir>/<run_id>/
    run_name: str | None = None    # default: the factor values, e.g. "mask=-inf gamma=3 lambdas=old seed=0"
    run_id: str | None = None      # default: $WANDB_RUN_ID (set by wandb agent) or a fresh id
    wandb_mode: str = "auto"       # auto (online with an API key, else offline), online, offline or disabled (no W&B files)
    wandb_project: str = "nlu-collapse"  # W&B project
    wandb_entity: str | None = None      # W&B entity (team or user); None: your default
    wandb_group: str | None = None       # W&B group; default $WANDB_RUN_GROUP (sweeps/local.py sets it)
    log_every: int = 1             # log every N optimizer steps
    task_grad_every: int = 50      # every N steps, the gradient norm of each task's weighted loss on the encoder; 0 disables
    collapse_window: int = 20      # logged steps a prediction collapse must last to count (a non-finite loss counts at once)
    forensics: str = "first"       # on a non-finite loss or grad norm, replay the batch to find the origin: off, first (once per run) or every (every such step)
    stop_on_collapse: bool = False  # end a collapsed run early (default: train on to show the whole curve)
    resume: str | None = None      # a run directory: continue that run (and its W&B run) from its last checkpoint


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def _optional(convert):
    def parse(text: str):
        return None if text.strip() in ("None", "none", "null", "") else convert(text)
    parse.__name__ = convert.__name__
    return parse


def _field_type(annotation) -> tuple[type, bool]:
    """(base type, optional?) from an annotation such as `float | None`."""
    hint = eval(annotation, vars(typing)) if isinstance(annotation, str) else annotation  # noqa: S307 - our own annotations
    if isinstance(hint, types.UnionType):
        base = [arg for arg in hint.__args__ if arg is not type(None)][0]
        return base, True
    return hint, False


def field_docs() -> dict[str, str]:
    """Each field's comment in the Config source: the one place a flag is documented."""
    source = inspect.getsource(Config)
    return dict(re.findall(r"^\s+(\w+): [^#\n]*#\s*(.*)$", source, flags=re.MULTILINE))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train.py", allow_abbrev=False,
                                     description="Train the multi-task NLU model and log its health to W&B.")
    docs = field_docs()
    for field in fields(Config):
        base, optional = _field_type(field.type)
        convert = _parse_bool if base is bool else base
        parser.add_argument(f"--{field.name}", type=_optional(convert) if optional else convert,
                            default=field.default if field.default is not MISSING else None,
                            help=f"{docs.get(field.name, '')} (default: {field.default})")
    return parser


def validate(cfg: Config) -> None:
    """Cross-field checks; raises ValueError naming the flag and what was expected."""
    for name, allowed in CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"--{name}={getattr(cfg, name)!r}: expected one of {', '.join(allowed)}")
    for name in ("epochs", "batch_size", "log_every", "collapse_window"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name}={getattr(cfg, name)}: expected a positive integer")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise ValueError(f"--max_steps={cfg.max_steps}: expected a positive integer or None")
    if cfg.task_grad_every < 0:
        raise ValueError(f"--task_grad_every={cfg.task_grad_every}: expected 0 (off) or a positive integer")
    if cfg.lr <= 0 or not math.isfinite(cfg.lr):
        raise ValueError(f"--lr={cfg.lr}: expected a positive number")
    if cfg.grad_clip is not None and cfg.grad_clip < 0:
        raise ValueError(f"--grad_clip={cfg.grad_clip}: expected a positive number, 0 or None (off)")
    if cfg.gamma < 0:
        raise ValueError(f"--gamma={cfg.gamma}: expected a number >= 0")


def parse_config(argv: list[str] | None = None) -> Config:
    """CLI -> Config. Exits with argparse's usage error (status 2) on unknown or malformed flags."""
    parser = build_parser()
    cfg = Config(**vars(parser.parse_args(argv)))
    try:
        if cfg.loss_level is not None:
            if cfg.loss_level not in LOSS_LEVELS:
                raise ValueError(f"--loss_level={cfg.loss_level!r}: expected one of {', '.join(LOSS_LEVELS)} or None")
            cfg = replace(cfg, **LOSS_LEVELS[cfg.loss_level])
        validate(cfg)
        from model.masking import check_fits, parse_mask_value  # lazily: imports torch

        mask_value = parse_mask_value(cfg.mask_value)
        if cfg.precision == "fp16":
            import torch

            check_fits(mask_value, torch.float16)
    except ValueError as err:
        parser.error(str(err))
    return cfg
