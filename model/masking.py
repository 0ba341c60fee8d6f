"""Masking of invalid entity labels (I- tags that never occur in train).

`--mask_value` chooses what the masked logits are set to:
  -inf       the original hard mask, a genuine `masked_fill(mask, float('-inf'))`
  -1e9       the write-up's soft mask (any float is accepted)
  finfo_min  the most negative finite value of the logits' dtype (safe in fp16, bf16, fp32)
  none       no masking: the model may predict invalid labels

The same function is applied in training and evaluation, before the loss and before argmax.
Under float16 a finite value beyond +-65504 cannot be represented; torch's own error for that
is an opaque overflow, so `apply_mask` raises a ValueError that names the flag instead.
"""
from __future__ import annotations

import math

import torch

MaskValue = float | str | None  # a float, "finfo_min", or None for no masking


def parse_mask_value(text: str) -> MaskValue:
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


def check_fits(mask_value: MaskValue, dtype: torch.dtype) -> None:
    if isinstance(mask_value, float) and math.isfinite(mask_value) and abs(mask_value) > torch.finfo(dtype).max:
        raise ValueError(f"--mask_value={mask_value:g} does not fit in {dtype} (largest magnitude "
                         f"{torch.finfo(dtype).max:g}); use --mask_value=finfo_min, -inf or --precision=bf16")


def apply_mask(logits: torch.Tensor, invalid: torch.Tensor, mask_value: MaskValue) -> torch.Tensor:
    """Set the logits of invalid labels to `mask_value`.

    Args:
        logits: (..., C) entity logits.
        invalid: (C,) bool, True for labels to suppress.
        mask_value: from `parse_mask_value`.
    """
    if mask_value is None:
        return logits
    if mask_value == "finfo_min":
        return logits.masked_fill(invalid, torch.finfo(logits.dtype).min)
    check_fits(mask_value, logits.dtype)
    return logits.masked_fill(invalid, mask_value)
