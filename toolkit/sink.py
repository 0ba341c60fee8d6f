"""Where the toolkit's numbers go: a callable the user hands in, else the active W&B run, else nowhere.

W&B: each step's metrics are logged without W&B's `step=` argument (so they never collide with the
loop's own `wandb.log` calls or the Trainer's), carrying the optimizer step as the `step` key; label
count vectors become histograms (one bin per label); the verdict goes to the run's summary (non-finite
numbers as text, telemetry.wandb_values); a collapse fires one alert.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import numpy as np

from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.wandb_values import to_wandb

log = logging.getLogger("nlu_collapse.toolkit")


def active_wandb_run():
    """The W&B run of this process, if the loop started one (never imports wandb itself: a loop that does
    not use W&B does not pay for its import)."""
    wandb = sys.modules.get("wandb")
    return getattr(wandb, "run", None) if wandb is not None else None


class Sink:
    """Args:
        log: `log(metrics, step)`; None: the active W&B run, if any.
    """

    def __init__(self, log: Callable[[dict, int], None] | None = None):
        self.custom = log
        self._alerted = False
        self._defined = None

    def log(self, metrics: dict, step: int) -> None:
        if self.custom is not None:
            self.custom(metrics, step)
            return
        run = active_wandb_run()
        if run is None:
            return
        import wandb

        if self._defined is not run:  # the flags' summaries are their maxima: a raised flag stays visible
            run.define_metric(keys.everything_under("health"), summary="max")
            self._defined = run
        payload = {keys.STEP: step}
        for key, value in metrics.items():
            if isinstance(value, list):  # a count vector: one bin per label
                counts = np.asarray(value, dtype=np.float64)
                value = wandb.Histogram(np_histogram=(counts, np.arange(len(counts) + 1)))
            payload[key] = value
        run.log(payload)

    def summary(self, values: dict) -> None:
        """The verdict (and the NaN's origin): the W&B run's summary, or `log(values, step=None)`."""
        if self.custom is not None:
            self.custom(values, None)
            return
        run = active_wandb_run()
        if run is not None:
            run.summary.update(to_wandb(values))

    def alert(self, title: str, text: str, error: bool = False) -> None:
        """Once per run: the log, and a W&B alert (ERROR for a non-finite collapse, WARN otherwise)."""
        if self._alerted:
            return
        self._alerted = True
        log.log(logging.ERROR if error else logging.WARNING, "%s: %s", title, text)
        run = active_wandb_run()
        if run is not None:
            import wandb

            run.alert(title=title, text=text, level=wandb.AlertLevel.ERROR if error else wandb.AlertLevel.WARN)
