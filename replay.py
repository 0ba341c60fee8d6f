"""Replay a run's steps from its checkpoint ring, unchanged or under one change, and judge each replay
with the run's own verdict rules (analysis/fixes.py drives it).

A replay starts from a ring checkpoint (model/ring.py: model, optimizer, scheduler, scaler, RNG, train
state with the health monitor) and trains the batches the run trained, step by step, with train.py's
own `train_step`, `dead` and `Evaluator`, in the order train.py's loop calls them: unchanged, it
reproduces the recorded losses bit for bit (same device and thread count). A change is applied to the
resolved config before the model, loss and optimizer are built for the replay; the ring's state is
then loaded into them, and the learning rate retargeted (the ring's scheduler remembers the run's peak
learning rate). Each replay is watched by a fresh `CollapseWatch` over the ring's `HealthMonitor`, with
a dev evaluation wherever the run had one (each epoch's end, the end of its planned steps) and none
elsewhere; the end of the window is the end of training for the verdict: a collapse is what the run's
rules call one, on the evidence the run itself would have had at that step.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from transformers import get_linear_schedule_with_warmup

from nlu_collapse import train
from nlu_collapse.config import LOSS_LEVELS, Config, build_parser, config_from_saved, resolve
from nlu_collapse.model.loading import build_model
from nlu_collapse.model.ring import last_before
from nlu_collapse.rng import set_rng_state
from nlu_collapse.runfolder import CK_MODEL, CK_OPTIMIZER, CK_RNG, CK_SCALER, CK_SCHEDULER, CK_TRAIN_STATE, RunFolder
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.distributions import count_scalars, to_host
from nlu_collapse.telemetry.health import HealthMonitor
from nlu_collapse.telemetry.record import read_history
from nlu_collapse.telemetry.watch import CollapseWatch

# The flags a replay may change: those of the objective and the optimisation. The rest would change the
# batches (data, batch size, seed, lengths), the model's shape (the ring's weights would not fit) or only
# the record (names, W&B, logging).
REPLAYABLE = ("mask_value", "dropout", "loss_impl", "entity_loss_scale", "gamma", "o_weight", "max_class_weight",
              "unit_class_weights", "loss_level", "lambdas", "lambda_entity", "lambda_intent", "lambda_command",
              "entity_warmup", "lr", "weight_decay", "warmup_ratio", "grad_clip", "precision")


@dataclass(frozen=True)
class Change:
    """One candidate fix: config flags to set, or a batch to drop (no update at that step)."""
    name: str
    flags: dict = field(default_factory=dict)
    skip_step: int | None = None

    @property
    def control(self) -> bool:
        return not self.flags and self.skip_step is None


CONTROL = Change("no change (control)")


def user_change(text: str, cfg: Config) -> Change:
    """`--try=FLAG=VALUE`, converted and checked by the config's own parser; a ValueError naming it otherwise."""
    name, sep, value = text.partition("=")
    action = build_parser()._option_string_actions.get(f"--{name}")
    if not sep or action is None:
        raise ValueError(f"--try={text}: expected FLAG=VALUE with a train.py flag, e.g. --try=lr=1e-4")
    if name not in REPLAYABLE:
        raise ValueError(f"--try={text}: --{name} cannot be replayed (it changes the batches, the model's shape or "
                         f"only the record); a replay can change {', '.join(REPLAYABLE)}")
    try:
        converted = action.type(value) if action.type else value
    except Exception as err:  # argparse's converters raise ValueError or ArgumentTypeError
        raise ValueError(f"--try={text}: {err}") from None
    change = Change(f"{name}={value}", {name: converted})
    apply(cfg, change, f"--try={text}")  # every check the config makes, now
    return change


def apply(cfg: Config, change: Change, where: str = "") -> Config:
    """The run's config under `change`, resolved as train.py resolves a config. A flag a --loss_level sets
    drops the level (the level would set it back)."""
    flags = dict(change.flags)
    if cfg.loss_level and set(flags) & set(LOSS_LEVELS[cfg.loss_level]) and "loss_level" not in flags:
        flags["loss_level"] = None
    try:
        return resolve(replace(cfg, **flags), set(flags))
    except ValueError as err:
        raise ValueError(f"{where or change.name}: {err}") from None


@dataclass
class Replayed:
    """One replay: its verdict over the window and the numbers at its end."""
    change: Change
    verdict: dict               # the monitor's summary keys (telemetry.health.HealthMonitor.verdict)
    losses: dict[int, float]    # loss/total of every step replayed
    last: dict                  # the last logged step's scalars
    end_step: int               # the last step replayed (earlier when the model died)
    dead_at: int | None = None  # the step after which the replay's model could not change any more

    @property
    def collapse_step(self) -> int | None:
        return self.verdict[keys.COLLAPSE_STEP]


class Run:
    """A recorded run, rebuilt for replays: its config, record, data and tokenizer, built once."""

    def __init__(self, folder: RunFolder):
        self.folder = folder
        self.record = folder.read_config()
        self.cfg = config_from_saved(self.record, folder.config)
        self.summary = folder.read_summary()
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        self.parts = train.build(self.cfg, folder, resuming=True)  # the run's saved tokenizer
        recorded = self.record.get("identity", {}).get("data", {}).get("sha256")
        if recorded is not None and recorded != self.parts.dataset.fingerprint["sha256"]:
            raise ValueError(f"{folder.config}: the data at {self.cfg.data} is not what the run was trained on "
                             "(its fingerprint differs): a replay needs the run's own batches")
        self.per_epoch = math.ceil(len(self.parts.encoded["train"]) / self.cfg.batch_size)

    def history(self) -> list[dict]:
        """The run's logged training steps."""
        return [row for row in read_history(self.folder.history) if keys.LOSS_TOTAL in row]

    def recorded_losses(self) -> dict[int, float]:
        return {row[keys.STEP]: row[keys.LOSS_TOTAL] for row in self.history()}

    def start(self, before: int) -> tuple[int, dict]:
        """(s, the ring checkpoint) of the newest kept state before step `before`."""
        return last_before(self.folder, before)

    def replay(self, change: Change, start: int, checkpoint: dict, end: int,
               progress: Callable[[int], None] = lambda step: None) -> Replayed:
        """Train steps start+1 .. end from `checkpoint` (the state after step `start`) under `change`."""
        cfg, base = apply(self.cfg, change), self.parts
        checkpoint = copy.deepcopy(checkpoint)  # loading the optimizer shares its tensors, which the steps change
        parts = self._parts(cfg, checkpoint)
        state = train.TrainState(HealthMonitor(window=cfg.collapse_window))
        state.load_state_dict(dict(checkpoint[CK_TRAIN_STATE]))
        watch = CollapseWatch(state.monitor, change.name, alert=lambda *args: None)
        set_rng_state(checkpoint[CK_RNG])
        parts.model.train()
        losses, last, dead_at = {}, {}, None
        if start and start % self.per_epoch == 0:  # the ring's state precedes that epoch's dev evaluation
            self._evaluate(parts, watch, start)
        for step in range(start + 1, end + 1):
            epoch, batch = train.step_batch(parts, step)
            progress(step)
            if step == change.skip_step:  # the batch is dropped: no update; the schedule goes on
                with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": meant
                    warnings.simplefilter("ignore", UserWarning)
                    parts.optimisation.scheduler.step()
                continue
            log_now = step % cfg.log_every == 0
            task_grads = log_now and cfg.task_grad_every > 0 and (step == 1 or step % cfg.task_grad_every == 0)
            metrics = to_host(train.train_step(parts.model, batch, parts.criterion, parts.optimisation, epoch,
                                               parts.autocast, telemetry=log_now, task_grads=task_grads))
            state.n_clipped += int(metrics[keys.GRAD_CLIPPED])
            if log_now:
                metrics.update(count_scalars(metrics, base.dataset.labels.invalid_mask))
                metrics[keys.GRAD_CLIP_RATE] = state.n_clipped / step
                last = metrics
            watch.observe(step, metrics, logged=log_now, scaled=bool(parts.optimisation.scaler))
            losses[step] = metrics[keys.LOSS_TOTAL]
            if state.dead_at_step is None and not (math.isfinite(metrics[keys.LOSS_TOTAL])
                                                   and math.isfinite(metrics[keys.GRAD_NORM])):
                if train.dead(parts.model, batch, parts.autocast):  # nothing can change from here on
                    state.dead_at_step = dead_at = step
                    break
            if step % self.per_epoch == 0 or step == base.total_steps:
                self._evaluate(parts, watch, step)
        watch.finish()
        return Replayed(change, watch.verdict(), losses, last, dead_at or end, dead_at)

    def _parts(self, cfg: Config, checkpoint: dict) -> train.Parts:
        """Model, loss and optimisation for `cfg`, holding the ring's state; data as the run's."""
        base = self.parts
        model = build_model(cfg, base.dataset.labels, len(base.tokenizer)).to(base.device)
        model.load_state_dict(checkpoint[CK_MODEL])
        criterion, class_weights = train.build_criterion(cfg, base.dataset.labels)
        optimizer = train.build_optimizer(model, cfg)
        total = base.total_steps
        scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
        scaler = torch.amp.GradScaler(base.device.type) if cfg.precision == "fp16" else None
        optimizer.load_state_dict(checkpoint[CK_OPTIMIZER])
        scheduler.load_state_dict(checkpoint[CK_SCHEDULER])
        if scaler is not None and CK_SCALER in checkpoint:
            scaler.load_state_dict(checkpoint[CK_SCALER])
        retarget(optimizer, scheduler, cfg)
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
        autocast = (functools.partial(torch.autocast, base.device.type, dtype=amp_dtype) if amp_dtype
                    else contextlib.nullcontext)
        evaluator = train.Evaluator(model, base.dataset, base.encoded, criterion, cfg.batch_size * 2, base.device,
                                    base.tokenizer.pad_token_id, autocast)
        return replace(base, cfg=cfg, model=model, criterion=criterion, class_weights=class_weights,
                       optimisation=train.Optimisation(optimizer, scheduler, scaler, cfg.grad_clip),
                       evaluate=evaluator, autocast=autocast)

    def _evaluate(self, parts: train.Parts, watch: CollapseWatch, step: int) -> None:
        epoch = (step - 1) // self.per_epoch
        _, predictions, _ = parts.evaluate("dev", epoch=epoch)
        watch.after_eval(epoch, step, train.degenerate_evidence(parts.dataset.splits["dev"], predictions))


def retarget(optimizer: torch.optim.Optimizer, scheduler, cfg: Config) -> None:
    """The loaded optimizer and schedule under `cfg`'s peak learning rate and weight decay (loading them
    restored the run's): each group's rate is what the schedule gives at its step, as LambdaLR computes it."""
    optimizer.param_groups[0]["weight_decay"] = cfg.weight_decay  # build_optimizer's decayed group
    scheduler.base_lrs = [cfg.lr] * len(optimizer.param_groups)
    for group, schedule in zip(optimizer.param_groups, scheduler.lr_lambdas):
        group["initial_lr"] = cfg.lr
        group["lr"] = cfg.lr * schedule(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


@contextlib.contextmanager
def quiet(name: str = "train"):
    """train.py's per-run messages (class weights, episodes) off while replays run: the table says it all."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)

