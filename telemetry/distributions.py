"""Per-step label distributions, built from counts the step already has (torch.bincount).

Vectors (one bin per label) become W&B histograms; each has scalar twins for line plots.
Everything a step logs is moved to the host in one transfer (`to_host`).
"""
from __future__ import annotations

import torch

from nlu_collapse.telemetry import keys


def step_counts(logits: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                unknown: int) -> dict[str, torch.Tensor]:
    """Predicted and gold label counts of one batch of train.py's (argmax of the masked logits); gold
    labels `unknown` (padding, and labels unseen in train) are left out."""
    n_tags = logits["entity"].shape[-1]
    valid = batch["tags"] != unknown                                              # (B, T)
    counts = {
        keys.pred_counts("entity"): torch.bincount(logits["entity"].argmax(-1)[valid], minlength=n_tags),
        keys.gold_counts("entity"): torch.bincount(batch["tags"][valid], minlength=n_tags),
    }
    for task in keys.SENTENCE_TASKS:
        if task in logits:
            n_classes = logits[task].shape[-1]
            counts[keys.pred_counts(task)] = torch.bincount(logits[task].argmax(-1), minlength=n_classes)
            gold = batch[task][batch[task] != unknown]
            counts[keys.gold_counts(task)] = torch.bincount(gold, minlength=n_classes)
    return counts


def count_scalars(counts: dict[str, list[float]], invalid: list[bool] | None, token_task: str | None = "entity",
                  sentence_tasks: tuple[str, ...] = keys.SENTENCE_TASKS, outside: int = 0) -> dict[str, float]:
    """Scalar twins of the count vectors of one token task (label `outside` is its O; `invalid`: labels
    the model masks, counted in masked_pred) and of the sentence tasks present in `counts`."""
    scalars = {}
    if token_task is not None and keys.pred_counts(token_task) in counts:
        pred, gold = counts[keys.pred_counts(token_task)], counts[keys.gold_counts(token_task)]
        n_tokens = sum(pred)
        scalars[keys.token_dist(token_task, keys.PRED_NON_O)] = 1.0 - pred[outside] / n_tokens if n_tokens else 0.0
        scalars[keys.token_dist(token_task, keys.GOLD_NON_O)] = 1.0 - gold[outside] / n_tokens if n_tokens else 0.0
        scalars[keys.n_labels_pred(token_task)] = float(sum(c > 0 for c in pred))
        if invalid is not None:
            scalars[keys.token_dist(token_task, keys.MASKED_PRED)] = float(
                sum(c for c, masked in zip(pred, invalid) if masked))
    for task in sentence_tasks:
        if keys.pred_counts(task) in counts:
            pred, gold = counts[keys.pred_counts(task)], counts[keys.gold_counts(task)]
            scalars[keys.max_share(task)] = max(pred) / max(sum(pred), 1)
            scalars[keys.gold_max_share(task)] = max(gold) / max(sum(gold), 1)
    return scalars


def to_host(tensors: dict[str, torch.Tensor]) -> dict[str, float | list[float]]:
    """One device->host copy for all of a step's numbers; 0-d tensors become floats, vectors lists."""
    names = list(tensors)
    flat = torch.cat([tensors[n].detach().reshape(-1).double() for n in names]).cpu().tolist()
    out, position = {}, 0
    for name in names:
        size = tensors[name].numel()
        chunk = flat[position:position + size]
        out[name] = chunk[0] if tensors[name].dim() == 0 else chunk
        position += size
    return out
