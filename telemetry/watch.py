"""The collapse verdict, driven from one place.

A training loop calls `observe` once per optimizer step, `after_eval` once per dev evaluation and
`finish` once at the end of training; `CollapseWatch` keeps the `HealthMonitor` (health flags,
episodes, the outcome: healthy, collapsed or not learned yet), warns when a degenerate-prediction
episode opens, and alerts once, only for a collapse: at level ERROR at the first non-finite step
(naming the first NaN's origin when forensics found one), at level WARN for a prediction collapse.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.health import HEALTHY, NOT_LEARNED, HealthMonitor

log = logging.getLogger("train")

ALERT_TITLE = "Training collapsed"


class CollapseWatch:
    """Args:
        monitor: the run's HealthMonitor (restored from a checkpoint on resume).
        name: the run's name, for messages.
        alert: `alert(title, text, error)`, fired once (the tracker's alert: W&B and the log).
        origin: returns the first NaN's origin as text, or "" (forensics).
    """

    def __init__(self, monitor: HealthMonitor, name: str, alert: Callable[[str, str, bool], None],
                 origin: Callable[[], str] = lambda: ""):
        self.monitor, self.name, self._alert, self._origin = monitor, name, alert, origin

    @property
    def collapsed(self) -> bool:
        return self.monitor.collapsed

    def observe(self, step: int, metrics: dict, logged: bool, scaled: bool = False) -> None:
        """One optimizer step: the finite check on every step; on logged steps the `health/*` flags,
        added to `metrics` (which must hold the step's scalar twins). Alerts at the collapse step."""
        monitor = self.monitor
        monitor.check_finite(step, metrics[keys.LOSS_TOTAL], metrics[keys.GRAD_NORM], scaled)
        if logged:
            open_before = set(monitor.open_episodes())
            metrics.update(monitor.update(step, metrics))
            for kind in set(monitor.open_episodes()) - open_before:
                log.warning("%s: degenerate-prediction episode (%s) since step %d; a collapse only if it lasts to "
                            "the end of training", self.name, kind, monitor.streaks[kind].first)
        if monitor.collapse_step == step:  # non-finite at this step: alert once, not every step after
            self._alert(ALERT_TITLE, f"{self.name}: {self.text()}", True)

    def after_eval(self, epoch: int, step: int, evidence: dict) -> None:
        """A dev evaluation's degenerate-prediction evidence (telemetry.health.eval_evidence)."""
        for text in self.monitor.check_eval(epoch, step, evidence):
            log.warning("%s: %s", self.name, text)

    def finish(self) -> None:
        """End of training: a degenerate phase still going becomes the collapse."""
        self.monitor.finalize()
        if self.monitor.collapsed:  # once per run: a non-finite collapse has alerted already
            self._alert(ALERT_TITLE, f"{self.name}: {self.text()}", self.monitor.first_nonfinite_step is not None)

    def verdict(self) -> dict:
        """The summary's verdict keys."""
        return self.monitor.verdict()

    def text(self) -> str:
        """The outcome in one line: a collapse with every reason and its evidence, and where the first
        NaN came from; `not learned yet` with its evidence; or healthy."""
        if self.monitor.outcome == NOT_LEARNED:
            return f"{NOT_LEARNED} ({'; '.join(self.monitor.not_learned)})"
        if not self.monitor.collapsed:
            return HEALTHY
        origin = self._origin()
        return (f"collapsed at step {self.monitor.collapse_step} ({'; '.join(self.monitor.reasons)})"
                + (f": {origin}" if origin else ""))
