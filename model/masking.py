"""Masking of invalid entity labels (I- tags that never occur in train).

`--mask_value` chooses what the masked logits are set to:
  -inf       the original hard mask, a genuine `masked_fill(mask, float('-inf'))`
  -1e9       the write-up's soft mask (any float is accepted)
  finfo_min  the most negative finite value of the logits' dtype (safe in fp16, bf16, fp32)
  none       no masking: the model may predict invalid labels

The same function is applied in training and evaluation, before the loss and before argmax.
Under float16 a finite value beyond +-65504 cannot be represented (torch raises an overflow error);
config.py refuses that combination of flags before a run starts.
"""
from __future__ import annotations

import torch

MaskValue = float | str | None  # a float, "finfo_min", or None for no masking


def apply_mask(logits: torch.Tensor, invalid: torch.Tensor, mask_value: MaskValue) -> torch.Tensor:
    """Set the logits of invalid labels to `mask_value`.

    Args:
        logits: (..., C) entity logits.
        invalid: (C,) bool, True for labels to suppress.
        mask_value: a float (-inf included), "finfo_min", or None (config.parse_mask_value reads the flag).
    """
    if mask_value is None:
        return logits
    if mask_value == "finfo_min":
        return logits.masked_fill(invalid, torch.finfo(logits.dtype).min)
    return logits.masked_fill(invalid, mask_value)
