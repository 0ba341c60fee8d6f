"""Health signals for the write-up's monitor points, and the collapse verdict.

Every step the monitor turns the step's scalars into `health/*` flags (1.0 raised, 0.0 not):

| flag                        | monitor point (seed-fix-summary.md)                      |
|-----------------------------|----------------------------------------------------------|
| loss_nonfinite              | loss NaN / inf ("explosion")                             |
| loss_high                   | total loss > 5 ("not learning")                          |
| loss_drop_to_zero           | total loss < 1e-3 after a running mean above 0.1         |
| pred_non_O_zero / _all      | pred_non_O at 0% / 100%                                  |
| pred_non_O_out_of_band      | pred_non_O outside the healthy 15-35%                    |
| entity_single_label         | entities only O or only one label                        |
| intent_dominant / command_dominant | > 80% of the batch on one class                   |
| grad_explode / grad_vanish  | grad norm > 10 (or non-finite) / < 1e-4                  |
| clip_every_step             | clipped on every step of the last `window` steps         |

A run is *collapsed* at the first step where the loss or the gradient norm is non-finite (checked
every step), or where a prediction collapse starts that lasts `window` logged steps: entities all
O, or one intent (or command) for the whole batch. The flags are computed on logged steps. The verdict keeps the first step and every reason seen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

HEALTHY_PRED_NON_O = (0.15, 0.35)
LOSS_HIGH = 5.0
GRAD_EXPLODE, GRAD_VANISH = 10.0, 1e-4
DOMINANT_SHARE = 0.8


@dataclass
class _Streak:
    """Consecutive steps a condition has held, and the step it started."""
    length: int = 0
    start: int | None = None

    def update(self, holds: bool, step: int) -> None:
        if holds:
            self.start = step if self.length == 0 else self.start
            self.length += 1
        else:
            self.length, self.start = 0, None


@dataclass
class HealthMonitor:
    window: int = 20
    collapse_step: int | None = None
    first_nonfinite_step: int | None = None
    reasons: list[str] = field(default_factory=list)
    loss_mean: float | None = None
    streaks: dict[str, _Streak] = field(default_factory=dict)

    @property
    def collapsed(self) -> bool:
        return self.collapse_step is not None

    def _collapse(self, reason: str, step: int) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)
        if self.collapse_step is None or step < self.collapse_step:
            self.collapse_step = step

    def _streak(self, name: str, holds: bool, step: int) -> _Streak:
        streak = self.streaks.setdefault(name, _Streak())
        streak.update(holds, step)
        return streak

    def check_finite(self, step: int, loss: float, norm: float, scaled: bool = False) -> None:
        """Every step, logged or not: a non-finite loss or gradient norm is a collapse at once.
        Under fp16's GradScaler an inf/NaN gradient with a finite loss is an overflow that the scaler
        skips (and answers by lowering the scale), not a collapse."""
        bad_loss = not math.isfinite(loss)
        bad_norm = not math.isfinite(norm) and not (scaled and math.isfinite(loss))
        if bad_loss:
            self._collapse("non-finite loss", step)
        if bad_norm:
            self._collapse("non-finite gradient norm", step)
        if (bad_loss or bad_norm) and self.first_nonfinite_step is None:
            self.first_nonfinite_step = step  # a NaN gradient under a finite loss is the first one too

    def update(self, step: int, scalars: dict[str, float]) -> dict[str, float]:
        """Flags for one step; `scalars` holds the step's loss/, grad/ and dist/ scalars."""
        loss, norm = scalars["loss/total"], scalars["grad/norm"]
        non_o = scalars["dist/entity/pred_non_O"]
        flags = {
            "loss_nonfinite": not math.isfinite(loss),
            "loss_high": math.isfinite(loss) and loss > LOSS_HIGH,
            "loss_drop_to_zero": (math.isfinite(loss) and loss < 1e-3
                                  and self.loss_mean is not None and self.loss_mean > 0.1),
            "pred_non_O_zero": non_o == 0.0,
            "pred_non_O_all": non_o == 1.0,
            "pred_non_O_out_of_band": not HEALTHY_PRED_NON_O[0] <= non_o <= HEALTHY_PRED_NON_O[1],
            "entity_single_label": scalars["dist/entity/n_labels_pred"] <= 1,
            "intent_dominant": scalars["dist/intent/max_share"] > DOMINANT_SHARE,
            "grad_explode": not math.isfinite(norm) or norm > GRAD_EXPLODE,
            "grad_vanish": math.isfinite(norm) and norm < GRAD_VANISH,
        }
        if "dist/command/max_share" in scalars:
            flags["command_dominant"] = scalars["dist/command/max_share"] > DOMINANT_SHARE
        clipped = self._streak("clipped", scalars.get("grad/clipped", 0.0) > 0, step)
        flags["clip_every_step"] = clipped.length >= self.window
        if math.isfinite(loss):
            self.loss_mean = loss if self.loss_mean is None else 0.9 * self.loss_mean + 0.1 * loss

        one_class = {"entity predictions all O": non_o == 0.0,
                     "one intent for every sentence": scalars["dist/intent/max_share"] == 1.0}
        if "dist/command/max_share" in scalars:
            one_class["one command for every sentence"] = scalars["dist/command/max_share"] == 1.0
        for reason, holds in one_class.items():
            streak = self._streak(reason, holds, step)
            if streak.length >= self.window:
                self._collapse(reason, streak.start)

        out = {f"health/{name}": float(raised) for name, raised in flags.items()}
        out["health/problems"] = float(sum(raised for name, raised in flags.items() if name != "pred_non_O_out_of_band"))
        out["health/collapsed"] = float(self.collapsed)
        return out

    def verdict(self) -> dict:
        return {"health/collapsed": self.collapsed, "health/collapse_step": self.collapse_step,
                "health/collapse_reasons": list(self.reasons), "health/first_nonfinite_step": self.first_nonfinite_step}

    def state_dict(self) -> dict:
        return {"collapse_step": self.collapse_step, "first_nonfinite_step": self.first_nonfinite_step,
                "reasons": list(self.reasons), "loss_mean": self.loss_mean,
                "streaks": {name: (s.length, s.start) for name, s in self.streaks.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.collapse_step, self.first_nonfinite_step = state["collapse_step"], state["first_nonfinite_step"]
        self.reasons, self.loss_mean = list(state["reasons"]), state["loss_mean"]
        self.streaks = {name: _Streak(length, start) for name, (length, start) in state["streaks"].items()}
