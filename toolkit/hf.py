"""The collapse instruments in a Hugging Face `Trainer`: `CollapseCallback`, and the hook that shows it the
raw loss and predictions (`CollapseTrainer`, or `CollapseTrainerMixin` before your own Trainer subclass).

    trainer = CollapseTrainer(model=model, args=args, train_dataset=train, data_collator=collator,
                              callbacks=[CollapseCallback([TokenTask("ner", label_names)])])
    trainer.train()
    print(trainer.collapse.verdict["text"])  # also in the W&B run's summary when report_to="wandb"

Why a hook as well as a callback: callbacks see neither the loss of a step nor its predictions (only the
logged, averaged loss, in which `logging_nan_inf_filter` replaces a NaN by the running mean, so a corrupted
run shows a clean curve). The hook wraps `compute_loss` (it keeps the raw loss, the logits, the labels and
a closure that recomputes the loss for the replay), `training_step` (per-part gradient norms before the
Trainer clips) and `_get_grad_norm` (the Trainer's own total norm before clipping: no second pass).
Everything else is `CollapseMonitor`'s (toolkit/monitor.py).

Gradient accumulation: a step's loss (and each component) is the sum over its micro-batches; the counts
and flags use the last micro-batch's predictions; the replay recomputes every micro-batch of the step.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import Trainer, TrainerCallback

from nlu_collapse.toolkit.gradients import grad_norms
from nlu_collapse.toolkit.monitor import CollapseMonitor, SentenceTask

# (loss, model outputs, inputs) -> (loss components, predictions by task, gold by task)
Split = Callable[[torch.Tensor, object, dict], tuple[dict, dict, dict]]


def single_task(task: str) -> Split:
    """A model with one head: its loss, `outputs.logits` and `inputs["labels"]` belong to `task`."""
    def split(loss, outputs, inputs):
        return {task: loss}, {task: outputs["logits"]}, {task: inputs["labels"]}
    return split


class CollapseCallback(TrainerCallback):
    """Health flags, episodes, the verdict with its evidence and the first NaN's origin, for a Trainer run.

    Args:
        tasks: the model's tasks (SentenceTask / TokenTask, as for CollapseMonitor).
        split: (loss, outputs, inputs) -> (losses, predictions, gold) by task; default for one task:
            `single_task(<its name>)`.
        **monitor: CollapseMonitor's keyword arguments (log_every, window, forensics, stop_on_collapse,
            stop_on_dead, parts, shared, log, name...); `stop_on_*` end training through the Trainer's control.
    After training, `verdict` holds CollapseMonitor.finish()'s result.
    """

    def __init__(self, tasks: Sequence[SentenceTask], split: Split | None = None, **monitor):
        if split is None and len(tasks) != 1:
            raise ValueError(f"CollapseCallback: {len(tasks)} tasks: pass split=(loss, outputs, inputs) -> "
                             "(losses, predictions, gold) to say which output belongs to which task")
        self.tasks, self.split = list(tasks), split or single_task(tasks[0].name)
        self.options = monitor
        self.monitor: CollapseMonitor | None = None
        self.verdict: dict | None = None
        self._batches: list[tuple] = []
        self._norms = (None, None)

    # --- fed by the Trainer hook
    def record(self, loss: torch.Tensor, outputs, inputs: dict, replay: Callable[[], torch.Tensor]) -> None:
        """One micro-batch's raw loss, outputs and inputs, and how to recompute its loss."""
        self._batches.append((loss.detach(), outputs, inputs, replay))

    def gradients_ready(self, model: torch.nn.Module) -> None:
        """After the step's last backward, before the Trainer clips: the per-part norms, on logged steps."""
        params = [p for p in model.parameters() if p.grad is not None]
        if params and self.monitor.logged:
            self._norms = (self._norms[0], grad_norms(params, self.monitor.parts)[1])

    def total_norm(self, norm) -> None:
        """The Trainer's own gradient norm before clipping (no second pass over the gradients)."""
        self._norms = (norm, self._norms[1])

    # --- the Trainer's events
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        options = {"name": args.run_name or "trainer", **self.options}
        self.monitor = CollapseMonitor(model, self.tasks, **options)

    def on_step_begin(self, args, state, control, **kwargs):
        self.monitor.begin_step()
        self._batches, self._norms = [], (None, None)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        """Gradients clipped, parameters not yet updated: the step's numbers, and the replay if non-finite."""
        if not self._batches:
            raise RuntimeError("CollapseCallback saw no loss: build the trainer with nlu_collapse.toolkit.hf."
                               "CollapseTrainer (or put CollapseTrainerMixin before your Trainer class)")
        loss = torch.stack([batch[0] for batch in self._batches]).sum()
        losses = {}
        for batch_loss, outputs, inputs, _ in self._batches:
            for name, value in self.split(batch_loss, outputs, inputs)[0].items():
                losses[name] = losses[name] + value if name in losses else value
        _, predictions, gold = self.split(*self._batches[-1][:3])
        replays = [batch[3] for batch in self._batches]
        norm, part_norms = self._norms
        self.monitor.observe(loss, losses, predictions, gold, closure=lambda: sum(replay() for replay in replays),
                             grad_norm=norm, part_norms=part_norms)

    def on_optimizer_step(self, args, state, control, **kwargs):
        if self.monitor.end_step():
            control.should_training_stop = True
        self._batches = []

    def on_train_end(self, args, state, control, **kwargs):
        self.verdict = self.monitor.finish()


class CollapseTrainerMixin:
    """Put it before `Trainer` (or your Trainer subclass) in the bases: it hands the CollapseCallback
    among the trainer's callbacks each training micro-batch's raw loss and outputs, and the gradient norms
    before clipping. Evaluation is untouched."""

    @property
    def collapse(self) -> CollapseCallback | None:
        """The trainer's CollapseCallback (None without one)."""
        return next((c for c in self.callback_handler.callbacks if isinstance(c, CollapseCallback)), None)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        callback = self.collapse
        if callback is None or not model.training:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        kept = dict(inputs)  # Trainer.compute_loss pops the labels when a loss function is set

        def replay():
            return super(CollapseTrainerMixin, self).compute_loss(model, dict(kept),
                                                                  num_items_in_batch=num_items_in_batch)

        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        callback.record(loss, outputs, kept, replay)
        return (loss, outputs) if return_outputs else loss

    def _get_grad_norm(self, model, grad_norm=None):
        norm = super()._get_grad_norm(model, grad_norm=grad_norm)  # the pre-clip norm (Trainer's private hook)
        if self.collapse is not None:
            self.collapse.total_norm(norm)
        return norm

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        callback = self.collapse
        if callback is not None and self.accelerator.sync_gradients:
            callback.gradients_ready(model)
        return loss


class CollapseTrainer(CollapseTrainerMixin, Trainer):
    """`transformers.Trainer` with the hook CollapseCallback needs."""
