import math

from telemetry.health import HealthMonitor


def scalars(loss=1.0, norm=1.0, non_o=0.3, intent_share=0.2):
    return {"loss/total": loss, "grad/norm": norm, "dist/entity/pred_non_O": non_o,
            "dist/entity/n_labels_pred": 5.0, "dist/intent/max_share": intent_share, "grad/clipped": 0.0}


def test_nonfinite_loss_collapses_at_once():
    monitor = HealthMonitor(window=3)
    monitor.check_finite(4, math.nan, math.nan)
    assert monitor.verdict()["health/collapse_step"] == 4
    assert monitor.verdict()["health/first_nonfinite_step"] == 4
    assert "non-finite loss" in monitor.reasons


def test_fp16_scaler_overflow_with_a_finite_loss_is_not_a_collapse():
    monitor = HealthMonitor(window=3)
    monitor.check_finite(1, 0.8, math.inf, scaled=True)
    assert not monitor.collapsed
    monitor.check_finite(2, 0.8, math.inf, scaled=False)
    assert monitor.reasons == ["non-finite gradient norm"]


def test_prediction_collapse_needs_the_whole_window_and_dates_from_its_start():
    monitor = HealthMonitor(window=3)
    flags = monitor.update(1, scalars(non_o=0.0))
    assert flags["health/pred_non_O_zero"] == 1.0 and flags["health/collapsed"] == 0.0
    monitor.update(2, scalars(non_o=0.3))  # the streak breaks
    for step in (3, 4, 5):
        flags = monitor.update(step, scalars(non_o=0.0))
    assert flags["health/collapsed"] == 1.0 and monitor.collapse_step == 3
    assert monitor.reasons == ["entity predictions all O"]
    assert flags["health/pred_non_O_out_of_band"] == 1.0 and flags["health/intent_dominant"] == 0.0


def test_first_nonfinite_step_counts_a_nan_gradient_under_a_finite_loss():
    monitor = HealthMonitor(window=3)
    monitor.check_finite(1, 1.0, 2.0)
    monitor.check_finite(2, 1.0, float("inf"), scaled=True)  # an fp16 overflow the GradScaler skips
    assert monitor.first_nonfinite_step is None and not monitor.collapsed
    monitor.check_finite(3, 1.0, float("nan"))
    monitor.check_finite(4, float("nan"), float("nan"))
    assert monitor.first_nonfinite_step == 3 == monitor.collapse_step
