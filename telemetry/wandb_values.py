"""How a run's final numbers are written to, and read back from, a W&B summary.

W&B stores a NaN or inf written into `run.summary` as null, so the key of a collapsed run's final
loss would vanish and the W&B report would show "-" where the local report shows NaN. A
non-finite value therefore goes to W&B as a string, spelled as in every JSON file of the run record
("NaN", "Infinity", "-Infinity": safeio.json_text, W&B's own spelling), with a boolean twin
`<key>_is_finite` that W&B can filter, group and plot. Keys that can go non-finite get the twin
in every run (True when finite), so a healthy run and a collapsed one have the same keys.
"""
from __future__ import annotations

import math
import numbers

from nlu_collapse.safeio import NONFINITE, nonfinite_text
from nlu_collapse.telemetry import keys

FINITE_SUFFIX = "_is_finite"
# Summary keys that a collapsed run leaves NaN or inf: they always carry the `_is_finite` twin.
NAN_PRONE = (keys.final(keys.prefix("loss")), keys.final(keys.prefix("grad")),
             keys.split_metric("test", keys.EVAL_LOSS), keys.split_metric("dev", keys.EVAL_LOSS))
# Read back too: the spelling of runs written before the record's JSON was strict.
LEGACY_TEXT = {"inf": float("inf"), "-inf": float("-inf")}
# Old runs logged the sweep metric and the flags with define_metric(summary=...): {"max": x}.
_AGGREGATES = ("max", "min", "last", "best", "mean")


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def to_wandb(values: dict) -> dict:
    """Summary values as W&B can hold them: non-finite numbers as text with a finite twin."""
    out = {}
    for key, value in values.items():
        if _is_number(value) and not math.isfinite(value):
            out[key] = nonfinite_text(value)
            out[key + FINITE_SUFFIX] = False
        else:
            out[key] = value
            if _is_number(value) and key.startswith(NAN_PRONE):
                out[key + FINITE_SUFFIX] = True
    return out


def from_wandb(summary: dict) -> dict:
    """The inverse, for readers of a W&B run: "NaN"/"Infinity"/"-Infinity" (and older runs' "inf"/"-inf")
    back to floats, and a one-key aggregate dict ({"max": x}) back to its number. The `_is_finite` twins
    are kept."""
    out = {}
    for key, value in summary.items():
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _AGGREGATES:
            value = next(iter(value.values()))
        if isinstance(value, str) and (value in NONFINITE or value in LEGACY_TEXT):
            value = float(value)
        out[key] = value
    return out
