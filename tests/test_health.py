"""The collapse verdict: hand-built step sequences and evaluations, then genuine runs on imbalanced data."""
import math
from collections import Counter
from pathlib import Path

import pytest

from nlu_collapse import train
from nlu_collapse.data import load_dataset
from nlu_collapse.telemetry.health import HealthMonitor, dominant, eval_evidence
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


def test_the_same_phase_lasting_to_the_end_is_a_collapse_dated_from_its_start():
    monitor = HealthMonitor(window=20)
    for step in range(1, 11):
        monitor.update(step, scalars())
    for step in range(11, 201):
        monitor.update(step, MAJORITY_PHASE)
    monitor.check_eval(0, 100, degenerate_eval())
    monitor.check_eval(1, 200, degenerate_eval())
    monitor.finalize()
    verdict = monitor.verdict()
    assert verdict["health/collapsed"] is True and verdict["health/collapse_step"] == 11
    assert verdict["health/first_nonfinite_step"] is None
    reasons = verdict["health/collapse_reasons"]
    assert "dev epoch 1 (step 200): 100% of entity predictions O (gold 25% non-O)" in reasons
    assert "dev epoch 1 (step 200): one intent (a) for all 2 sentences (gold: 2 intents, largest a 50%)" in reasons
    assert any(r.startswith("steps 11-200, to the end of training: ") for r in reasons)
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
