"""Train the multi-task NLU model (intent, command, BIO entities) and log its health every step.

    python train.py                                              # the write-up's fixed config, embedded data
    python train.py --mask_value=-inf --gamma=3 --lambdas=old    # the configuration that collapsed
    python train.py --mask_value=-inf --loss_impl=gather         # hard mask without the dense 0 * -inf
    python train.py --encoder=vinai/phobert-base --lr=5e-5 --data=path/to/PhoATIS
    python train.py --resume=runs/<run_id>                       # continue a crashed run and its W&B run

Every step logs loss components, gradient norms, label-distribution histograms and `health/*`
flags to W&B (offline unless an API key is configured) and to `<output_dir>/<run_id>/`.
The run reads top to bottom: `Training.setup` (resolve_run -> build -> restore or start, the
record and W&B) -> `train` (train_epoch -> validate_and_checkpoint per epoch) -> `test` (or `fail`).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import random
import signal
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerFast, get_linear_schedule_with_warmup
from transformers.utils import logging as hf_logging

from nlu_collapse import commandline
from nlu_collapse.config import Config, check_run_id, config_from_saved, given_flags, identity_config, parse_config
from nlu_collapse.data import UNKNOWN, Dataset, load_dataset
from nlu_collapse.data.fingerprint import differences as data_differences
from nlu_collapse.data.labels import label_differences, masked_gold
from nlu_collapse.evaluation import compute_metrics
from nlu_collapse.evaluation.errors import confusion_rows, span_errors
from nlu_collapse.losses import MultiTaskLoss, TaskWeights, entity_class_weights, format_weights
from nlu_collapse.model import MultiTaskNLU, build_tiny_tokenizer, encode
from nlu_collapse.model.checkpoint import load_checkpoint, load_resumable, save_checkpoint
from nlu_collapse.model.loading import build_model, refuse_custom_code, save_encoder_config
from nlu_collapse.model.prediction import predict_encoded
from nlu_collapse.model.ring import CheckpointRing
from nlu_collapse.model.tokenization import collate, dropped_words_warning, normalisation_report
from nlu_collapse.rng import rng_state, set_rng_state
from nlu_collapse.runfolder import (
    CK_CONFIG,
    CK_EPOCH,
    CK_MODEL,
    CK_OPTIMIZER,
    CK_RNG,
    CK_RUN_ID,
    CK_SCALER,
    CK_SCHEDULER,
    CK_TRAIN_STATE,
    TS_STEP,
    RunFolder,
    code_version,
    identity_key,
)
from nlu_collapse.safeio import read_json
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.distributions import count_scalars, step_counts, to_host
from nlu_collapse.telemetry.health import eval_evidence
from nlu_collapse.telemetry.record import RunRecord
from nlu_collapse.telemetry.tracking import Tracker, resolve_mode
from nlu_collapse.toolkit import CollapseWatch, Forensics, HealthMonitor
from nlu_collapse.toolkit.gradients import grad_norms, task_grad_norms

log = logging.getLogger("train")
# Named ranges of a training step (torch.profiler shows them; bench/bench.py sums them per step).
# Outside a profiler a range costs about a microsecond.
phase = torch.profiler.record_function


# --- naming a run
def run_name(cfg: Config) -> str:
    name = f"mask={cfg.mask_value} gamma={cfg.gamma:g} lambdas={cfg.lambdas} seed={cfg.seed}"
    if cfg.loss_impl != "dense":
        name += f" impl={cfg.loss_impl}"
    if cfg.loss_level:
        name = f"level={cfg.loss_level} {name}"
    return name if cfg.data == Config.data else f"{name} data={Path(cfg.data).name}"


def run_tags(cfg: Config) -> list[str]:
    tags = [f"mask={cfg.mask_value}", f"gamma={cfg.gamma:g}", f"lambdas={cfg.lambdas}",
            f"impl={cfg.loss_impl}", f"data={Path(cfg.data).name}"]
    return tags + ([f"level={cfg.loss_level}"] if cfg.loss_level else [])


# --- building blocks
def select_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device=cuda: no CUDA device is available (use --device=cpu or auto)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_tokenizer(cfg: Config, dataset: Dataset, resumed: RunFolder | None):
    """The encoder's own tokenizer, or for `tiny` one built from train (or reloaded on resume)."""
    if cfg.encoder != "tiny":
        return AutoTokenizer.from_pretrained(cfg.encoder, trust_remote_code=False)
    if resumed is not None:
        refuse_custom_code(resumed.tokenizer)
        try:
            return PreTrainedTokenizerFast.from_pretrained(resumed.tokenizer, trust_remote_code=False)
        except Exception as err:  # a damaged tokenizer/ folder: name it rather than show the parser's traceback
            raise ValueError(f"{resumed.tokenizer}: cannot load the saved tokenizer ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''})") from None
    return build_tiny_tokenizer(dataset.splits["train"], cfg.tiny_vocab_min_count)


def build_criterion(cfg: Config, labels) -> tuple[MultiTaskLoss, torch.Tensor]:
    """The multi-task objective and the entity class weights it uses (printed: they shape the collapse)."""
    if cfg.unit_class_weights:
        class_weights = torch.ones(len(labels.tags))
    else:
        class_weights = entity_class_weights(labels.tags.names, labels.tag_counts, cfg.o_weight, cfg.max_class_weight)
    log.info("entity class weights: %s", format_weights(labels.tags.names, class_weights))
    log.info("masked (invalid) entity labels: %s", ", ".join(labels.invalid_tags) or "none")
    weights = TaskWeights.from_preset(cfg.lambdas, cfg.lambda_entity, cfg.lambda_intent, cfg.lambda_command,
                                      cfg.warmup)
    return MultiTaskLoss(weights, class_weights, cfg.entity_loss_scale, cfg.gamma, cfg.loss_impl), class_weights


def build_optimizer(model: torch.nn.Module, cfg: Config) -> torch.optim.AdamW:
    """AdamW as HF Trainer sets it up: no weight decay on biases and LayerNorm weights (1-d tensors),
    the fused kernel (one kernel for all parameters, on CPU and GPU)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)


@dataclass
class Optimisation:
    """Optimizer, LR schedule, fp16 loss scaler and clipping: one update of the parameters."""
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    grad_clip: float | None

    def backward(self, total: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        (self.scaler.scale(total) if self.scaler else total).backward()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)  # clip and measure true gradients, not scaled ones

    def clip(self, params: list[torch.nn.Parameter], total_norm: torch.Tensor) -> torch.Tensor:
        """Scale the gradients to `grad_clip` when their total norm exceeds it; 1.0 if it did."""
        if self.grad_clip:
            torch.nn.utils.clip_grads_with_norm_(params, self.grad_clip, total_norm)
            return (total_norm > self.grad_clip).float()
        return torch.zeros(())

    def step(self) -> None:
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()

    def state_dict(self) -> dict:
        state = {CK_OPTIMIZER: self.optimizer.state_dict(), CK_SCHEDULER: self.scheduler.state_dict()}
        return {**state, CK_SCALER: self.scaler.state_dict()} if self.scaler else state

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state[CK_OPTIMIZER])
        self.scheduler.load_state_dict(state[CK_SCHEDULER])
        if self.scaler:
            self.scaler.load_state_dict(state[CK_SCALER])


def replay_loss(model: MultiTaskNLU, batch: dict, criterion: MultiTaskLoss, epoch: int, autocast):
    """The step's loss again, from its batch (the forensics' closure): (total, weighted loss per task)."""
    with autocast():
        logits = model(batch["input_ids"], batch["attention_mask"])
    total, weighted, _ = criterion(logits, batch, epoch)
    return total, weighted


def train_step(model: MultiTaskNLU, batch: dict, criterion: MultiTaskLoss, optimisation: Optimisation, epoch: int,
               autocast, telemetry: bool, task_grads: bool, forensics: Forensics | None = None) -> dict[str, torch.Tensor]:
    """One optimizer step. Returns the step's metrics as tensors (moved to the host by the caller):
    always the losses and the total grad norm; with `telemetry`, per-module norms and label counts.
    `forensics` replays a non-finite step before the optimizer changes the parameters that produced it."""
    with phase("forward"), autocast():
        logits = model(batch["input_ids"], batch["attention_mask"])
    with phase("loss"):
        total, weighted, metrics = criterion(logits, batch, epoch)
    if task_grads:  # which task dominates the shared encoder
        with phase("telemetry/task_grads"):
            metrics.update(task_grad_norms(weighted, model.encoder))
    with phase("backward"):
        optimisation.backward(total)
    with phase("clip"):
        params = [p for p in model.parameters() if p.grad is not None]
        norm, module_norms = grad_norms(params, model.named_parts() if telemetry else {})
        metrics.update(module_norms)
        metrics[keys.GRAD_CLIPPED] = optimisation.clip(params, norm)
    metrics[keys.GRAD_NORM] = norm
    metrics[keys.LR] = torch.tensor(optimisation.scheduler.get_last_lr()[0])
    with phase("forensics"):
        replayed = forensics is not None and forensics.check(
            model, lambda: replay_loss(model, batch, criterion, epoch, autocast), total, norm, metrics,
            scale=optimisation.scaler.scale if optimisation.scaler else None)
    with phase("optimizer"):
        optimisation.step()
    if replayed:
        forensics.after_step(model)
    if telemetry:
        with phase("telemetry/label_counts"):
            metrics.update(step_counts(logits, batch, UNKNOWN))
    return metrics


def dead(model: MultiTaskNLU, batch: dict, autocast) -> bool:
    """After an optimizer step: the model can no longer change. Its parameters are non-finite and every
    head's output on `batch` has a NaN in every row, so every loss and every gradient is NaN from now
    on (each update of a NaN parameter is NaN) and every prediction stays what argmax makes of NaN.
    A non-finite parameter confined to a part some heads do not read (no gradient clipping to spread
    it) is not death: the other heads can still learn. Under fp16 a skipped step leaves the
    parameters finite: not dead."""
    if all(torch.isfinite(p).all() for p in model.parameters()):
        return False
    with torch.no_grad(), autocast():
        logits = model(batch["input_ids"], batch["attention_mask"])
    return all(torch.isnan(out).any(-1).all() for out in logits.values())


@dataclass
class Evaluator:
    """Predicts a split with the current model and scores it."""
    model: MultiTaskNLU
    dataset: Dataset
    encoded: dict
    criterion: MultiTaskLoss
    batch_size: int
    device: torch.device
    pad_id: int
    autocast: object

    def __post_init__(self):
        self.masked = torch.tensor(self.dataset.labels.invalid_mask, device=self.device)

    def loss(self, logits: dict, batch: dict, epoch: int) -> torch.Tensor:
        """The split's loss without the tokens whose gold tag the model masks (an I- tag train never has):
        each would add a cross-entropy of about 1e9 that says nothing of the model. They are counted in
        `<split>/entity/gold_masked`, and entity F1 still scores them as errors."""
        tags = batch["tags"]
        masked = (tags >= 0) & self.masked[tags.clamp(min=0)]
        return self.criterion(logits, {**batch, "tags": tags.masked_fill(masked, UNKNOWN)}, epoch)[0]

    def __call__(self, split: str, epoch: int):
        """(metrics under `val/` or `test/`, predictions, per-type entity report) of one split."""
        predictions = predict_encoded(self.model, self.encoded[split], self.dataset.labels, self.batch_size,
                                      self.device, self.pad_id,
                                      loss_fn=lambda logits, batch: self.loss(logits, batch, epoch),
                                      autocast=self.autocast)
        scores, entity_types = compute_metrics(self.dataset.splits[split], predictions, self.dataset.labels)
        metrics = {keys.split_metric(split, name): value for name, value in scores.items()}
        for entity_type, row in entity_types.items():
            metrics.update({keys.entity_type_metric(split, entity_type, stat): row[stat]
                            for stat in keys.ENTITY_TYPE_STATS})
        return metrics, predictions, entity_types


def degenerate_evidence(examples, predictions) -> dict[str, str | None]:
    return eval_evidence([ex.tags for ex in examples], predictions.tags, [ex.intent for ex in examples],
                         predictions.intents, [ex.command for ex in examples] if predictions.commands else None,
                         predictions.commands)


@dataclass
class TrainState:
    """Everything a checkpoint restores besides model and optimiser: where training stands."""
    monitor: HealthMonitor
    step: int = 0
    epoch: int = 0                 # the epoch to run next
    best_f1: float = -1.0          # best val entity F1 so far
    n_clipped: int = 0
    training_done: bool = False
    stopped_on_collapse: bool = False
    train_seconds: float = 0.0     # training-loop seconds of the steps kept (every attempt's, to the checkpoint)
    dead_at_step: int | None = None  # the step after which the model could not change any more (train.dead)
    stopped_dead: bool = False     # training ended there (--stop_dead_runs) rather than at its budget
    timed_from_step: int = 0       # the step train_seconds counts from (a checkpoint from before it was kept)
    last_metrics: dict = field(default_factory=dict)  # the last step's scalars (final/* in the summary)

    def state_dict(self) -> dict:
        return {TS_STEP: self.step, "epoch": self.epoch, "best_f1": self.best_f1, "n_clipped": self.n_clipped,
                "training_done": self.training_done, "stopped_on_collapse": self.stopped_on_collapse,
                "train_seconds": self.train_seconds, "timed_from_step": self.timed_from_step,
                "dead_at_step": self.dead_at_step, "stopped_dead": self.stopped_dead,
                "last_metrics": {k: v for k, v in self.last_metrics.items() if not isinstance(v, list)},
                "monitor": self.monitor.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.monitor.load_state_dict(state.pop("monitor"))
        if "train_seconds" not in state:  # written before the seconds were kept: time this attempt's steps
            state["timed_from_step"] = state[TS_STEP]
        for name, value in state.items():
            setattr(self, name, value)


@dataclass
class Parts:
    """What `build` makes from a resolved config: data, tokenizer, model, objective, optimisation,
    evaluator. No record and no W&B: the bench's bare loop trains with these alone."""
    cfg: Config
    dataset: Dataset
    tokenizer: object
    encoded: dict
    model: MultiTaskNLU
    criterion: MultiTaskLoss
    class_weights: torch.Tensor
    optimisation: Optimisation
    evaluate: Evaluator
    device: torch.device
    autocast: object
    total_steps: int


@dataclass
class Resumed:
    """What --resume continues: the run's record as written (config.json) and its last checkpoint."""
    record: dict
    checkpoint: dict


class AlreadyFinished(Exception):
    """--resume of a run that finished: nothing to do (its summary stays as it is)."""

    def __init__(self, folder: RunFolder):
        summary = folder.read_summary()
        super().__init__(f"{folder.path}: already finished ({summary.get(keys.OUTCOME, 'no verdict recorded')}, "
                         f"step {summary.get(keys.STEPS, '?')}); nothing to resume. Start a new run (another "
                         "--run_id) to train it again")
        self.summary = summary


def resolve_run(argv: list[str] | None) -> tuple[Config, str, RunFolder, Resumed | None]:
    """Parse flags; for --resume, the saved config and the last checkpoint (none yet: the run starts
    over from step 0 with its recorded configuration, the earlier attempt kept). Seeds everything."""
    argv = sys.argv[1:] if argv is None else list(argv)
    cfg = parse_config(argv)
    resolve_mode(cfg.wandb_mode)  # online without a W&B login: an error now, not after the record is started
    if cfg.resume is None:
        run_id = cfg.run_id or os.environ.get("WANDB_RUN_ID") or uuid.uuid4().hex[:8]
        check_run_id(run_id, "--run_id" if cfg.run_id else "$WANDB_RUN_ID", wandb=cfg.wandb_mode != "disabled")
        resumed, folder = None, RunFolder(Path(cfg.output_dir) / run_id)
    else:
        folder = RunFolder(cfg.resume)
        if not folder.is_run():
            raise ValueError(f"--resume={cfg.resume}: no config.json there (expected a run directory written by train.py)")
        saved = read_json(folder.config)
        saved_cfg = config_from_saved(saved, folder.config)
        changed = [f"--{name}={getattr(cfg, name)} (the run has {getattr(saved_cfg, name)})"
                   for name in sorted(given_flags(argv) - {"resume"}) if getattr(cfg, name) != getattr(saved_cfg, name)]
        if changed:
            raise ValueError(f"--resume={cfg.resume}: a resumed run keeps its recorded configuration, and "
                             f"{', '.join(changed)} would change it; drop the flag, or start a new run")
        if folder.status() == "finished":
            raise AlreadyFinished(folder)
        cfg, run_id, resumed = replace(saved_cfg, resume=cfg.resume), saved["run_id"], None
        if folder.can_resume():
            checkpoint, path = load_resumable(folder)
            if path != folder.last:
                log.warning("%s is damaged; resuming from the previous intact checkpoint %s", folder.last, path)
            resumed = Resumed(saved, checkpoint)
        else:
            log.warning("%s: no checkpoint yet (stopped before its first validation): starting over from step 0 "
                        "with its recorded configuration; the earlier attempt is kept in %s/", folder.path,
                        folder.previous.name)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    return cfg, run_id, folder, resumed


def check_same_world(resumed: Resumed, dataset: Dataset, where: RunFolder) -> None:
    """A resume must read the data the run started on: otherwise its numbers would mix two datasets.
    Raises ValueError naming what changed (before anything is written)."""
    recorded = resumed.record.get("identity", {}).get("data")
    problems = label_differences(resumed.record.get("labels", {}), dataset.labels)
    if recorded is not None and recorded.get("sha256") != dataset.fingerprint["sha256"]:
        problems = data_differences(recorded, dataset.fingerprint) + problems
    elif recorded is None:
        log.warning("%s was recorded before data fingerprints: only its label names can be compared", where.config)
    if problems:
        raise ValueError(f"--resume={where.path}: the data is not what the run was trained on ({'; '.join(problems)}); "
                         "resume needs the run's own data: restore it, or start a new run")


def warn_dropped_words(dataset: Dataset, encoded: dict) -> None:
    """One warning per split whose words the tokenizer turns into no subword (a normaliser that removes
    zero-width characters): they are predicted O and scored as such, their gold tags left as they are."""
    for split, examples in dataset.splits.items():
        message = dropped_words_warning(examples, encoded[split])
        if message:
            log.warning("%s: %s", split, message)


def report_normalisation(dataset: Dataset, tokenizer) -> None:
    """One line on what the tokenizer's normaliser does to the dev and test words (lower-casing, stripped
    diacritics: Vietnamese words that differ only in tone marks become one); a warning unless it only lower-cases."""
    report = normalisation_report(tokenizer, {split: dataset.splits[split] for split in ("dev", "test")})
    if report:
        level, line = report
        log.log(level, "%s", line)


def build(cfg: Config, folder: RunFolder, resuming: bool) -> Parts:
    """Data, tokenizer, model, objective, optimiser and evaluator."""
    device = select_device(cfg.device)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
    autocast = functools.partial(torch.autocast, device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext
    dataset = load_dataset(cfg.data, cfg.data_format)
    tokenizer = load_tokenizer(cfg, dataset, folder if resuming else None)
    encoded = {split: encode(examples, tokenizer, dataset.labels, cfg.max_length)
               for split, examples in dataset.splits.items()}
    warn_dropped_words(dataset, encoded)
    report_normalisation(dataset, tokenizer)
    model = build_model(cfg, dataset.labels, len(tokenizer)).to(device)
    if cfg.compile:
        from torch._functorch import config as functorch_config

        functorch_config.donated_buffer = False  # task-gradient norms backpropagate through the graph twice
        model.compile(dynamic=True)  # in place: the state_dict keys stay those of the plain model
    criterion, class_weights = build_criterion(cfg, dataset.labels)
    for split in ("dev", "test"):
        masked = masked_gold(dataset.labels, dataset.splits[split])
        if masked:
            log.warning("%s: %d tokens have a gold tag the model masks (never seen in train: %s): they cannot be "
                        "right; left out of %s/loss, counted in %s, errors in entity F1", split,
                        sum(masked.values()), ", ".join(f"{tag} {n}" for tag, n in masked.most_common()),
                        keys.SPLIT_NAMESPACE[split], keys.split_metric(split, keys.entity_eval(keys.GOLD_MASKED)))
    total_steps = min(cfg.max_steps or sys.maxsize, cfg.epochs * math.ceil(len(encoded["train"]) / cfg.batch_size))
    optimizer = build_optimizer(model, cfg)
    optimisation = Optimisation(
        optimizer, get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps),
        torch.amp.GradScaler(device.type) if cfg.precision == "fp16" else None, cfg.grad_clip)
    evaluator = Evaluator(model, dataset, encoded, criterion, cfg.batch_size * 2, device, tokenizer.pad_token_id,
                          autocast)
    return Parts(cfg, dataset, tokenizer, encoded, model, criterion, class_weights, optimisation, evaluator, device,
                 autocast, total_steps)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The training sentences' order in `epoch`: a function of (seed, epoch) only, so a resumed epoch
    sees the same batches."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch))


def length_grouped(order: torch.Tensor, lengths: list[int], batch_size: int, window: int = 50) -> torch.Tensor:
    """`order` with each window of `window` batches sorted by sentence length (longest first): batches of
    similar lengths pad less, and the shuffle still decides which sentences share a window."""
    size = window * batch_size
    chunks = [sorted(order[i:i + size].tolist(), key=lambda j: -lengths[j]) for i in range(0, len(order), size)]
    return torch.tensor([j for chunk in chunks for j in chunk], dtype=order.dtype)


def step_batch(parts: Parts, step: int) -> tuple[int, dict]:
    """(epoch, batch on the device) of optimizer step `step` (counted from 1): the batch train_epoch
    trains that step on, from the step alone (a dead run's last state, a replay from the ring)."""
    cfg, train_set = parts.cfg, parts.encoded["train"]
    epoch, index = divmod(step - 1, math.ceil(len(train_set) / cfg.batch_size))
    order = epoch_order(len(train_set), cfg.seed, epoch)
    if cfg.group_by_length:
        order = length_grouped(order, [len(e.input_ids) for e in train_set], cfg.batch_size)
    chosen = order[index * cfg.batch_size:(index + 1) * cfg.batch_size].tolist()
    batch = collate([train_set[i] for i in chosen], parts.tokenizer.pad_token_id)
    return epoch, {k: v.to(parts.device) for k, v in batch.items()}


class Training:
    """One training run, built complete in `setup` (the shape of torchtune's recipes):
    setup -> train (train_epoch, validate_and_checkpoint per epoch) -> test -> finish.
    The collapse verdict is driven from one place, `self.watch`."""

    def __init__(self, cfg: Config, run_id: str, folder: RunFolder, parts: Parts, record: RunRecord,
                 resumed: Resumed | None):
        self.cfg, self.run_id, self.folder, self.parts, self.record = cfg, run_id, folder, parts, record
        self.name = cfg.run_name or run_name(cfg)
        self.state = TrainState(HealthMonitor(window=cfg.collapse_window))
        if resumed is not None:
            self._restore(resumed.checkpoint)
            self.identity = {**resumed.record.get("identity", {}), "resumed_with": [
                *resumed.record.get("identity", {}).get("resumed_with", []), code_version()]}
        else:
            attempt = self._start_fresh()
            self.identity = {"key": identity_key(identity_config(asdict(cfg)), parts.dataset.fingerprint["sha256"]),
                             "data": parts.dataset.fingerprint, "code": code_version(), "attempt": attempt}
        self._write_config()
        self.tracker = self._open_tracker(resuming=resumed is not None)
        self.forensics = Forensics(cfg.forensics, parts=parts.model.named_parts(), shared=("encoder",),
                                   write_line=record.log_forensics, on_record=self.tracker.summary,
                                   recorded=record.summary.get(keys.NAN_ORIGIN))
        self.watch = CollapseWatch(self.state.monitor, self.name, self.tracker.alert, lambda: self.forensics.text)
        self.ring = CheckpointRing(folder, cfg.ring_every, cfg.ring_keep)

    @classmethod
    def setup(cls, argv: list[str] | None = None) -> Training:
        cfg, run_id, folder, resumed = resolve_run(argv)
        parts = build(cfg, folder, resuming=resumed is not None)
        if resumed is not None:
            check_same_world(resumed, parts.dataset, folder)
        return cls(cfg, run_id, folder, parts, RunRecord(folder.path), resumed)

    # --- setup's steps
    def _restore(self, checkpoint: dict) -> None:
        self.parts.model.load_state_dict(checkpoint[CK_MODEL])
        self.parts.optimisation.load_state_dict(checkpoint)
        set_rng_state(checkpoint[CK_RNG])
        self.state.load_state_dict(dict(checkpoint[CK_TRAIN_STATE]))
        self.state.best_f1 = load_checkpoint(self.folder.best)[CK_TRAIN_STATE]["best_f1"]  # the best.pt kept
        self.record.truncate_after(self.state.step, redone=keys.BEST_EPOCH)  # the test is redone: its row too
        self.record.summary.pop(keys.ERROR, None)
        log.info("resuming %s from epoch %d, step %d", self.folder.path, self.state.epoch, self.state.step)

    def _start_fresh(self) -> int:
        """A new attempt of this run id (earlier ones are kept whole); returns its number (1 for the first)."""
        attempt = self.record.start_fresh()
        self.parts.tokenizer.save_pretrained(self.folder.tokenizer)
        save_encoder_config(self.parts.model.encoder.config, self.folder.encoder)  # predict.py rebuilds the encoder
        return attempt

    def run_info(self) -> dict:
        parts, labels = self.parts, self.parts.dataset.labels
        return {"run_id": self.run_id, "run_name": self.name, "dataset": parts.dataset.name,
                "data_format": parts.dataset.data_format,
                "sizes": {s: len(e) for s, e in parts.dataset.splits.items()},
                "labels": {"intents": labels.intents.names, "tags": labels.tags.names,
                           "commands": labels.commands.names if labels.commands else None,
                           "invalid_tags": labels.invalid_tags},
                "class_weights": parts.class_weights.tolist(), "total_steps": parts.total_steps,
                "identity": self.identity}

    def _write_config(self) -> None:
        self.record.write_config({"config": asdict(self.cfg), **self.run_info()})

    def _open_tracker(self, resuming: bool) -> Tracker:
        cfg = self.cfg
        tracker = Tracker(self.record, cfg.wandb_mode, dict(
            project=cfg.wandb_project, entity=cfg.wandb_entity,
            group=cfg.wandb_group or os.environ.get("WANDB_RUN_GROUP"), name=self.name, id=self.run_id,
            dir=str(Path(cfg.output_dir)), config={**asdict(cfg), **self.run_info()}, tags=run_tags(cfg)),
            resuming=resuming)
        tracker.log_dataset(self.parts.dataset, cfg.data)
        tracker.summary({keys.STATUS: "running", keys.RUN_ID: self.run_id, keys.RUN_NAME: self.name})
        return tracker

    # --- training
    def train(self) -> None:
        cfg, state = self.cfg, self.state
        progress = tqdm(total=self.parts.total_steps, initial=state.step, desc=self.name, dynamic_ncols=True,
                        mininterval=1.0, disable=None, file=sys.stderr)
        try:
            with logging_redirect_tqdm():  # warnings through tqdm.write: on their own line, not glued onto the bar
                self.parts.model.train()
                self.ring.start(state.step, self.resumable_state)
                for epoch in range(state.epoch if not state.training_done else cfg.epochs, cfg.epochs):
                    state.train_seconds += self.train_epoch(epoch, progress)
                    self.validate_and_checkpoint(epoch)
                    if state.training_done:
                        break
        finally:
            progress.close()
        self.watch.finish()

    def train_epoch(self, epoch: int, progress: tqdm) -> float:
        """One pass over train (or up to the step budget); returns its training-loop seconds."""
        cfg, parts, state, seconds = self.cfg, self.parts, self.state, 0.0
        order = epoch_order(len(parts.encoded["train"]), cfg.seed, epoch)
        if cfg.group_by_length:
            order = length_grouped(order, [len(e.input_ids) for e in parts.encoded["train"]], cfg.batch_size)
        for start in range(0, len(order), cfg.batch_size):
            if state.step >= parts.total_steps:
                break
            started = time.perf_counter()
            with phase("collate"):
                batch = collate([parts.encoded["train"][i] for i in order[start:start + cfg.batch_size].tolist()],
                                parts.tokenizer.pad_token_id)
            with phase("host_transfer"):
                batch = {k: v.to(parts.device, non_blocking=True) for k, v in batch.items()}
            state.step += 1
            log_now = state.step % cfg.log_every == 0  # telemetry and health are computed on logged steps
            task_grads = log_now and cfg.task_grad_every > 0 and (state.step == 1
                                                                  or state.step % cfg.task_grad_every == 0)
            self.forensics.begin_step(state.step)
            metrics = train_step(parts.model, batch, parts.criterion, parts.optimisation, epoch, parts.autocast,
                                 telemetry=log_now, task_grads=task_grads, forensics=self.forensics)
            with phase("host_transfer"):
                metrics = to_host(metrics)
            state.n_clipped += int(metrics[keys.GRAD_CLIPPED])
            with phase("telemetry/health"):
                if log_now:
                    metrics.update(count_scalars(metrics, parts.dataset.labels.invalid_mask))
                    metrics[keys.GRAD_CLIP_RATE] = state.n_clipped / state.step
                self.watch.observe(state.step, metrics, logged=log_now, scaled=bool(parts.optimisation.scaler))
            if log_now:
                with phase("logging"):
                    self.tracker.log(state.step, {keys.EPOCH: epoch, **metrics})
            state.last_metrics = metrics
            seconds += time.perf_counter() - started
            progress.update(1)
            progress.set_postfix(loss=f"{metrics[keys.LOSS_TOTAL]:.3f}", refresh=False,
                                 pred_non_O=f"{metrics.get(keys.entity_dist(keys.PRED_NON_O), math.nan):.2f}")
            if cfg.stop_on_collapse and self.watch.collapsed:
                state.stopped_on_collapse = True
                break
            if state.dead_at_step is None and not (math.isfinite(metrics[keys.LOSS_TOTAL])
                                                   and math.isfinite(metrics[keys.GRAD_NORM])):
                if self._died(batch):  # only a non-finite step can kill: the check costs nothing elsewhere
                    break
            self.ring.after_step(state.step, self.resumable_state, state.monitor.first_nonfinite_step)
        return seconds

    def _died(self, batch: dict) -> bool:
        """Whether this step left the model dead (train.dead); if so, record it and, with
        --stop_dead_runs, end training here: its dev and test scores are those of every later epoch."""
        state = self.state
        if not dead(self.parts.model, batch, self.parts.autocast):
            return False
        state.dead_at_step = state.step
        state.stopped_dead = self.cfg.stop_dead_runs
        log.warning("%s: %s: %s", self.name, self.dead_reason(),
                    "stopped; dev and test are scored once (no later step could change them; --stop_dead_runs=False "
                    "trains on)" if state.stopped_dead else "training on (--stop_dead_runs=False)")
        return state.stopped_dead

    def dead_reason(self) -> str:
        return f"parameters non-finite at step {self.state.dead_at_step}"

    def dead_state(self) -> dict:
        """A dead run's numbers on the batch of its last planned step: exactly what that step would have
        logged (`final/*` of a run that trained on), without training the steps in between."""
        parts = self.parts
        epoch, batch = step_batch(parts, parts.total_steps)
        with torch.no_grad(), parts.autocast():
            logits = parts.model(batch["input_ids"], batch["attention_mask"])
            metrics = parts.criterion(logits, batch, epoch)[2]
        metrics = to_host({**metrics, **step_counts(logits, batch, UNKNOWN)})
        metrics.update(count_scalars(metrics, parts.dataset.labels.invalid_mask))
        for key in self.state.last_metrics:  # the gradient of a NaN loss: NaN in every parameter
            if key.startswith(keys.GRAD_NORM):
                metrics[key] = math.nan
        metrics[keys.GRAD_NORM] = math.nan
        return metrics

    def validate_and_checkpoint(self, epoch: int) -> None:
        """Score dev, judge it for degenerate predictions, keep the best and the last checkpoint."""
        state, parts = self.state, self.parts
        val, predictions, _ = parts.evaluate("dev", epoch=epoch)
        self.tracker.log(state.step, {keys.EPOCH: epoch, **val})
        self.watch.after_eval(epoch, state.step, degenerate_evidence(parts.dataset.splits["dev"], predictions))
        state.epoch = epoch + 1
        state.training_done = (state.stopped_on_collapse or state.stopped_dead or state.step >= parts.total_steps
                               or state.epoch >= self.cfg.epochs)
        meta = {CK_CONFIG: asdict(self.cfg), CK_RUN_ID: self.run_id, CK_EPOCH: epoch}
        if val[keys.split_metric("dev", keys.ENTITY_F1)] > state.best_f1:
            state.best_f1 = val[keys.split_metric("dev", keys.ENTITY_F1)]
            save_checkpoint(self.folder.best, parts.model, **{CK_TRAIN_STATE: state.state_dict()}, **meta)
        resumable = self.resumable_state()
        del resumable[CK_MODEL]  # save_checkpoint takes the model itself
        save_checkpoint(self.folder.last, parts.model, **resumable, **{CK_EPOCH: epoch})

    def resumable_state(self) -> dict:
        """Everything training goes on from: model, optimisation, RNG, train state (last.pt, the ring)."""
        parts = self.parts
        return {CK_MODEL: parts.model.state_dict(), **parts.optimisation.state_dict(), CK_RNG: rng_state(),
                CK_TRAIN_STATE: self.state.state_dict(), CK_CONFIG: asdict(self.cfg), CK_RUN_ID: self.run_id}

    # --- test and finish
    def test(self) -> dict:
        """Test with the best-on-dev checkpoint; tables; the summary with the collapse verdict."""
        tracker, state, parts, test_examples = self.tracker, self.state, self.parts, self.parts.dataset.splits["test"]
        best = load_checkpoint(self.folder.best, parts.device)
        parts.model.load_state_dict(best[CK_MODEL])
        self.save_encoder()
        test, predictions, entity_types = parts.evaluate("test", epoch=best[CK_EPOCH])
        # its own axis: `epoch` is the last val row's
        tracker.log(state.step, {keys.BEST_EPOCH: best[CK_EPOCH], **test})
        tracker.table(keys.TABLE_ENTITY_TYPES, ["type", *keys.ENTITY_TYPE_STATS],
                      [[t, *(row[s] for s in keys.ENTITY_TYPE_STATS[:3]), int(row["support"])]
                       for t, row in entity_types.items()])
        tracker.confusion_matrix(keys.TABLE_INTENT_CONFUSION, [ex.intent for ex in test_examples], predictions.intents,
                                 parts.dataset.labels.intents.names)
        errors = span_errors([ex.tags for ex in test_examples], predictions.tags)
        tracker.table(keys.TABLE_ENTITY_ERRORS, ["kind", "gold type", "predicted type", "count"],
                      confusion_rows(errors))
        for kind in keys.SPAN_KINDS:
            test[keys.span_count(kind)] = float(sum(n for key, n in errors.items() if key[0] == kind))
        last = self.dead_state() if state.stopped_dead else state.last_metrics
        final = {keys.final(k): v for k, v in last.items() if k.startswith(keys.FINAL_PREFIXES) and not isinstance(v, list)}
        if state.dead_at_step is not None:
            final.update({keys.DEAD_AT_STEP: state.dead_at_step, keys.DEAD_REASON: self.dead_reason()})
        if state.stopped_dead:
            final.update({keys.dead_state(k): last[k] for k in keys.DEAD_STATE_KEYS if k in last})
        seconds = state.train_seconds
        summary = {**final, **test, keys.BEST_EPOCH: best[CK_EPOCH], keys.BEST_VAL_ENTITY_F1: state.best_f1,
                   keys.STEPS: state.step, keys.PLANNED_STEPS: parts.total_steps,
                   keys.STOPPED_ON_COLLAPSE: state.stopped_on_collapse,
                   keys.STOPPED_DEAD: state.stopped_dead,
                   **self.watch.verdict(), keys.PERF_TRAIN_SECONDS: seconds,
                   keys.PERF_STEPS_PER_SECOND: (state.step - state.timed_from_step) / seconds if seconds else math.nan}
        if state.stopped_dead:  # in the test row's W&B step, still open
            tracker.carried(f"stopped: {self.dead_reason()}", state.step, parts.total_steps,
                            {key: summary[keys.dead_state(key)] for key in keys.DEAD_STATE_KEYS
                             if keys.dead_state(key) in summary})
        tracker.summary(summary)
        model = {keys.BEST_EPOCH: best[CK_EPOCH], keys.BEST_VAL_ENTITY_F1: state.best_f1}
        tracker.finish("finished", model_metadata=model if self.cfg.log_model else None)
        return test

    def save_encoder(self) -> None:
        """The best-on-dev encoder in Hugging Face format, its tokenizer beside it: `AutoModel.from_pretrained`
        and `AutoTokenizer.from_pretrained` of `<run>/encoder` load what this run trained (the heads are in
        best.pt only; a tiny encoder has no pooler, so from_pretrained initialises one)."""
        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # its "Writing model shards" bar would add a line to every run's log
        try:
            self.parts.model.encoder.save_pretrained(self.folder.encoder)
            save_encoder_config(self.parts.model.encoder.config, self.folder.encoder)  # no custom-code entries
            self.parts.tokenizer.save_pretrained(self.folder.encoder)
        finally:
            if shown:
                hf_logging.enable_progress_bar()

    def fail(self, err: BaseException) -> None:
        """Training or test raised: mark the record crashed (or interrupted) and close W&B; nothing is lost."""
        status = "interrupted" if isinstance(err, KeyboardInterrupt) else "crashed"
        try:
            self.record.update_summary({keys.STATUS: status, keys.ERROR: f"{type(err).__name__}: {err}",
                                        **self.watch.verdict()})
        except OSError as write_err:  # a full disk: the status cannot be written, the error still is shown
            log.warning("could not mark the run %s: %s", status, write_err)
        try:
            self.tracker.finish(status)
        except Exception as finish_err:  # the local record is already complete
            log.warning("W&B did not finish cleanly: %s", finish_err)
        self.record.close()  # releases the run's lock even when finishing failed

    def verdict_line(self, test: dict) -> str:
        score = lambda name: test.get(keys.split_metric("test", name), math.nan)  # noqa: E731
        stopped = (f" | stopped dead after step {self.state.dead_at_step} of {self.parts.total_steps} planned "
                   "(nothing could change; --stop_dead_runs=False trains on)" if self.state.stopped_dead else "")
        return (f"[{self.run_id}] {self.name}: {self.watch.text()}{stopped} | test entity F1 {score(keys.ENTITY_F1):.3f}, "
                f"intent F1 {score(keys.macro_f1('intent')):.3f}, command F1 {score(keys.macro_f1('command')):.3f}, "
                f"pred_non_O {score(keys.entity_eval(keys.PRED_NON_O)):.3f} | record: {self.folder.path}")


def main(argv: list[str] | None = None) -> dict:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        training = Training.setup(argv)
    except AlreadyFinished as done:
        print(done)
        return done.summary
    try:
        training.train()
        test = training.test()
    except BaseException as err:
        with commandline.interrupts_deferred("closing the run record and W&B first"):  # a second Ctrl-C
            training.fail(err)
        if isinstance(err, KeyboardInterrupt):  # Ctrl-C: tell the user how to go on
            raise KeyboardInterrupt("the run is marked interrupted; continue it with "
                                    f"--resume={training.folder.path}") from None
        raise
    print(training.verdict_line(test))
    return training.record.summary


def _terminated(signum, frame):
    raise SystemExit(128 + signum)  # SIGTERM (a sweep runner or scheduler stopping us): record a crash


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminated)
    commandline.run(main)  # bad input, a damaged record, a full disk, a locked run: one line; Ctrl-C: one line
