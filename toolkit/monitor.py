"""`CollapseMonitor`: the collapse instruments of this repo's train.py, for any PyTorch training loop.

Per optimizer step it takes the step's loss (and its components), the task predictions and gold
labels, and the model's gradients; it raises the `health/*` flags relative to the gold labels
(telemetry/health.py), keeps the degenerate-prediction episodes, logs gradient norms (total, per part,
per task on a shared encoder) and label-distribution histograms, replays the first non-finite step to
name where its NaN came from (telemetry/forensics.py), and at the end gives the outcome (healthy,
collapsed, not learned yet) with its evidence (telemetry/watch.py). Nothing here knows this repo's
model, data or configuration.

    monitor = CollapseMonitor(model, [SentenceTask("intent", intent_names), TokenTask("tags", tag_names)])
    for batch in loader:
        with monitor.step():
            logits = model(batch["words"])
            losses = {"intent": ..., "tags": ...}
            loss = sum(losses.values())
            optimizer.zero_grad()
            loss.backward()
            monitor.observe(loss, losses, predictions=logits, gold={"intent": ..., "tags": ...},
                            closure=lambda: compute_losses(model, batch))
            optimizer.step()
        if monitor.should_stop:
            break
    print(monitor.finish()["text"])

Costs: every step one pass over the gradients for the total norm (none if `observe` is given the norm
`clip_grad_norm_` returned) and one device-to-host copy of a few scalars; the flags, counts and
per-part norms only every `log_every` steps; the replay only at a non-finite step.
"""
from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.distributions import count_scalars, to_host
from nlu_collapse.telemetry.forensics import Closure, Forensics, default_parts
from nlu_collapse.telemetry.health import HealthMonitor, degenerate_evidence
from nlu_collapse.telemetry.watch import CollapseWatch
from nlu_collapse.toolkit.gradients import grad_norms, task_grad_norms
from nlu_collapse.toolkit.sink import Sink

log = logging.getLogger("nlu_collapse.toolkit")

IGNORE_INDEX = -100  # PyTorch's and Hugging Face's label for "no label here" (padding, sub-words)


@dataclass(frozen=True)
class SentenceTask:
    """A task with one label per example (intent, command, sentiment).

    Args:
        name: the task's name in the logged keys (`dist/<name>/pred`) and the evidence.
        labels: the number of classes, or their names (index = class id).
    """
    name: str
    labels: int | Sequence[str]

    @property
    def n_labels(self) -> int:
        return self.labels if isinstance(self.labels, int) else len(self.labels)

    def label_name(self, index: int) -> str:
        return str(index) if isinstance(self.labels, int) else str(self.labels[index])


@dataclass(frozen=True)
class TokenTask(SentenceTask):
    """A task with one label per token and an outside label (NER, slot filling: O).

    Args:
        outside: the outside label, by name (in `labels`) or by id.
    """
    outside: int | str = "O"

    @property
    def outside_id(self) -> int:
        if isinstance(self.outside, int):
            return self.outside
        if isinstance(self.labels, int) or self.outside not in self.labels:
            raise ValueError(f"TokenTask {self.name!r}: outside={self.outside!r} is not one of its label names; pass "
                             "the label names, or the outside label's id (outside=0)")
        return list(self.labels).index(self.outside)


class CollapseMonitor:
    """Health flags, episodes, verdict, gradient norms, label histograms and NaN forensics for one run.

    Args:
        model: the model being trained.
        tasks: its tasks: any number of `SentenceTask(name, labels)`, at most one `TokenTask(name, labels,
            outside="O")`; `labels` is the class count or the label names.
        parts: named parts of the model, for per-part gradient norms and the NaN's spread (default: the
            model's `named_parts()` if it has one, else its top-level modules).
        shared: the name of the part every task reads (a shared encoder): per-task gradient norms on it
            (`task_gradients`), and the origin names it as such.
        log: `log(metrics, step)` for the metrics; default: the active W&B run (`wandb.run`) if there is
            one, else nothing is logged (the verdict is still returned). Metrics carry the optimizer step as
            `step` (W&B's own `step=` is not used, so they never collide with your logging or the
            Trainer's); the verdict comes as `log(verdict, None)`.
        log_every: flags, label counts and per-part norms every this many steps (the finite check and
            the replay run every step).
        task_grad_every: per-task gradient norms (`task_gradients`, one extra backward pass per task) on
            step 1 and every this many steps, when they are logged.
        window: logged steps a degenerate condition must hold to be an episode (HealthMonitor); default:
            about 20 optimizer steps (train.py's default), at least 3 logged steps. A flat loss through a
            degenerate phase counts as a collapse after `PLATEAU_WINDOWS` windows (docs/verdict.md).
        forensics: off, first (replay the first non-finite step) or every.
        stop_on_collapse: `should_stop` at the first non-finite step.
        stop_on_dead: `should_stop` once every parameter that had a gradient is non-finite (no later
            step can change anything: clip_grad_norm_ of a NaN norm does that).
        name: the run's name in messages and the alert.
        ignore_index: gold label of positions without a label (as in PyTorch and Hugging Face).
    """

    def __init__(self, model: torch.nn.Module, tasks: Sequence[SentenceTask], *,
                 parts: dict[str, torch.nn.Module] | None = None, shared: str | None = None,
                 log: Callable[[dict, int], None] | None = None, log_every: int = 10, task_grad_every: int = 100,
                 window: int | None = None,
                 forensics: str = "first", stop_on_collapse: bool = False, stop_on_dead: bool = False,
                 name: str = "run", ignore_index: int = IGNORE_INDEX):
        tokens = [task for task in tasks if isinstance(task, TokenTask)]
        if len(tokens) > 1:
            raise ValueError(f"CollapseMonitor: {len(tokens)} token tasks ({', '.join(t.name for t in tokens)}); it "
                             "judges at most one (its flags are health/pred_non_O_*): use one monitor per token task")
        window = max(3, round(20 / max(log_every, 1))) if window is None else window
        if log_every < 1 or window < 1:
            raise ValueError(f"CollapseMonitor: log_every={log_every}, window={window}: both must be at least 1")
        self.model, self.tasks = model, {task.name: task for task in tasks}
        self.token = tokens[0] if tokens else None
        if self.token is not None:
            self._outside = self.token.outside_id
        self.sentence = tuple(name for name, task in self.tasks.items() if not isinstance(task, TokenTask))
        self.parts = parts if parts is not None else default_parts(model)
        if shared is not None and shared not in self.parts:
            raise ValueError(f"CollapseMonitor: shared={shared!r} is not one of the parts ({', '.join(self.parts)})")
        self.shared, self.log_every, self.ignore_index, self.name = shared, log_every, ignore_index, name
        self.task_grad_every = task_grad_every
        self.stop_on_collapse, self.stop_on_dead = stop_on_collapse, stop_on_dead
        self.sink = Sink(log)
        self.health = HealthMonitor(window=window, token_task=self.token.name if self.token else None,
                                    sentence_tasks=self.sentence)
        self.forensics = Forensics(forensics, parts=self.parts, shared=(shared,) if shared else (),
                                   on_record=self.sink.summary)
        self.watch = CollapseWatch(self.health, name, self.sink.alert, lambda: self.forensics.text)
        self.steps, self.dead_at_step = 0, None
        self._task_norms: dict = {}
        self._replayed = self._nonfinite = False
        self._metrics: dict = {}

    # --- one optimizer step
    @property
    def logged(self) -> bool:
        """Whether the current step computes flags, counts and per-part norms."""
        return self.steps % self.log_every == 0

    def begin_step(self) -> int:
        """Before the step's forward: counts the step, keeps the RNG state a replay needs. Returns the step."""
        self.steps += 1
        self._task_norms, self._replayed, self._nonfinite, self._metrics = {}, False, False, {}
        self.forensics.begin_step(self.steps)
        return self.steps

    @contextlib.contextmanager
    def step(self):
        """`begin_step` on entry, `end_step` on a normal exit: wrap forward, backward and the optimizer step."""
        self.begin_step()
        yield self
        self.end_step()

    def task_gradients(self, task_losses: dict[str, torch.Tensor]) -> None:
        """Before `backward`, on logged steps: the norm of each task loss's gradient on the shared part
        (which task drives the shared encoder), on step 1 and every `task_grad_every` steps. Needs
        `shared`; a no-op on other steps."""
        if self.shared is None:
            raise ValueError("CollapseMonitor.task_gradients: pass shared=<the part every task reads> to the monitor")
        if self.logged and (self.steps == 1 or self.steps % self.task_grad_every == 0):
            self._task_norms = task_grad_norms(task_losses, self.parts[self.shared])

    def observe(self, loss: torch.Tensor, losses: dict | None = None, predictions: dict | None = None,
                gold: dict | None = None, closure: Closure | None = None, grad_norm=None,
                part_norms: dict | None = None) -> dict:
        """After `backward` (and clipping), before `optimizer.step()`.

        Args:
            loss: the loss that was backpropagated.
            losses: its components by name (tensors or floats), logged as `loss/<name>`.
            predictions: task -> logits (argmax is taken) or predicted class ids; a single tensor for a
                single task.
            gold: task -> gold class ids (`ignore_index` where there is no label); a tensor for one task.
            closure: recomputes this step's loss from its batch (the loss, a dict of loss terms, or
                (loss, terms)); called only to replay a non-finite step.
            grad_norm: the total gradient norm before clipping, if you have it (`clip_grad_norm_`
                returns it); else computed here.
            part_norms: `grad/norm/<part>` norms computed before clipping (the Trainer hook does).
        Returns the step's metrics (floats; count vectors as lists): on steps that are not logged, the
        loss and the gradient norm only; `end_step` adds the health flags.
        """
        step, logged = self.steps, self.logged
        if step == 0:
            raise RuntimeError("CollapseMonitor.observe before begin_step: wrap the step in `with monitor.step():`")
        if grad_norm is None or (logged and part_norms is None):
            params = [p for p in self.model.parameters() if p.grad is not None]
            norm, by_part = grad_norms(params, self.parts if logged else {}) if params else (torch.zeros(()), {})
            grad_norm = norm if grad_norm is None else grad_norm
            part_norms = by_part if part_norms is None else part_norms
        if logged:
            metrics = {keys.LOSS_TOTAL: _detached(loss), keys.GRAD_NORM: _detached(grad_norm)}
            metrics.update({keys.loss(name): _detached(value) for name, value in (losses or {}).items()})
            metrics.update(part_norms or {})
            metrics.update(self._task_norms)
            metrics.update(self._counts(predictions, gold))
            metrics = to_host(metrics)  # one device-to-host copy
        else:  # the finite check alone
            total, norm = torch.stack([_detached(loss).float(), _detached(grad_norm).float()]).tolist()
            metrics = {keys.LOSS_TOTAL: total, keys.GRAD_NORM: norm}
        self._nonfinite = not (math.isfinite(metrics[keys.LOSS_TOTAL]) and math.isfinite(metrics[keys.GRAD_NORM]))
        if self._nonfinite and closure is not None:
            step_losses = {keys.LOSS_TOTAL: _detached(loss),
                           **{keys.loss(name): _detached(value) for name, value in (losses or {}).items()}}
            self._replayed = self.forensics.check(self.model, closure, loss, grad_norm, step_losses)
        if logged:
            metrics.update(count_scalars(metrics, None, self.token.name if self.token else None, self.sentence,
                                         self._outside if self.token else 0))
        self._metrics = metrics
        return metrics

    def end_step(self) -> bool:
        """After `optimizer.step()`: how far a non-finite step spread, the step's health flags (an alert
        at a collapse, naming the NaN's origin), whether the run is dead; the step's metrics logged.
        Returns `should_stop`."""
        if self._replayed:
            self.forensics.after_step(self.model)
        if self._metrics:
            self.watch.observe(self.steps, self._metrics, logged=self.logged)
        if self._nonfinite and self.dead_at_step is None and self._dead():
            self.dead_at_step = self.steps
            log.warning("%s: every trained parameter is non-finite after step %d: no later step can change the "
                        "model%s", self.name, self.steps, " (stopping)" if self.stop_on_dead else "")
        if self.logged and self._metrics:
            self.sink.log(self._metrics, self.steps)
        return self.should_stop

    def _dead(self) -> bool:
        trained = [p for p in self.model.parameters() if p.grad is not None]
        return bool(trained) and all(not bool(torch.isfinite(p).any()) for p in trained)

    @property
    def should_stop(self) -> bool:
        return ((self.stop_on_collapse and self.watch.collapsed)
                or (self.stop_on_dead and self.dead_at_step is not None))

    def _counts(self, predictions, gold) -> dict[str, torch.Tensor]:
        """Predicted and gold label counts per task (histograms `dist/<task>/pred`, `dist/<task>/gold`),
        over the positions that have a gold label."""
        if predictions is None or gold is None:
            return {}
        predictions, gold = self._by_task(predictions, "predictions"), self._by_task(gold, "gold")
        counts = {}
        for name, task in self.tasks.items():
            if name not in predictions or name not in gold:
                continue
            pred, target = _class_ids(predictions[name]), gold[name].detach()
            if pred.shape != target.shape:
                raise ValueError(f"CollapseMonitor: task {name!r}: predictions of shape {tuple(pred.shape)} for gold "
                                 f"of shape {tuple(target.shape)}")
            valid = target != self.ignore_index
            counts[keys.pred_counts(name)] = torch.bincount(pred[valid].reshape(-1), minlength=task.n_labels)
            counts[keys.gold_counts(name)] = torch.bincount(target[valid].reshape(-1), minlength=task.n_labels)
        return counts

    def _by_task(self, value, what: str) -> dict:
        if isinstance(value, torch.Tensor):
            if len(self.tasks) != 1:
                raise ValueError(f"CollapseMonitor: {what} is one tensor for {len(self.tasks)} tasks: pass a dict "
                                 f"by task name ({', '.join(self.tasks)})")
            return {next(iter(self.tasks)): value}
        unknown = set(value) - set(self.tasks)
        if unknown:
            raise ValueError(f"CollapseMonitor: {what} for unknown tasks {sorted(unknown)} (the monitor's tasks: "
                             f"{', '.join(self.tasks)})")
        return value

    # --- a dev evaluation (optional)
    def evaluate(self, predictions: dict, gold: dict, epoch: int | None = None) -> None:
        """A whole evaluation split's predictions: a degenerate one (every token O, one class for every
        example) is evidence for the verdict. Token tasks: lists of per-example id sequences (or a
        padded tensor with `ignore_index` in gold); sentence tasks: id sequences or tensors."""
        predictions, gold = self._by_task(predictions, "predictions"), self._by_task(gold, "gold")
        token, sentence = {}, {}
        for name, task in self.tasks.items():
            if name not in predictions or name not in gold:
                continue
            pred, target = _as_lists(predictions[name]), _as_lists(gold[name])
            if task is self.token:
                outside = self._outside
                word = lambda i: "O" if i == outside else task.label_name(i)  # noqa: E731
                rows = [[(word(p), word(g)) for p, g in zip(pr, gr) if g != self.ignore_index]
                        for pr, gr in zip(pred, target)]
                token[name] = ([[g for _, g in row] for row in rows], [[p for p, _ in row] for row in rows])
            else:
                kept = [(p, g) for p, g in zip(pred, target) if g != self.ignore_index]
                sentence[name] = ([task.label_name(g) for _, g in kept], [task.label_name(p) for p, _ in kept])
        evaluations = len(self.health.evals)
        self.watch.after_eval(evaluations if epoch is None else epoch, self.steps, degenerate_evidence(token, sentence))

    # --- the end
    def finish(self) -> dict:
        """The verdict: `health/outcome` (healthy, collapsed, not learned yet), the collapse step and
        reasons with their evidence, the episodes, the NaN's origin (`health/nan_origin`) if one was
        replayed; `text`: all of it in one line. Written to the W&B run's summary (or `log`)."""
        self.watch.finish()
        verdict = self.watch.verdict()
        if self.forensics.origin is not None:
            verdict[keys.NAN_ORIGIN] = self.forensics.origin
        verdict[keys.DEAD_AT_STEP] = self.dead_at_step
        self.sink.summary({key: value for key, value in verdict.items() if key != keys.NAN_ORIGIN})
        verdict["text"] = self.text
        return verdict

    @property
    def text(self) -> str:
        """The outcome in one line (CollapseWatch.text)."""
        return self.watch.text()

    def state_dict(self) -> dict:
        """What a checkpoint keeps to resume the verdict where it was."""
        return {"steps": self.steps, "dead_at_step": self.dead_at_step, "health": self.health.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.dead_at_step = state["steps"], state["dead_at_step"]
        self.health.load_state_dict(state["health"])


def _detached(value) -> torch.Tensor:
    return value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float(value))


def _class_ids(value: torch.Tensor) -> torch.Tensor:
    """Logits (floating point: argmax over the last dimension) or class ids."""
    value = value.detach()
    return value.argmax(-1) if value.is_floating_point() else value


def _as_lists(value) -> list:
    if isinstance(value, torch.Tensor):
        return _class_ids(value).tolist()
    return [list(row) if isinstance(row, (list, tuple)) else row for row in value]


def verdict_lines(verdict: dict) -> list[str]:
    """A verdict (CollapseMonitor.finish) as a few readable lines: outcome, episodes, reasons, the NaN's origin."""
    lines = [f"outcome: {verdict[keys.OUTCOME]}" + (f" at step {verdict[keys.COLLAPSE_STEP]}"
                                                    if verdict[keys.COLLAPSED] else "")]
    for episode in verdict[keys.EPISODES]:
        lines.append(f"episode: {episode['kind']}, steps {episode['first_step']}-{episode['last_step']}, "
                     f"{'recovered' if episode['recovered'] else 'to the end'}")
    lines += [f"reason: {reason}" for reason in verdict[keys.COLLAPSE_REASONS]]
    if not verdict[keys.COLLAPSED]:
        lines += [f"evidence: {text}" for text in verdict[keys.OUTCOME_EVIDENCE]]
    origin = verdict.get(keys.NAN_ORIGIN)
    if origin:
        inf = origin.get("inf_origin") or {}
        lines += [f"origin: {origin['component']}, {origin['phase']}, {origin['op']} at {origin['source']}, "
                  f"module {origin['module']}",
                  f"first infinity: {inf.get('kind')} from {inf.get('op')} at {inf.get('source')}" if inf else
                  "first infinity: none",
                  f"spread: {origin['spread'].get('all', 0.0):.0%} of parameter tensors, by {origin['spread_by']}",
                  f"text: {origin['text']}"]
    return lines
