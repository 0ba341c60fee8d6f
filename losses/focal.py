"""Softmax focal loss (Lin et al., 2017), FL(p_t) = -s * w_t * (1 - p_t)^gamma * log(p_t), in the two
forms people write; s (`scale`) is the write-up's "alpha": one constant for every class.

- `dense`: over the whole one-hot distribution, as the original model computed it,
      loss_i = -sum_c onehot_ic * s * w_c * (1 - p_ic)^gamma * log p_ic.
  Every column is evaluated, so a single -inf logit makes onehot * log p = 0 * -inf = NaN
  in forward and backward, whatever the labels.
- `gather`: per-token cross-entropy on the gold label only,
      ce_i = -log p_i,y ;  p_t = exp(-ce_i) ;  loss_i = s * w_y * (1 - p_t)^gamma * ce_i.
  `p_t` comes from the *unweighted* CE: putting the class weight into cross_entropy would
  make p_t = p^w and barely penalise a down-weighted `O`. With -inf logits this form stays
  finite unless the gold label itself is masked.

Both forms agree wherever both are finite. Reduction: mean over non-ignored tokens; a batch
where every target is ignored gives an exact 0 that is still attached to the graph.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IMPLEMENTATIONS = ("dense", "gather")


def mean_or_zero(per_item: torch.Tensor) -> torch.Tensor:
    """Mean over the kept items; an exact 0 (still in the graph) when none is kept, never 0/0 = NaN."""
    return per_item.sum() / max(per_item.numel(), 1)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, scale: float = 0.25, gamma: float = 2.0,
               weight: torch.Tensor | None = None, impl: str = "dense", ignore_index: int = -100) -> torch.Tensor:
    """Mean softmax focal loss.

    Args:
        logits: (N, C) unnormalised scores (masked entries may be -inf).
        target: (N,) class indices, `ignore_index` for tokens without a label.
        scale: constant factor on every token's loss (the write-up's "alpha", not the paper's class-balancing alpha_t).
        gamma: focusing parameter; 0 gives (scaled and class-weighted) cross-entropy.
        weight: (C,) per-class weights, or None for 1.
        impl: "dense" or "gather" (see the module docstring).
    Returns:
        scalar tensor.
    """
    valid = target != ignore_index
    logits, target = logits[valid].float(), target[valid]  # (M, C), (M,)
    if weight is None:
        weight = logits.new_ones(logits.shape[-1])
    if impl == "dense":
        log_p = F.log_softmax(logits, dim=-1)                                  # (M, C)
        onehot = F.one_hot(target, logits.shape[-1]).to(log_p.dtype)          # (M, C)
        # loss_i = -sum_c onehot * s * w_c * (1 - p_c)^gamma * log p_c
        per_token = -(onehot * scale * weight * (1 - log_p.exp()) ** gamma * log_p).sum(-1)
    elif impl == "gather":
        ce = F.cross_entropy(logits, target, reduction="none")                 # (M,) = -log p_t, unweighted
        p_t = torch.exp(-ce)
        # loss_i = s * w_y * (1 - p_t)^gamma * ce_i
        per_token = scale * weight[target] * (1 - p_t) ** gamma * ce
    else:
        raise ValueError(f"impl={impl!r}: expected one of {', '.join(IMPLEMENTATIONS)}")
    return mean_or_zero(per_token)
