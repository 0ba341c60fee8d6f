"""Health signals for the write-up's monitor points, and the collapse verdict.

Every run ends with one of three **outcomes** (`health/outcome`), each with its evidence:

- **collapsed** means what the write-up saw: training *ended* in a broken or degenerate model.
  1. At the first step whose loss or gradient norm is non-finite (checked every step; under fp16 an
     overflowing gradient that the GradScaler skips is not a collapse), or
  2. when its predictions are degenerate at the end (the last dev evaluation predicts every entity `O`
     while dev gold has entities, or one intent (or one command) for every dev sentence while dev gold
     has at least two; or a degenerate train phase, below, is still going) *and* there is evidence that
     something broke: the run had learned past that condition before the final phase began (a dev
     evaluation without it, or an earlier episode of it that recovered: it fell back), or its loss is
     rising over the final phase, or flat over a phase longer than any healthy run's initial phase
     measured (`PLATEAU_WINDOWS` windows: 200 logged steps at the default window).
  Its collapse step is the start of that final phase (or, without one, the step of the first dev
  evaluation of the final degenerate streak).
- **not learned yet**: the predictions are degenerate at the end, in the phase the run started in (it
  never got past the condition), and the loss is falling, or flat over a phase shorter than that: the
  budget ended before the run left its initial majority-class phase. The evidence says since when, and
  the loss trend over the phase; the remedy is to train longer. Not a collapse: no alert,
  `health/collapsed` false.
- **healthy**: neither.

Why a short flat stretch is not evidence of a collapse: on imbalanced data a healthy configuration
stopped early can sit on a plateau inside its initial phase that full-length runs of it leave; a run
cannot tell a plateau it is about to leave from one it never will until the plateau outlasts every
initial phase seen in healthy runs.

*The loss trend* over the final degenerate phase (the trailing logged steps on which a degenerate
condition holds; the last `2 * window` logged steps for a condition seen on dev only) compares the
losses of its first and second half with a Mann-Whitney U test: *falling* or *rising* at p < 0.01 with
at least a medium effect (Vargha-Delaney A >= 0.64 for the chance that a loss of the one half exceeds
one of the other). Rank-based, so a few extreme losses do not decide it; the effect size keeps a long
phase's many steps from making a negligible drift significant. With fewer than `window` losses the
trend is unknown (not rising). Nothing in the rule is tuned to a dataset: it compares the run's losses
with their own spread. `bench/outcomes.py` measures it on both embedded datasets at short budgets (its
block, "A short healthy run", is at the end of docs/verdict.md).

A run that recovers is not collapsed. On imbalanced data a healthy model predicts the majority
intent and all `O` for a few dozen steps before it learns anything else; such a phase is an
**episode**: a degenerate-prediction condition that holds on at least `window` consecutive logged
train steps (entities all `O` while the batch has gold entities; one intent or one command for the
whole batch while its gold has two or more). Every episode is kept in the summary
(`health/episodes`: kind, first step, last step, recovered), so the early majority-class phase stays
visible without being called a collapse. Every collapse reason names its evidence.

Every logged step the monitor turns the step's scalars into `health/*` flags (1.0 raised, 0.0 not):

| flag                        | raised when                                               | source            |
|-----------------------------|-----------------------------------------------------------|-------------------|
| loss_nonfinite              | loss NaN / inf                                            | write-up          |
| loss_high                   | total loss > 5 ("not learning")                           | write-up          |
| loss_drop_to_zero           | total loss < 1e-3 after a running mean above 0.1          | write-up          |
| pred_non_O_zero / _all      | no token / every token predicted non-O (gold has both)    | write-up          |
| pred_non_O_off_gold         | pred_non_O below half or above twice the batch's gold     | relative to data  |
| entity_single_label         | entities only O or only one label                         | write-up          |
| intent_dominant / command_dominant | the predicted majority share exceeds the batch's gold majority share by more than half the room left above it (`pred > gold + (1 - gold) / 2`) | relative to data |
| degenerate                  | an episode condition holds on this step                   | this repo         |
| grad_explode / grad_vanish  | grad norm > 10 (or non-finite) / < 1e-4                   | write-up          |
| clip_every_step             | clipped on every step of the last `window` steps          | write-up          |
| pred_non_O_out_of_band      | pred_non_O outside 15-35%                                 | write-up's band   |
| intent_out_of_band          | one intent takes more than 15% of the batch               | write-up's band   |

The tasks are named (`HealthMonitor.token_task`, `sentence_tasks`): this repo's are `entity`, `intent`
and `command`; `nlu_collapse.toolkit` judges any loop's own (its token task's flags keep the names above,
`entity_single_label` becomes `<task>_single_label`).

The two `*_out_of_band` flags are the write-up's "healthy" bands (pred_non_O 15-35%, intents 5-15%
per class): properties of its data, not of health (another dataset has another share of entity tokens
and another number of intents), so they are logged but not counted in `health/problems`.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field

from nlu_collapse.telemetry import keys

LOSS_HIGH = 5.0
GRAD_EXPLODE, GRAD_VANISH = 10.0, 1e-4
WRITEUP_PRED_NON_O_BAND = (0.15, 0.35)
WRITEUP_INTENT_MAX_SHARE = 0.15
HEALTHY, COLLAPSED, NOT_LEARNED = "healthy", "collapsed", "not learned yet"  # the outcomes
TREND_P, TREND_EFFECT = 0.01, 0.64  # "still falling": Mann-Whitney p and Vargha-Delaney A (a medium effect)
PHASE_LOSSES_KEPT = 4096  # the degenerate phase's most recent losses the trend is measured on
# A flat loss through a degenerate phase is a collapse once the phase has lasted this many windows
# (200 logged steps at the default window): longer than the initial phase of any healthy run measured
# (28-47 steps on test-made imbalanced data, 64-75 on the wild data, up to ~200 on a real slot-filling set).
PLATEAU_WINDOWS = 10


def all_outside(task: str) -> str:
    """Episode kind: every prediction of token task `task` is the outside label O (`entity_all_O`)."""
    return f"{task}_all_O"


def one_class(task: str) -> str:
    """Episode kind: one class of sentence task `task` for every sentence (`one_intent`)."""
    return f"one_{task}"


# Episode kinds: the degenerate-prediction conditions a collapse is made of (this repo's tasks).
ALL_O, ONE_INTENT, ONE_COMMAND = all_outside("entity"), one_class("intent"), one_class("command")
NOT_COUNTED = ("pred_non_O_out_of_band", "intent_out_of_band", "degenerate")


def _keep_last(values: list[float], value: float, most: int) -> None:
    """Append in place, keeping the last `most` values (no copy on the per-step path)."""
    values.append(value)
    if len(values) > most:
        del values[:len(values) - most]


def dominant(pred_share: float, gold_share: float) -> bool:
    """The predicted majority class covers far more of the batch than the gold majority class does:
    more than half of the room left above the gold share. A 90%-one-intent batch predicted exactly
    is not dominant; 100% predicted on a 73% batch is."""
    return pred_share > gold_share + (1.0 - gold_share) / 2


@dataclass
class _Streak:
    """Consecutive logged steps a condition has held: first and last step."""
    first: int | None = None
    last: int | None = None
    length: int = 0


@dataclass
class HealthMonitor:
    """The flags, episodes and outcome of one run (see the module docstring). The tasks it judges are
    named: one token task with an outside label O (this repo's `entity`; None for none) and any number
    of sentence tasks (`intent`, `command`); each is judged on the logged steps whose scalars have it."""
    window: int = 20
    token_task: str | None = "entity"
    sentence_tasks: tuple[str, ...] = keys.SENTENCE_TASKS
    collapse_step: int | None = None
    first_nonfinite_step: int | None = None
    reasons: list[str] = field(default_factory=list)
    loss_mean: float | None = None
    streaks: dict[str, _Streak] = field(default_factory=dict)
    episodes: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)  # each dev evaluation's degenerate evidence
    recent_losses: list[float] = field(default_factory=list)  # the last 2 * window finite logged losses
    phase_losses: list[float] = field(default_factory=list)  # finite losses of the trailing degenerate stretch
    not_learned: list[str] = field(default_factory=list)  # evidence of `not learned yet` (see the docstring)
    _kinds: set = field(default_factory=set)

    @property
    def collapsed(self) -> bool:
        return self.collapse_step is not None

    @property
    def outcome(self) -> str:
        return COLLAPSED if self.collapsed else NOT_LEARNED if self.not_learned else HEALTHY

    def _collapse(self, kind: str, reason: str, step: int) -> None:
        """Record a collapse reason; each kind (e.g. non-finite loss) keeps its first evidence only."""
        if kind in self._kinds:
            return
        self._kinds.add(kind)
        self.reasons.append(reason)
        if self.collapse_step is None or step < self.collapse_step:
            self.collapse_step = step

    # --- every step
    def check_finite(self, step: int, loss: float, norm: float, scaled: bool = False) -> None:
        """Every step, logged or not: a non-finite loss or gradient norm is a collapse at once.
        Under fp16's GradScaler an inf/NaN gradient with a finite loss is an overflow that the scaler
        skips (and answers by lowering the scale), not a collapse."""
        if not math.isfinite(loss):
            self._collapse("loss", f"step {step}: non-finite loss ({loss})", step)
            if self.first_nonfinite_step is None:
                self.first_nonfinite_step = step
        if not math.isfinite(norm) and not (scaled and math.isfinite(loss)):
            self._collapse("grad", f"step {step}: non-finite gradient norm ({norm})", step)
            if self.first_nonfinite_step is None:
                self.first_nonfinite_step = step

    # --- every logged step
    def update(self, step: int, scalars: dict[str, float]) -> dict[str, float]:
        """Flags for one logged step; `scalars` holds the step's loss/, grad/ and dist/ scalars."""
        loss, norm = scalars[keys.LOSS_TOTAL], scalars[keys.GRAD_NORM]
        flags = {
            "loss_nonfinite": not math.isfinite(loss),
            "loss_high": math.isfinite(loss) and loss > LOSS_HIGH,
            "loss_drop_to_zero": (math.isfinite(loss) and loss < 1e-3
                                  and self.loss_mean is not None and self.loss_mean > 0.1),
        }
        conditions = {}
        token = self.token_task
        if token is not None and keys.token_dist(token, keys.PRED_NON_O) in scalars:
            non_o = scalars[keys.token_dist(token, keys.PRED_NON_O)]
            gold_non_o = scalars[keys.token_dist(token, keys.GOLD_NON_O)]
            flags.update({
                "pred_non_O_zero": non_o == 0.0 and gold_non_o > 0.0,
                "pred_non_O_all": non_o == 1.0 and gold_non_o < 1.0,
                "pred_non_O_off_gold": not gold_non_o / 2 <= non_o <= 2 * gold_non_o,
                "pred_non_O_out_of_band": not WRITEUP_PRED_NON_O_BAND[0] <= non_o <= WRITEUP_PRED_NON_O_BAND[1],
                f"{token}_single_label": scalars[keys.n_labels_pred(token)] <= 1,
            })
            conditions[all_outside(token)] = flags["pred_non_O_zero"]
        if keys.max_share("intent") in scalars:
            flags["intent_out_of_band"] = scalars[keys.max_share("intent")] > WRITEUP_INTENT_MAX_SHARE
        flags["grad_explode"] = not math.isfinite(norm) or norm > GRAD_EXPLODE
        flags["grad_vanish"] = math.isfinite(norm) and norm < GRAD_VANISH
        for task in self.sentence_tasks:
            if keys.max_share(task) in scalars:
                pred, gold = scalars[keys.max_share(task)], scalars[keys.gold_max_share(task)]
                flags[f"{task}_dominant"] = dominant(pred, gold)
                conditions[one_class(task)] = pred == 1.0 and gold < 1.0
        flags["degenerate"] = any(conditions.values())
        clipped = self._streak("clipped", scalars.get(keys.GRAD_CLIPPED, 0.0) > 0, step)
        flags["clip_every_step"] = clipped.length >= self.window
        if math.isfinite(loss):
            self.loss_mean = loss if self.loss_mean is None else 0.9 * self.loss_mean + 0.1 * loss
            _keep_last(self.recent_losses, loss, 2 * self.window)
        for kind, holds in conditions.items():
            self._streak(kind, holds, step)
        if not flags["degenerate"]:
            self.phase_losses.clear()
        elif math.isfinite(loss):
            _keep_last(self.phase_losses, loss, PHASE_LOSSES_KEPT)

        out = {keys.health(name): float(raised) for name, raised in flags.items()}
        out[keys.PROBLEMS] = float(sum(raised for name, raised in flags.items() if name not in NOT_COUNTED))
        out[keys.COLLAPSED] = float(self.collapsed)
        return out

    def _streak(self, name: str, holds: bool, step: int) -> _Streak:
        streak = self.streaks.setdefault(name, _Streak())
        if holds:
            streak.first = step if streak.length == 0 else streak.first
            streak.last, streak.length = step, streak.length + 1
        else:
            self._close_episode(name, streak, recovered=True)
            self.streaks[name] = _Streak()
        return self.streaks[name]

    def _close_episode(self, kind: str, streak: _Streak, recovered: bool) -> None:
        if kind != "clipped" and streak.length >= self.window:
            self.episodes.append({"kind": kind, "first_step": streak.first, "last_step": streak.last,
                                  "recovered": recovered})

    def open_episodes(self) -> list[str]:
        """Kinds whose condition has held for at least `window` logged steps up to now."""
        return [kind for kind, s in self.streaks.items() if kind != "clipped" and s.length >= self.window]

    # --- every dev evaluation
    def check_eval(self, epoch: int, step: int, evidence: dict) -> list[str]:
        """Record one dev evaluation's degenerate conditions (`eval_evidence`); returns the texts of
        those the previous evaluation did not have (worth a warning)."""
        found = {kind: text for kind, text in evidence.items() if text}
        before = self.evals[-1]["degenerate"] if self.evals else {}
        self.evals.append({"epoch": epoch, "step": step, "degenerate": found})
        return [f"dev epoch {epoch} (step {step}): {text}" for kind, text in found.items() if kind not in before]

    # --- once, when training has ended
    def finalize(self) -> None:
        """Settle the prediction part of the verdict: only what still holds at the end counts."""
        if self.evals:
            last = self.evals[-1]
            for kind, text in last["degenerate"].items():
                onset = last["step"]
                for earlier in reversed(self.evals):  # the first evaluation of the final degenerate streak
                    if kind not in earlier["degenerate"]:
                        break
                    onset = earlier["step"]
                episode = self.streaks.get(kind)
                if episode and episode.length >= self.window:
                    onset = min(onset, episode.first)
                self._judge(kind, f"dev {kind}", f"dev epoch {last['epoch']} (step {last['step']}): {text}", onset)
        for kind in self.open_episodes():
            streak = self.streaks[kind]
            self._judge(kind, kind, f"steps {streak.first}-{streak.last}, to the end of training: "
                        f"{self.episode_text(kind)}", streak.first)
            self._close_episode(kind, streak, recovered=False)
            self.streaks[kind] = _Streak()

    def episode_text(self, kind: str) -> str:
        """What an episode of `kind` is, in words."""
        if self.token_task is not None and kind == all_outside(self.token_task):
            return f"{self.token_task} predictions all O on every train batch whose gold has other labels"
        task = kind.removeprefix("one_")
        return f"one {task} for every sentence of every train batch"

    def _judge(self, kind: str, reason_kind: str, text: str, onset: int) -> None:
        """A degenerate condition at the end of training: collapsed, or not learned yet (see the docstring)."""
        learned = self._learned_before(kind, onset)
        on_train = bool(self.streaks.get(kind)) and self.streaks[kind].length > 0
        trend, evidence = self.loss_trend(self.phase_losses if on_train else self.recent_losses)
        phase = len(self.phase_losses if on_train else self.recent_losses)
        long_plateau = trend == "flat" and phase >= PLATEAU_WINDOWS * self.window
        if learned or trend == "rising" or long_plateau:
            why = learned or (f"its loss is rising ({evidence})" if trend == "rising" else
                              f"its loss has stopped improving over {phase} logged steps ({evidence})")
            self._collapse(reason_kind, f"{text}; {why}", onset)
        elif not any(line.startswith(text) for line in self.not_learned):
            self.not_learned.append(f"{text}; the run never got past it (the phase it started in, since step "
                                    f"{onset}; loss {trend}: {evidence}): train longer")

    def _learned_before(self, kind: str, onset: int) -> str:
        """How the run had got past `kind` before `onset` (it fell back), or "" if it never had."""
        for episode in self.episodes:
            if episode["kind"] == kind and episode["recovered"] and episode["last_step"] < onset:
                return (f"it fell back: an earlier episode of it (steps {episode['first_step']}-"
                        f"{episode['last_step']}) had recovered")
        for evaluation in self.evals:
            if evaluation["step"] < onset and kind not in evaluation["degenerate"]:
                return f"it fell back: dev epoch {evaluation['epoch']} (step {evaluation['step']}) was free of it"
        return ""

    def loss_trend(self, losses: list[float]) -> tuple[str, str]:
        """(falling, rising, flat or unknown, the evidence) of `losses`: see the module docstring."""
        if len(losses) < self.window:
            return "unknown", f"only {len(losses)} logged steps with a finite loss"
        from scipy.stats import mannwhitneyu  # at the end of training only: its import is not free

        half = len(losses) // 2
        first, second = losses[:half], losses[-half:]
        test = mannwhitneyu(first, second, alternative="two-sided")
        effect = test.statistic / (half * half)  # A: the chance that a first-half loss exceeds a second-half one
        text = (f"median {statistics.median(first):.3f} then {statistics.median(second):.3f} over "
                f"{2 * half} logged steps, A = {effect:.2f}, p = {test.pvalue:.2g}")
        if test.pvalue < TREND_P and max(effect, 1 - effect) >= TREND_EFFECT:
            return ("falling" if effect > 0.5 else "rising"), text
        return "flat", text

    def verdict(self) -> dict:
        episodes = self.episodes + [{"kind": kind, "first_step": self.streaks[kind].first,
                                     "last_step": self.streaks[kind].last, "recovered": False}
                                    for kind in self.open_episodes()]  # still going (a crash, or before finalize)
        return {keys.OUTCOME: self.outcome, keys.OUTCOME_EVIDENCE: list(self.not_learned),
                keys.COLLAPSED: self.collapsed, keys.COLLAPSE_STEP: self.collapse_step,
                keys.COLLAPSE_REASONS: list(self.reasons), keys.FIRST_NONFINITE_STEP: self.first_nonfinite_step,
                keys.EPISODES: episodes}

    def state_dict(self) -> dict:
        return {"collapse_step": self.collapse_step, "first_nonfinite_step": self.first_nonfinite_step,
                "reasons": list(self.reasons), "reason_kinds": sorted(self._kinds), "loss_mean": self.loss_mean,
                "streaks": {name: (s.first, s.last, s.length) for name, s in self.streaks.items()},
                "episodes": [dict(e) for e in self.episodes], "evals": [dict(e) for e in self.evals],
                "recent_losses": list(self.recent_losses), "phase_losses": list(self.phase_losses),
                "not_learned": list(self.not_learned)}

    def load_state_dict(self, state: dict) -> None:
        self.collapse_step, self.first_nonfinite_step = state["collapse_step"], state["first_nonfinite_step"]
        self.reasons, self.loss_mean = list(state["reasons"]), state["loss_mean"]
        self._kinds = set(state["reason_kinds"])
        self.streaks = {name: _Streak(*values) for name, values in state["streaks"].items()}
        self.episodes = [dict(e) for e in state["episodes"]]
        self.evals = [dict(e) for e in state["evals"]]
        self.recent_losses = list(state.get("recent_losses", []))  # absent in checkpoints from before outcomes
        self.phase_losses = list(state.get("phase_losses", []))
        self.not_learned = list(state.get("not_learned", []))


def eval_evidence(gold_tags: list[list[str]], pred_tags: list[list[str]], gold_intents: list[str],
                  pred_intents: list[str], gold_commands: list[str] | None = None,
                  pred_commands: list[str] | None = None) -> dict[str, str | None]:
    """Which degenerate conditions one evaluation of this repo's tasks meets (`degenerate_evidence`)."""
    sentence = {"intent": (gold_intents, pred_intents)}
    if gold_commands is not None and pred_commands is not None:
        sentence["command"] = (gold_commands, pred_commands)
    return degenerate_evidence({"entity": (gold_tags, pred_tags)}, sentence)


def degenerate_evidence(token: dict[str, tuple[list[list[str]], list[list[str]]]],
                        sentence: dict[str, tuple[list[str], list[str]]]) -> dict[str, str | None]:
    """Which degenerate conditions one evaluation's predictions meet, each as a sentence that names its
    evidence (None where the condition does not hold). `token`: task -> (gold rows, predicted rows) of
    label names, the outside label spelled O; `sentence`: task -> (gold labels, predicted labels)."""
    evidence = {}
    for task, (gold, pred) in token.items():
        gold_non_o = _non_o_share(gold)
        evidence[all_outside(task)] = (f"100% of {task} predictions O (gold {gold_non_o:.0%} non-O)"
                                       if gold_non_o > 0 and _non_o_share(pred) == 0 else None)
    for task, (gold, pred) in sentence.items():
        evidence[one_class(task)] = _one_class(task, gold, pred)
    return evidence


def _non_o_share(tags: list[list[str]]) -> float:
    n = sum(len(row) for row in tags)
    return sum(tag != "O" for row in tags for tag in row) / n if n else 0.0


def _one_class(task: str, gold: list[str], pred: list[str]) -> str | None:
    gold_counts = Counter(gold)
    if len(set(pred)) != 1 or len(gold_counts) < 2:
        return None
    label, share = gold_counts.most_common(1)[0][0], gold_counts.most_common(1)[0][1] / len(gold)
    return (f"one {task} ({pred[0]}) for all {len(pred)} sentences "
            f"(gold: {len(gold_counts)} {task}s, largest {label} {share:.0%})")
