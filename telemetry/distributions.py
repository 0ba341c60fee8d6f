"""Per-step label distributions, built from counts the step already has (torch.bincount).

Vectors (one bin per label) become W&B histograms; each has scalar twins for line plots.
Everything a step logs is moved to the host in one transfer (`to_host`).
"""
from __future__ import annotations

import torch

from data import UNKNOWN


def step_counts(logits: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Predicted and gold label counts of one batch (argmax of the masked logits); gold labels unseen
    in train (UNKNOWN) are left out."""
    n_tags = logits["entity"].shape[-1]
    valid = batch["tags"] != UNKNOWN                                              # (B, T)
    counts = {
        "dist/entity/pred": torch.bincount(logits["entity"].argmax(-1)[valid], minlength=n_tags),
        "dist/entity/gold": torch.bincount(batch["tags"][valid], minlength=n_tags),
    }
    for task in ("intent", "command"):
        if task in logits:
            n_classes = logits[task].shape[-1]
            counts[f"dist/{task}/pred"] = torch.bincount(logits[task].argmax(-1), minlength=n_classes)
            gold = batch[task][batch[task] != UNKNOWN]
            counts[f"dist/{task}/gold"] = torch.bincount(gold, minlength=n_classes)
    return counts


def count_scalars(counts: dict[str, list[float]], invalid: list[bool]) -> dict[str, float]:
    """Scalar twins of the count vectors. Entity label 0 is O."""
    entity, gold = counts["dist/entity/pred"], counts["dist/entity/gold"]
    n_tokens = sum(entity)
    scalars = {
        "dist/entity/pred_non_O": 1.0 - entity[0] / n_tokens if n_tokens else 0.0,
        "dist/entity/gold_non_O": 1.0 - gold[0] / n_tokens if n_tokens else 0.0,
        "dist/entity/n_labels_pred": float(sum(c > 0 for c in entity)),
        "dist/entity/masked_pred": float(sum(c for c, masked in zip(entity, invalid) if masked)),
    }
    for task in ("intent", "command"):
        if f"dist/{task}/pred" in counts:
            pred, gold = counts[f"dist/{task}/pred"], counts[f"dist/{task}/gold"]
            scalars[f"dist/{task}/max_share"] = max(pred) / max(sum(pred), 1)
            scalars[f"dist/{task}/gold_max_share"] = max(gold) / max(sum(gold), 1)
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
