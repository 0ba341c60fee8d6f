"""The one run configuration, and the command line built from it.

The CLI accepts exactly what `wandb agent` passes: `--key=value` (or `--key value`),
booleans as True/False, and None for optional fields. Unknown keys are an error.
Defaults are the write-up's fixed configuration: -1e9 masking, focal gamma 2, new lambdas
with the entity warm-up, dense focal loss, and the tiny encoder at 2 layers x 128 hidden x 2 heads
with a vocabulary of the train words seen twice (the `tiny_*` flags; sweeps/tune.yaml searches
them). This module imports no torch, so the sweep tools can check flag names cheaply.

Why a small hand-built parser rather than tyro (checked with tyro 1.0.17): tyro turns a bool field
into `--stop-on-collapse/--no-stop-on-collapse` switches and rejects `--stop_on_collapse=True`, the
form `wandb agent` passes (exit 2); `tyro.conf.FlagConversionOff` accepts it, and `--max_steps=None`
works either way. So tyro could do it, but it would add a dependency (with rich, shtab, typeguard,
docstring-parser) to replace about sixty lines that are already tested against the agent's argv,
and `resolve` needs to know which flags were given on the command line, which tyro does not expose.
"""
from __future__ import annotations

import argparse
import inspect
import math
import re
import sys
import types
import typing
from dataclasses import MISSING, dataclass, fields, replace
from functools import cached_property
from typing import Literal

from nlu_collapse import commandline
from nlu_collapse.telemetry import keys

# Entity-loss reference levels (sweeps/baseline.yaml): each sets entity_loss_scale, gamma and unit_class_weights.
LOSS_LEVELS = {
    "plain_ce": {"entity_loss_scale": 1.0, "gamma": 0.0, "unit_class_weights": True},      # exactly cross-entropy
    "weighted_ce": {"entity_loss_scale": 1.0, "gamma": 0.0, "unit_class_weights": False},  # CE with the class weights
    "focal_g2": {"entity_loss_scale": 0.25, "gamma": 2.0, "unit_class_weights": False},    # the write-up's fix
    "focal_g3": {"entity_loss_scale": 0.25, "gamma": 3.0, "unit_class_weights": False},    # the write-up's original
}
FP16_MAX = 65504.0  # torch.finfo(torch.float16).max, without importing torch here


# Accepted range of every numeric flag: (low, high, low inclusive, high inclusive); shown in --help.
# Every float must also be finite. None stays allowed where the field is optional.
INF = math.inf
RANGES = {
    "max_length": (3, INF, True, False),        # [CLS] word [SEP] at least
    "dropout": (0.0, 1.0, True, False),
    "entity_loss_scale": (0.0, INF, True, False),
    "gamma": (0.0, INF, True, False),
    "o_weight": (0.0, INF, True, False),
    "max_class_weight": (0.0, INF, False, False),
    "lambda_entity": (0.0, INF, True, False),
    "lambda_intent": (0.0, INF, True, False),
    "lambda_command": (0.0, INF, True, False),
    "epochs": (1, INF, True, False),
    "max_steps": (1, INF, True, False),
    "batch_size": (1, INF, True, False),
    "lr": (0.0, INF, False, False),
    "weight_decay": (0.0, INF, True, False),
    "warmup_ratio": (0.0, 1.0, True, True),
    "grad_clip": (0.0, INF, True, False),
    "seed": (0, 2**32 - 1, True, True),        # what numpy and torch generators accept
    "threads": (1, 4096, True, True),
    "log_every": (1, INF, True, False),
    "task_grad_every": (0, INF, True, False),
    "collapse_window": (1, INF, True, False),
    "ring_every": (0, INF, True, False),
    "ring_keep": (1, INF, True, False),
    "tiny_layers": (1, INF, True, False),
    "tiny_hidden": (1, INF, True, False),
    "tiny_heads": (1, INF, True, False),
    "tiny_vocab_min_count": (1, INF, True, False),  # 1: every train word is a token
}
# Flags renamed since a run was recorded: old name -> new name (a saved config.json is read under the new one).
RENAMED = {"alpha": "entity_loss_scale"}
RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # one safe path component, never `..` or a `/`
TINY_MAX_LENGTH = 128  # the tiny encoder's position embeddings

# --- W&B's rules for the names a run gives it (read from wandb 0.31's own code), checked before anything
# is written: a project has at most 128 characters and none of `/\#?%:` (`wandb_settings.validate_project`;
# an entity stands in the same URLs); a run id none of `:;,#?/'` (`validate_run_id`); an artifact name at
# most 128 characters (`artifacts/_validators.NAME_MAXLEN`); a tag 1 to 64 (`validate_run_tags`).
WANDB_NAME_MAX, WANDB_TAG_MAX = 128, 64
WANDB_URL_FORBIDDEN = "/\\#?%:"
WANDB_RUN_ID_FORBIDDEN = ":;,#?/'"
ARTIFACT_FORBIDDEN_RE = re.compile(r"[^A-Za-z0-9_.-]")  # a character W&B artifact names do not allow
RERUN_SUFFIX = "-xxxx"  # a fresh rerun of a run id gets the W&B id <run_id>-<4 hex> (telemetry.tracking)
# W&B tables a run logs, each stored by W&B as the artifact `run-<W&B run id>-<key>`: the test tables, the
# intent confusion chart's table (W&B appends `_table`) and the per-label tables of every validation row.
WANDB_TABLES = (keys.TABLE_ENTITY_TYPES, keys.TABLE_ENTITY_ERRORS, f"{keys.TABLE_INTENT_CONFUSION}_table",
                f"{keys.CARRIED_CHART}_table", *(keys.label_table(task) for task in keys.TASKS))


def wandb_table_artifact(wandb_id: str, key: str) -> str:
    """The name W&B gives the artifact of a table logged under `key` (`wandb.sdk.data_types.utils`): it
    drops the characters artifact names do not allow and then adds a 7-character `-<crc32>` suffix."""
    name = f"run-{wandb_id}-{key}"
    kept = ARTIFACT_FORBIDDEN_RE.sub("", name)
    return name if kept == name else f"{kept}-{'c' * 6}"


def wandb_artifacts(run_id: str) -> list[str]:
    """Every artifact name this repo's W&B runs derive from `run_id`, for its longest W&B id (a rerun's)."""
    wandb_id = run_id + RERUN_SUFFIX
    return [f"model-{wandb_id}", *(wandb_table_artifact(wandb_id, key) for key in WANDB_TABLES)]


def _longest_run_id() -> int:
    return max(n for n in range(1, WANDB_NAME_MAX + 1)
               if all(len(name) <= WANDB_NAME_MAX for name in wandb_artifacts("a" * n)))


RUN_ID_MAX_WANDB = _longest_run_id()  # 85: `run-<id>-xxxx-testintent_confusion_table-<crc>` is the longest name


def describe_range(name: str) -> str:
    low, high, low_in, high_in = RANGES[name]
    left, right = "[" if low_in else "(", "]" if high_in else ")"
    return f"{left}{low:g}, {'inf' if high == INF else f'{high:g}'}{right}"


@dataclass
class Config:
    # --- data
    data: str = "phone-assistant-wild"  # an embedded dataset (phone-assistant-wild, phone-assistant) or a path: JSONL / JointBERT folder / MASSIVE
    data_format: Literal["auto", "jsonl", "jointbert", "massive"] = "auto"  # auto (detected from the layout), jsonl, jointbert or massive
    max_length: int = 128          # subword positions per sentence; longer sentences are cut
    # --- model
    encoder: str = "tiny"          # tiny (random BERT sized by the tiny_* flags, tokenizer built from train) or an HF name/path (vinai/phobert-base, xlm-roberta-base)
    tiny_layers: int = 2           # --encoder=tiny only: transformer layers
    tiny_hidden: int = 128         # --encoder=tiny only: hidden size (the feed-forward layer is 4x); a multiple of tiny_heads
    tiny_heads: int = 2            # --encoder=tiny only: attention heads
    tiny_vocab_min_count: int = 2  # --encoder=tiny only: train words seen this often are whole tokens (the rest split into characters)
    mask_value: str = "-1e9"       # logit of invalid I- tags: -inf (hard), a float such as -1e9 (soft), finfo_min or none
    dropout: float = 0.1           # on encoder outputs before the heads
    # --- entity loss
    loss_impl: Literal["dense", "gather"] = "dense"  # focal loss form: dense (one-hot over all classes, as the original) or gather (gold class only)
    entity_loss_scale: float = 0.25  # constant factor on every token's entity loss: the write-up's focal "alpha", which (unlike the focal-loss paper's alpha_t) balances no classes
    gamma: float = 2.0             # focal gamma; 0 with entity_loss_scale 1 and unit weights is plain cross-entropy
    o_weight: float = 0.1          # class weight of O
    max_class_weight: float = 5.0  # cap of the inverse-frequency entity class weights
    unit_class_weights: bool = False  # True: every class weighs 1 (o_weight / max_class_weight unused)
    loss_level: Literal["plain_ce", "weighted_ce", "focal_g2", "focal_g3"] | None = None  # plain_ce, weighted_ce, focal_g2 or focal_g3: sets entity_loss_scale, gamma and unit_class_weights (LOSS_LEVELS)
    # --- task weights
    lambdas: Literal["old", "new"] = "new"  # task-weight preset: old (entity/intent/command 0.8/0.15/0.05) or new (0.5/0.3/0.2, entity warm-up 0.3, 0.4)
    lambda_entity: float | None = None   # overrides the preset's entity weight
    lambda_intent: float | None = None   # overrides the preset's intent weight
    lambda_command: float | None = None  # overrides the preset's command weight
    entity_warmup: str | None = None     # entity weight per epoch before lambda_entity, e.g. 0.3,0.4; off disables; None = preset
    # --- optimisation
    epochs: int = 5                # passes over train (chosen on dev: sweeps/tune-confirm.yaml)
    max_steps: int | None = None   # stop after this many optimizer steps (None: epochs decide)
    batch_size: int = 32           # sentences per optimizer step
    group_by_length: bool = False  # batches of similar-length sentences (less padding, faster); opt-in: it changes the batches
    lr: float = 5e-4               # AdamW peak learning rate (use ~5e-5 for a pretrained encoder)
    weight_decay: float = 0.01     # AdamW weight decay (not on biases and LayerNorm weights)
    warmup_ratio: float = 0.2      # linear LR warm-up share of the total steps, then linear decay (chosen on dev)
    grad_clip: float | None = 1.0  # max global grad norm; None or 0 disables clipping
    seed: int = 0                  # seeds Python and torch; with the epoch, the batch order
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto (cuda if available), cpu or cuda
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # fp32, or bf16 / fp16 autocast (fp16 adds a GradScaler)
    threads: int | None = None     # torch CPU threads (None: torch's default)
    compile: bool = False          # torch.compile the model (dynamic shapes); opt-in: compiled kernels and dropout draw other numbers
    # --- run, logging, W&B
    output_dir: str = "runs"       # the run record goes to <output_dir>/<run_id>/
    run_name: str | None = None    # default: the factor values, e.g. "mask=-inf gamma=3 lambdas=old seed=0"
    run_id: str | None = None      # default: $WANDB_RUN_ID (set by wandb agent) or a fresh id; W&B on: <= 85 characters
    wandb_mode: Literal["auto", "online", "offline", "disabled"] = "auto"  # auto (online when W&B finds your login, else offline), online, offline or disabled (no W&B files)
    wandb_project: str = "nlu-collapse"  # W&B project (under wandb agent: the sweep's)
    wandb_entity: str | None = None      # W&B entity (team or user); None: your default
    wandb_group: str | None = None       # W&B group; default $WANDB_RUN_GROUP (sweeps/local.py sets it)
    log_every: int = 1             # log every N optimizer steps
    task_grad_every: int = 50      # every N steps, the gradient norm of each task's weighted loss on the encoder; 0 disables
    collapse_window: int = 20      # logged steps a degenerate-prediction phase must last to be an episode (a collapse only if it lasts to the end; a non-finite loss collapses at once)
    stop_on_collapse: bool = False  # end a run at its first non-finite loss or gradient norm (default: train on to show the whole curve)
    stop_dead_runs: bool = True    # end a dead run (parameters non-finite after a step, every head's output NaN: no later step can change anything), scoring dev and test once; False trains on for the flat curves
    forensics: Literal["off", "first", "every"] = "first"  # on a non-finite loss or grad norm, replay the batch to find the origin: off, first (once per run) or every (every such step)
    ring_every: int = 100          # every N optimizer steps keep the whole training state in checkpoints/ring/ (analysis/fixes.py replays a collapse from it); the initial state always; 0 disables
    ring_keep: int = 3             # ring checkpoints kept besides the initial state: the newest, and the last one before a non-finite step
    resume: str | None = None      # a run directory: continue that run (and its W&B run) from its last checkpoint
    log_model: bool = False        # at the end, log the run folder predict.py reads to W&B as a model artifact

    @cached_property
    def mask(self) -> float | str | None:
        """`mask_value` parsed (once; `resolve` has checked it)."""
        return parse_mask_value(self.mask_value)

    @cached_property
    def warmup(self) -> tuple[float, ...] | None:
        """`entity_warmup` parsed: None keeps the preset's warm-up, () turns it off."""
        return parse_warmup(self.entity_warmup)


# Flags that only name, place, resume or report a run: they cannot change one of its numbers, so they
# are not part of its identity (every other flag is, defaults included; see `identity_config`).
BOOKKEEPING = ("run_id", "run_name", "output_dir", "resume", "wandb_mode", "wandb_project", "wandb_entity",
               "wandb_group", "log_model", "ring_every", "ring_keep")


def identity_config(values: dict) -> dict:
    """The part of a resolved config (as a dict) that can change a run's numbers."""
    return {name: value for name, value in renamed(values).items() if name not in BOOKKEEPING}


# The flags that size the tiny encoder and its tokenizer (an error with any other encoder).
TINY_FLAGS = tuple(f.name for f in fields(Config) if f.name.startswith("tiny_"))


def parse_mask_value(text: str) -> float | str | None:
    """-inf | a negative float such as -1e9 | finfo_min | none (model.masking.MaskValue)."""
    value = str(text).strip()
    if value.lower() in ("none", "off"):
        return None
    if value == "finfo_min":
        return "finfo_min"
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--mask_value={text!r}: expected -inf, a number such as -1e9, finfo_min or none") from None
    if math.isnan(number) or number > 0:
        raise ValueError(f"--mask_value={text!r}: expected a negative number, -inf, finfo_min or none")
    return number


def parse_warmup(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    if str(text).strip().lower() in ("off", "none", ""):
        return ()
    try:
        return tuple(float(w) for w in str(text).split(","))
    except ValueError:
        raise ValueError(f"--entity_warmup={text!r}: expected comma-separated weights such as 0.3,0.4, or off") from None


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


def _field_type(annotation) -> tuple[type, bool, tuple]:
    """(base type, optional?, allowed values or ()) from an annotation such as `float | None` or
    `Literal["dense", "gather"]`: the annotation is the one source of a flag's choices."""
    hint = eval(annotation, vars(typing)) if isinstance(annotation, str) else annotation  # noqa: S307 - our own annotations
    args = typing.get_args(hint)
    optional = type(None) in args and (isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union)
    if optional:
        hint = [arg for arg in args if arg is not type(None)][0]
    if typing.get_origin(hint) is Literal:
        return str, optional, typing.get_args(hint)
    return hint, optional, ()


def choices(name: str) -> tuple:
    """The allowed values of a Literal-typed flag."""
    return _field_type(next(f.type for f in fields(Config) if f.name == name))[2]


def field_docs() -> dict[str, str]:
    """Each field's comment in the Config source: the one place a flag is documented."""
    source = inspect.getsource(Config)
    return dict(re.findall(r"^\s+(\w+): [^#\n]*#\s*(.*)$", source, flags=re.MULTILINE))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train.py", allow_abbrev=False,
                                     description="Train the multi-task NLU model and log its health to W&B.")
    docs = field_docs()
    for field in fields(Config):
        base, optional, _ = _field_type(field.type)
        convert = _parse_bool if base is bool else base
        parser.add_argument(f"--{field.name}", type=_optional(convert) if optional else convert,
                            default=field.default if field.default is not MISSING else None,
                            help=f"{docs.get(field.name, '')} (default: {field.default}"
                            + (f"; range {describe_range(field.name)})" if field.name in RANGES else ")"))
    return parser


def validate(cfg: Config) -> None:
    """Checks of single flags and of flag combinations; raises ValueError naming the flag and what
    was expected."""
    for field in fields(Config):
        allowed = _field_type(field.type)[2]
        value = getattr(cfg, field.name)
        if allowed and value not in allowed and value is not None:
            raise ValueError(f"--{field.name}={value!r}: expected one of {', '.join(allowed)}")
    for name, (low, high, low_in, high_in) in RANGES.items():
        value = getattr(cfg, name)
        if value is None:
            continue
        inside = (low <= value if low_in else low < value) and (value <= high if high_in else value < high)
        if not (math.isfinite(value) and inside):
            kind = "an integer" if isinstance(value, int) else "a finite number"
            raise ValueError(f"--{name}={value}: expected {kind} in {describe_range(name)}")
    if cfg.encoder == "tiny" and cfg.max_length > TINY_MAX_LENGTH:
        raise ValueError(f"--max_length={cfg.max_length}: the tiny encoder has {TINY_MAX_LENGTH} positions")
    check_tiny(cfg)
    if cfg.run_id is not None:
        check_run_id(cfg.run_id, "--run_id", wandb=cfg.wandb_mode != "disabled")
    if cfg.wandb_mode != "disabled":
        check_wandb_names(cfg)
    mask, warmup = cfg.mask, cfg.warmup  # parsed once: a malformed value fails here, naming its flag
    if not all(math.isfinite(w) and w >= 0 for w in warmup or ()):
        raise ValueError(f"--entity_warmup={cfg.entity_warmup!r}: expected comma-separated finite weights "
                         ">= 0 such as 0.3,0.4, or off")
    if cfg.precision == "fp16" and isinstance(mask, float) and math.isfinite(mask) and abs(mask) > FP16_MAX:
        raise ValueError(f"--mask_value={cfg.mask_value} does not fit in torch.float16 (largest magnitude "
                         f"{FP16_MAX:g}); use --mask_value=finfo_min, -inf or --precision=bf16")


def check_tiny(cfg: Config) -> None:
    """The tiny_* flags size the from-scratch encoder and its tokenizer. Another encoder brings its own
    architecture and vocabulary, so a tiny_* value there would be silently ignored: an error instead.
    Attention splits the hidden size evenly over the heads, so it must divide."""
    if cfg.encoder != "tiny":
        changed = [f"--{name}={getattr(cfg, name)}" for name in TINY_FLAGS
                   if getattr(cfg, name) != getattr(Config, name)]
        if changed:
            raise ValueError(f"{', '.join(changed)}: the tiny_* flags apply only to --encoder=tiny, not "
                             f"--encoder={cfg.encoder} (which brings its own size and tokenizer): drop them")
    if cfg.tiny_hidden % cfg.tiny_heads:
        raise ValueError(f"--tiny_hidden={cfg.tiny_hidden} is not a multiple of --tiny_heads={cfg.tiny_heads}: "
                         "each attention head gets tiny_hidden / tiny_heads dimensions")


def resolve(cfg: Config, given: set[str] = frozenset()) -> Config:
    """The one resolve step: expand `--loss_level` into entity_loss_scale, gamma and unit_class_weights, then
    validate. `given` holds the flags set on the command line; one of them that contradicts the
    loss level is an error naming both flags."""
    if cfg.loss_level in LOSS_LEVELS:
        level = LOSS_LEVELS[cfg.loss_level]
        for name, value in level.items():
            if name in given and getattr(cfg, name) != value:
                raise ValueError(f"--{name}={getattr(cfg, name)} contradicts --loss_level={cfg.loss_level} "
                                 f"(which sets {name}={value}): give one of the two")
        cfg = replace(cfg, **level)
    validate(cfg)
    return cfg


def check_run_id(run_id: str, source: str, wandb: bool = True) -> None:
    """A run id becomes a folder name under --output_dir: one safe path component only. With W&B on it
    also names the run's W&B artifacts, which W&B limits to WANDB_NAME_MAX characters: checked here, for
    every name this repo derives from it, rather than at the first validation epoch."""
    if not RUN_ID_RE.fullmatch(str(run_id)):  # `$` alone would also match before a trailing newline
        raise ValueError(f"{source}={run_id!r}: expected a file name of letters, digits, '.', '_' or '-' "
                         "(at most 128, not starting with '.' or '-')")
    if wandb and len(run_id) > RUN_ID_MAX_WANDB:
        longest = max(wandb_artifacts(run_id), key=len)
        raise ValueError(f"{source}: {len(run_id)} characters, at most {RUN_ID_MAX_WANDB} with W&B on: W&B names "
                         f"artifacts after the run id (here up to {len(longest)} characters, {longest[:24]}...) and "
                         f"allows {WANDB_NAME_MAX}; use a shorter id, or --wandb_mode=disabled")


def check_wandb_names(cfg: Config) -> None:
    """The W&B project and entity as W&B accepts them (see WANDB_NAME_MAX), before anything is written."""
    for name in ("wandb_project", "wandb_entity"):
        value = getattr(cfg, name)
        if value is None:
            continue
        bad = sorted(set(value) & set(WANDB_URL_FORBIDDEN))
        if not value or len(value) > WANDB_NAME_MAX or bad:
            raise ValueError(f"--{name}={value!r}: W&B expects 1 to {WANDB_NAME_MAX} characters, none of "
                             f"{' '.join(WANDB_URL_FORBIDDEN)}" + (f" (found {' '.join(bad)})" if bad else "")
                             + ("; for team/name give --wandb_entity=team --wandb_project=name"
                                if name == "wandb_project" and "/" in value else ""))


def renamed(values: dict) -> dict:
    """A saved config under today's flag names (RENAMED)."""
    return {RENAMED.get(name, name): value for name, value in values.items()}


def config_from_saved(saved, where) -> Config:
    """The Config a run record's config.json holds, checked like the CLI; errors name the file."""
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict) or "run_id" not in saved:
        raise ValueError(f"{where}: expected an object with config and run_id (a run record written by train.py)")
    values = renamed(saved["config"])
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown config key(s) {unknown} (written by another version of train.py?)")
    try:
        cfg = Config(**values)
        validate(cfg)
        check_run_id(saved["run_id"], "run_id")
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None
    return cfg


def given_flags(argv: list[str]) -> set[str]:
    """The flags named on a command line (`--key=value` or `--key value`)."""
    return {token[2:].split("=")[0] for token in argv if token.startswith("--")}


def parse_config(argv: list[str] | None = None) -> Config:
    """CLI -> resolved Config. Exits with argparse's usage error (status 2) on unknown or malformed flags."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = commandline.parse(parser, argv)  # `--key -inf` works, a non-UTF-8 value is refused naming its flag
    try:
        return resolve(Config(**vars(args)), given_flags(argv))
    except ValueError as err:
        parser.error(str(err))
