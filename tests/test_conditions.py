"""The claims' conditions tables on test-made runs whose interaction is known: the new lambdas raise intent F1 by
0.1 at warm-up 0.0 and 0.1 and by nothing at 0.2, plus a seed noise that cancels in the mean."""
import pytest

from nlu_collapse.analysis.conditions import (
    CLAIMS,
    HOLDS,
    NOT_DETECTABLE,
    OPPOSITE,
    TOO_FEW,
    build_page,
    classify,
    conditions_table,
    verdict_line,
)
from nlu_collapse.analysis.records import RecordedRun
from nlu_collapse.analysis.report import TEST_ENTITY_F1, TEST_INTENT_F1, paired_deltas
from nlu_collapse.analysis.stats import fmt_interval, paired_interval

LAMBDAS = next(c for c in CLAIMS if c.factor == "lambdas")
NOISE = [0.01, -0.01, 0.005, -0.005, 0.0]  # per seed, on the new-lambdas runs: deltas = effect + NOISE


def run(lambdas, warmup, seed, effect):
    factors = {"mask_value": "-1e9", "gamma": 2.0, "lambdas": lambdas, "loss_impl": "dense", "loss_level": None,
               "data": "synthetic", "warmup_ratio": warmup, "entity_warmup": "preset", "epochs": 5,
               "unit_class_weights": False}
    intent = 0.5 + 0.02 * seed + warmup  # the seed and the warm-up move both arms alike
    entity = 0.6 + 0.01 * seed
    if lambdas == "new":
        intent += effect[warmup] + NOISE[seed]
        entity -= 0.02 + NOISE[seed] / 2
    return RecordedRun(run_id=f"{lambdas}-{warmup}-{seed}", status="finished", factors=factors, seed=seed,
                       summary={TEST_INTENT_F1: intent, TEST_ENTITY_F1: entity})


def sweep(effect, seeds=range(5)):
    return [run(lam, w, s, effect) for lam in ("old", "new") for w in effect for s in seeds]


BUILT_IN = {0.0: 0.1, 0.1: 0.1, 0.2: 0.0}


def test_each_condition_has_the_built_in_effect_and_its_interval():
    rows = {row["condition"]: row for row in conditions_table(sweep(BUILT_IN), LAMBDAS)}
    assert list(rows) == ["warmup_ratio=0", "warmup_ratio=0.1", "warmup_ratio=0.2"]
    for warmup, name in zip(BUILT_IN, rows):
        expected = paired_interval([BUILT_IN[warmup] + n for n in NOISE])
        assert rows[name]["_deltas"]["intent F1"] == pytest.approx(expected)
        assert rows[name]["lambdas new - old: intent F1"] == fmt_interval(*expected[:3])
        assert rows[name]["pairs"] == 5
    assert rows["warmup_ratio=0"]["_deltas"]["intent F1"][0] == pytest.approx(0.1)
    assert rows["warmup_ratio=0.2"]["_deltas"]["intent F1"][0] == pytest.approx(0.0, abs=1e-12)
    assert [r["verdict"] for r in rows.values()] == [HOLDS, HOLDS, NOT_DETECTABLE]
    low, high = rows["warmup_ratio=0.1"]["_deltas"]["entity F1"][1:3]
    assert low < -0.02 < high < 0  # entity F1 falls by 0.02 everywhere: shown, not the claim's metric


def test_verdict_line_names_the_conditions():
    line = verdict_line(LAMBDAS, conditions_table(sweep(BUILT_IN), LAMBDAS))
    assert line == ("lambdas new - old, intent F1: holds at warmup_ratio=0 and warmup_ratio=0.1 (intervals exclude 0, "
                    "claimed sign); not detectable at warmup_ratio=0.2 (intervals include 0).")


def test_an_effect_of_the_other_sign_is_opposite_not_holds():
    line = verdict_line(LAMBDAS, conditions_table(sweep({0.0: 0.1, 0.2: -0.1}), LAMBDAS))
    assert line == ("lambdas new - old, intent F1: holds at warmup_ratio=0 (intervals exclude 0, claimed sign); "
                    "opposite at warmup_ratio=0.2 (intervals exclude 0, other sign).")


@pytest.mark.parametrize("seeds, verdict", [(range(2), NOT_DETECTABLE), (range(1), TOO_FEW)])
def test_too_few_seeds_never_hold(seeds, verdict):
    """Two seeds: a +0.1 effect with +-0.01 noise has a t-interval (1 df) that spans 0; one seed has none."""
    rows = conditions_table(sweep({0.0: 0.1}, seeds), LAMBDAS)
    assert [r["verdict"] for r in rows] == [verdict]
    assert "holds" not in verdict_line(LAMBDAS, rows)
    assert rows[0]["_deltas"]["intent F1"][0] == pytest.approx(0.1 + sum(NOISE[s] for s in seeds) / len(seeds))


def test_classify_uses_the_interval_and_the_claimed_sign():
    assert classify((0.1, 0.05, 0.15, 3), +1) == HOLDS
    assert classify((0.1, 0.05, 0.15, 3), -1) == OPPOSITE
    assert classify((0.1, -0.01, 0.21, 3), +1) == NOT_DETECTABLE
    assert classify((0.1, float("nan"), float("nan"), 1), +1) == TOO_FEW


def test_report_pairs_never_cross_a_knob():
    """report.paired_deltas over runs that vary warm-up pairs each seed within its warm-up: 3 x 5 pairs."""
    runs = sweep(BUILT_IN)
    deltas = paired_deltas(runs, "lambdas", "new", "old", TEST_INTENT_F1, ["lambdas"])
    assert sorted(deltas) == pytest.approx(sorted(BUILT_IN[w] + n for w in BUILT_IN for n in NOISE))


def test_page_has_a_table_per_claim_and_names_the_untested_ones():
    page = build_page([("claims-synthetic", sweep(BUILT_IN))], "# header\n")
    assert page.startswith("# header\n") and "## claims-synthetic: synthetic\n\n30 finished runs counted" in page
    assert "**Verdict**: lambdas new - old, intent F1: holds at warmup_ratio=0 and warmup_ratio=0.1" in page
    assert "| warmup_ratio=0.2 | 5 |" in page
    assert "Not tested by these runs (gamma takes 2); its conditions sweep: sweeps/claims-gamma.yaml" in page
    assert "Not tested by these runs (mask_value takes -1e9); its conditions sweep: sweeps/mechanism.yaml" in page
