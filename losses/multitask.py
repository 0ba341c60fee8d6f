"""The multi-task objective: lambda_entity * L_entity + lambda_intent * L_intent + lambda_command * L_command.

Entity: focal loss (losses.focal) with class weights; intent and command: cross-entropy.
Task weights come from a preset (`--lambdas=old|new`, the write-up's before / after) that each
`--lambda_*` flag overrides; `new` warms the entity weight up by epoch (0.3, 0.4, then 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nlu_collapse.losses.focal import focal_loss, mean_or_zero
from nlu_collapse.telemetry import keys

PRESETS = {
    "old": {"entity": 0.8, "intent": 0.15, "command": 0.05, "warmup": ()},
    "new": {"entity": 0.5, "intent": 0.3, "command": 0.2, "warmup": (0.3, 0.4)},
}
TASKS = keys.TASKS


@dataclass(frozen=True)
class TaskWeights:
    entity: float
    intent: float
    command: float
    entity_warmup: tuple[float, ...] = ()  # entity weight for epochs 0, 1, ...; `entity` afterwards

    @classmethod
    def from_preset(cls, preset: str, entity: float | None = None, intent: float | None = None,
                    command: float | None = None, warmup: tuple[float, ...] | None = None) -> "TaskWeights":
        """A preset's weights, each overridden where given; `warmup` None keeps the preset's, () drops it."""
        if preset not in PRESETS:
            raise ValueError(f"unknown task-weight preset {preset!r}: expected one of {', '.join(PRESETS)}")
        weights = PRESETS[preset]
        pick = lambda given, task: weights[task] if given is None else float(given)  # noqa: E731
        return cls(pick(entity, "entity"), pick(intent, "intent"), pick(command, "command"),
                   weights["warmup"] if warmup is None else tuple(warmup))

    def at_epoch(self, epoch: int) -> dict[str, float]:
        entity = self.entity_warmup[epoch] if epoch < len(self.entity_warmup) else self.entity
        return {"entity": entity, "intent": self.intent, "command": self.command}


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean CE over labelled items; 0 when all are ignored (unknown labels), never NaN."""
    valid = target != ignore_index
    return mean_or_zero(F.cross_entropy(logits[valid].float(), target[valid], reduction="none"))


class MultiTaskLoss:
    """Computes the weighted total and every component for logging.

    Args:
        weights: task weights and warm-up.
        class_weights: (C,) entity class weights.
        scale, gamma, impl: focal-loss settings (losses.focal; `scale` is the entity_loss_scale flag).
    """

    def __init__(self, weights: TaskWeights, class_weights: torch.Tensor, scale: float, gamma: float, impl: str):
        self.weights, self.class_weights = weights, class_weights
        self.scale, self.gamma, self.impl = scale, gamma, impl

    def task_losses(self, logits: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Unweighted loss of every task the model has a head for (a missing head is absent)."""
        entity = logits["entity"]
        losses = {"entity": focal_loss(entity.reshape(-1, entity.shape[-1]), batch["tags"].reshape(-1),
                                       scale=self.scale, gamma=self.gamma,
                                       weight=self.class_weights.to(entity.device), impl=self.impl),
                  "intent": cross_entropy(logits["intent"], batch["intent"])}
        if "command" in logits:
            losses["command"] = cross_entropy(logits["command"], batch["command"])
        return losses

    def __call__(self, logits, batch, epoch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Returns (total, weighted losses per task (in the graph), detached components for logging)."""
        lambdas = self.weights.at_epoch(epoch)
        losses = self.task_losses(logits, batch)
        weighted = {task: lambdas[task] * loss for task, loss in losses.items()}
        total = sum(weighted.values())
        components = {keys.LOSS_TOTAL: total.detach()}
        for task, loss in losses.items():
            components[keys.loss(task)] = loss.detach()
            components[keys.weighted_loss(task)] = weighted[task].detach()
            components[keys.task_weight(task)] = torch.tensor(lambdas[task])
        return total, weighted, components
