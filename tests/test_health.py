"""The collapse verdict: hand-built step sequences and evaluations, then genuine runs on imbalanced data."""
import json
import math
from collections import Counter
from pathlib import Path

import pytest

from nlu_collapse import train
from nlu_collapse.data import load_dataset
from nlu_collapse.telemetry.health import HealthMonitor, dominant, eval_evidence
from nlu_collapse.telemetry.record import read_history
from tests.datasets import write_imbalanced


def scalars(loss=1.0, norm=1.0, non_o=0.3, gold_non_o=0.4, intent_share=0.2, gold_intent_share=0.2):
    return {"loss/total": loss, "grad/norm": norm, "dist/entity/pred_non_O": non_o,
            "dist/entity/gold_non_O": gold_non_o, "dist/entity/n_labels_pred": 5.0,
            "dist/intent/max_share": intent_share, "dist/intent/gold_max_share": gold_intent_share,
            "grad/clipped": 0.0}


MAJORITY_PHASE = scalars(non_o=0.0, intent_share=1.0, gold_intent_share=0.7)  # all O, the majority intent


def healthy_eval():
    return eval_evidence([["B-X", "O"], ["O", "O"]], [["B-X", "O"], ["O", "O"]], ["a", "b"], ["a", "b"])


def degenerate_eval():
    return eval_evidence([["B-X", "O"], ["O", "O"]], [["O", "O"], ["O", "O"]], ["a", "b"], ["a", "a"])


def test_nonfinite_loss_at_step_1_collapses_at_once_and_names_its_evidence():
    monitor = HealthMonitor(window=3)
    monitor.check_finite(1, math.nan, math.nan)
    monitor.check_finite(2, math.nan, math.nan)  # the same kind of evidence is kept once, from its first step
    verdict = monitor.verdict()
    assert verdict["health/collapsed"] is True and verdict["health/collapse_step"] == 1
    assert verdict["health/first_nonfinite_step"] == 1
    assert verdict["health/collapse_reasons"] == ["step 1: non-finite loss (nan)", "step 1: non-finite gradient norm (nan)"]


def test_fp16_scaler_overflow_with_a_finite_loss_is_not_a_collapse():
    monitor = HealthMonitor(window=3)
    monitor.check_finite(1, 0.8, math.inf, scaled=True)
    assert not monitor.collapsed
    monitor.check_finite(2, 0.8, math.inf, scaled=False)
    assert monitor.reasons == ["step 2: non-finite gradient norm (inf)"]


def test_a_transient_majority_phase_that_recovers_is_an_episode_not_a_collapse():
    monitor = HealthMonitor(window=20)
    for step in range(1, 51):
        flags = monitor.update(step, MAJORITY_PHASE)
        assert flags["health/degenerate"] == 1.0 and flags["health/intent_dominant"] == 1.0
        assert flags["health/collapsed"] == 0.0
    for step in range(51, 201):
        monitor.update(step, scalars())
    monitor.check_eval(0, 100, healthy_eval())
    monitor.check_eval(1, 200, healthy_eval())
    monitor.finalize()
    verdict = monitor.verdict()
    assert verdict["health/collapsed"] is False and verdict["health/collapse_reasons"] == []
    assert verdict["health/episodes"] == [
        {"kind": "entity_all_O", "first_step": 1, "last_step": 50, "recovered": True},
        {"kind": "one_intent", "first_step": 1, "last_step": 50, "recovered": True}]


def _initial_phase_to_the_end(loss_at) -> dict:
    monitor = HealthMonitor(window=20)
    for step in range(1, 11):
        monitor.update(step, scalars())
    _phase(monitor, range(11, 201), loss_at)
    monitor.check_eval(0, 100, degenerate_eval())
    monitor.check_eval(1, 200, degenerate_eval())
    monitor.finalize()
    return monitor.verdict()


def test_the_initial_phase_lasting_to_the_end_with_a_flat_loss_is_not_learned_yet():
    """A run cannot tell a plateau it is about to leave from one it never will: it says what it saw."""
    verdict = _initial_phase_to_the_end(lambda step: 1.0)
    assert verdict["health/outcome"] == "not learned yet" and verdict["health/collapsed"] is False
    assert any(text.startswith("steps 11-200, to the end of training: ") and "since step 11; loss flat: median "
               "1.000 then 1.000 over 190 logged steps" in text for text in verdict["health/outcome_evidence"])


def test_the_initial_phase_lasting_to_the_end_with_a_rising_loss_is_a_collapse_dated_from_its_start():
    verdict = _initial_phase_to_the_end(lambda step: 1.0 + 0.01 * step)
    assert verdict["health/collapsed"] is True and verdict["health/collapse_step"] == 11
    assert verdict["health/first_nonfinite_step"] is None and verdict["health/outcome"] == "collapsed"
    reasons = verdict["health/collapse_reasons"]
    rising = "; its loss is rising (median 1.580 then 2.530 over 190 logged steps, A = 0.00"
    assert any(r.startswith("dev epoch 1 (step 200): 100% of entity predictions O (gold 25% non-O)" + rising)
               for r in reasons)
    assert any(r.startswith("dev epoch 1 (step 200): one intent (a) for all 2 sentences (gold: 2 intents, largest "
                            "a 50%)" + rising) for r in reasons)
    assert any(r.startswith("steps 11-200, to the end of training: ") for r in reasons)
    assert verdict["health/outcome_evidence"] == []
    assert {e["kind"]: e["recovered"] for e in verdict["health/episodes"]} == {"entity_all_O": False, "one_intent": False}


def test_a_degenerate_dev_evaluation_that_recovers_is_not_a_collapse():
    monitor = HealthMonitor(window=20)
    monitor.check_eval(0, 100, degenerate_eval())
    monitor.check_eval(1, 200, healthy_eval())
    monitor.finalize()
    assert not monitor.collapsed


def test_a_final_degenerate_dev_evaluation_collapses_from_the_first_of_its_streak():
    monitor = HealthMonitor(window=20)
    for epoch, evidence in enumerate([healthy_eval(), degenerate_eval(), degenerate_eval()]):
        monitor.check_eval(epoch, 100 * (epoch + 1), evidence)
    monitor.finalize()
    assert monitor.collapse_step == 200


def test_an_imbalanced_batch_predicted_exactly_is_not_dominant():
    monitor = HealthMonitor(window=3)
    flags = monitor.update(1, scalars(intent_share=0.9, gold_intent_share=0.9))
    assert flags["health/intent_dominant"] == 0.0 and flags["health/degenerate"] == 0.0
    assert flags["health/intent_out_of_band"] == 1.0  # the write-up's 5-15% band: a property of its data
    assert dominant(1.0, 0.73) and dominant(0.7, 0.2) and not dominant(0.5, 0.2)


def test_write_up_bands_are_flags_but_not_problems():
    monitor = HealthMonitor(window=3)
    flags = monitor.update(1, scalars(non_o=0.47, gold_non_o=0.47, intent_share=0.3, gold_intent_share=0.3))
    assert flags["health/pred_non_O_out_of_band"] == 1.0 and flags["health/pred_non_O_off_gold"] == 0.0
    assert flags["health/problems"] == 0.0
    flags = monitor.update(2, scalars(non_o=0.1, gold_non_o=0.47))
    assert flags["health/pred_non_O_off_gold"] == 1.0 and flags["health/problems"] == 1.0


def test_a_crash_during_a_long_phase_reports_it_as_not_recovered():
    monitor = HealthMonitor(window=3)
    for step in range(1, 6):
        monitor.update(step, MAJORITY_PHASE)
    episodes = monitor.verdict()["health/episodes"]  # no finalize: the run crashed
    assert {e["recovered"] for e in episodes} == {False} and not monitor.collapsed


def test_monitor_state_round_trips():
    monitor = HealthMonitor(window=3)
    for step in range(1, 5):
        monitor.update(step, MAJORITY_PHASE)
    monitor.check_finite(5, math.nan, 1.0)
    restored = HealthMonitor(window=3)
    restored.load_state_dict(monitor.state_dict())
    restored.check_finite(6, math.nan, 1.0)
    assert restored.verdict() == monitor.verdict()


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory) -> Path:
    folder = write_imbalanced(tmp_path_factory.mktemp("imbalanced"))
    train_split = load_dataset(str(folder)).splits["train"]
    top_share = Counter(ex.intent for ex in train_split).most_common(1)[0][1] / len(train_split)
    assert top_share >= 0.70  # the condition the verdict must hold under
    return folder


def _train(data, out, *flags):
    return train.main([f"--data={data}", f"--output_dir={out}", "--wandb_mode=disabled", "--threads=1",
                       "--task_grad_every=0", *flags])


@pytest.mark.parametrize("seed", [0, 1])
def test_on_imbalanced_data_healthy_configs_are_healthy_and_dense_inf_collapses_at_step_1(imbalanced, tmp_path, seed):
    """One intent at ~74%, 24 entity types down to a few spans: healthy runs pass through an early
    majority-class phase (the old 20-step rule called them collapsed) and recover."""
    episodes = []
    for level in ("None", "plain_ce"):
        summary = _train(imbalanced, tmp_path, f"--seed={seed}", f"--loss_level={level}", "--epochs=6")
        assert summary["health/collapsed"] is False, summary["health/collapse_reasons"]
        assert summary["test/intent_acc"] > 0.9
        assert all(e["recovered"] for e in summary["health/episodes"])
        episodes += summary["health/episodes"]
    assert any(e["last_step"] - e["first_step"] + 1 >= 20 for e in episodes)  # the phase the old rule flagged
    summary = _train(imbalanced, tmp_path, f"--seed={seed}", "--mask_value=-inf", "--epochs=1")
    assert summary["health/collapsed"] is True and summary["health/collapse_step"] == 1
    assert summary["health/collapse_reasons"][0] == "step 1: non-finite loss (nan)"
    assert all(reason.startswith(("step ", "steps ", "dev epoch ")) for reason in summary["health/collapse_reasons"])


def test_first_nonfinite_step_counts_a_nan_gradient_under_a_finite_loss():
    monitor = HealthMonitor(window=3)
    monitor.check_finite(1, 1.0, 2.0)
    monitor.check_finite(2, 1.0, float("inf"), scaled=True)  # an fp16 overflow the GradScaler skips
    assert monitor.first_nonfinite_step is None and not monitor.collapsed
    monitor.check_finite(3, 1.0, float("nan"))
    monitor.check_finite(4, float("nan"), float("nan"))
    assert monitor.first_nonfinite_step == 3 == monitor.collapse_step


# --- outcomes: collapsed, not learned yet, healthy (any budget, any data)
def _phase(monitor, steps, loss_at):
    for step in steps:
        monitor.update(step, {**MAJORITY_PHASE, "loss/total": loss_at(step)})


def test_a_budget_that_ends_inside_the_initial_phase_with_the_loss_falling_is_not_learned_yet():
    monitor = HealthMonitor(window=20)
    for step in range(1, 11):  # random initial predictions
        monitor.update(step, scalars(loss=2.2))
    _phase(monitor, range(11, 61), lambda step: 1.8 - 0.01 * (step - 11) + 0.05 * math.sin(step))
    monitor.check_eval(0, 60, degenerate_eval())
    monitor.finalize()
    verdict = monitor.verdict()
    assert verdict["health/outcome"] == "not learned yet" and verdict["health/collapsed"] is False
    assert verdict["health/collapse_step"] is None and verdict["health/collapse_reasons"] == []
    evidence = verdict["health/outcome_evidence"]
    assert any(text.startswith("steps 11-60, to the end of training: ") and "since step 11" in text
               and text.endswith("train longer") for text in evidence)


def test_falling_back_after_recovering_is_a_collapse_even_with_the_loss_falling():
    monitor = HealthMonitor(window=20)
    _phase(monitor, range(1, 31), lambda step: 2.0)
    for step in range(31, 101):
        monitor.update(step, scalars(loss=1.0))
    monitor.check_eval(0, 100, healthy_eval())
    _phase(monitor, range(101, 161), lambda step: 3.0 - 0.01 * (step - 101))
    monitor.check_eval(1, 160, degenerate_eval())
    monitor.finalize()
    verdict = monitor.verdict()
    assert verdict["health/outcome"] == "collapsed" and verdict["health/collapse_step"] == 101
    reasons = verdict["health/collapse_reasons"]
    assert len(reasons) == 4  # all O and one intent, each on train batches and on dev
    assert all(r.endswith("; it fell back: an earlier episode of it (steps 1-30) had recovered") for r in reasons)


def test_outcome_state_round_trips_through_a_checkpoint():
    monitor = HealthMonitor(window=4)
    _phase(monitor, range(1, 9), lambda step: 2.0 - 0.1 * step)
    restored = HealthMonitor(window=4)
    restored.load_state_dict(monitor.state_dict())
    for each in (monitor, restored):
        _phase(each, range(9, 13), lambda step: 2.0 - 0.1 * step)
        each.finalize()
    assert restored.verdict() == monitor.verdict()


def test_a_60_step_run_of_the_default_configuration_is_not_learned_yet_and_alerts_nothing(tmp_path, caplog):
    summary = _train("phone-assistant-wild", tmp_path, "--max_steps=60")
    assert summary["health/outcome"] == "not learned yet" and summary["health/collapsed"] is False
    assert summary["health/outcome_evidence"] and not any("Training collapsed" in r.message for r in caplog.records)


def test_a_short_budget_on_test_made_imbalanced_data_is_never_called_collapsed(imbalanced, tmp_path, caplog):
    for steps in (15, 30, 60):
        summary = _train(imbalanced, tmp_path, f"--max_steps={steps}", f"--run_id=short{steps}")
        assert summary["health/outcome"] in ("not learned yet", "healthy"), summary["health/collapse_reasons"]
    assert not any("Training collapsed" in r.message for r in caplog.records)


def test_a_60_step_dense_inf_run_is_collapsed_at_step_1_with_an_error_level_alert(tmp_path, caplog):
    summary = _train("phone-assistant-wild", tmp_path, "--max_steps=60", "--mask_value=-inf")
    assert summary["health/outcome"] == "collapsed" and summary["health/collapse_step"] == 1
    alerts = [r for r in caplog.records if "Training collapsed" in r.message]
    assert len(alerts) == 1 and alerts[0].levelname == "ERROR"


def test_a_run_that_learns_then_falls_into_one_class_is_collapsed_from_the_fall(imbalanced, tmp_path, monkeypatch,
                                                                                 caplog):
    """A learning-rate jump mid-run (x200 after step 60 of 100): the model had learned, then predicts
    one intent and all O."""
    real_step = train.Optimisation.step

    def step(self):
        real_step(self)
        if self.scheduler.last_epoch == 60:
            self.scheduler.base_lrs = [lr * 200 for lr in self.scheduler.base_lrs]

    monkeypatch.setattr(train.Optimisation, "step", step)
    summary = _train(imbalanced, tmp_path, "--epochs=4", "--threads=2")
    assert summary["health/outcome"] == "collapsed" and 60 < summary["health/collapse_step"] <= 100
    assert all("it fell back" in reason for reason in summary["health/collapse_reasons"])
    alerts = [r for r in caplog.records if "Training collapsed" in r.message]
    assert len(alerts) == 1 and alerts[0].levelname == "WARNING"


def test_masked_gold_tags_are_counted_and_left_out_of_the_loss(tmp_path):
    """Test sentences with an I- tag that train never has (a single-token type continued): the model
    masks it, so no model gets those tokens right; the test loss leaves them out and says how many."""
    data = write_imbalanced(tmp_path / "data", n_train=400, n_eval=100)
    labels = load_dataset(str(data)).labels
    masked_types = {tag[2:] for tag in labels.invalid_tags}
    rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    inserted = 0
    for row in rows:
        for i, tag in enumerate(row["tags"][:-1]):
            if tag.startswith("B-") and tag[2:] in masked_types and row["tags"][i + 1] == "O":
                row["tags"][i + 1] = f"I-{tag[2:]}"
                inserted += 1
                break
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert inserted >= 5
    summary = _train(data, tmp_path, "--epochs=2", "--run_id=masked")
    assert summary["test/entity/gold_masked"] == inserted
    assert [row["val/entity/gold_masked"] for row in read_history(tmp_path / "masked" / "history.jsonl")
            if "val/entity/gold_masked" in row] == [0, 0]
    assert math.isfinite(summary["test/loss"]) and summary["test/loss"] < 20  # not ~1e9 per masked token


def test_a_flat_loss_through_a_phase_longer_than_any_healthy_initial_phase_is_a_collapse():
    monitor = HealthMonitor(window=20)  # the plateau rule: 10 windows, 200 logged steps
    _phase(monitor, range(1, 261), lambda step: 1.0 + 0.05 * math.sin(step))
    monitor.finalize()
    verdict = monitor.verdict()
    assert verdict["health/outcome"] == "collapsed" and verdict["health/collapse_step"] == 1
    assert all("its loss has stopped improving over 260 logged steps" in r for r in verdict["health/collapse_reasons"])
