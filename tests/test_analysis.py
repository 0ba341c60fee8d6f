"""The report on run records written here, with values computed by hand."""
import json
import math

import pytest

from nlu_collapse.analysis.records import load_local
from nlu_collapse.analysis.report import build_report, factor_effects, grid, paired_deltas
from nlu_collapse.analysis.stats import paired_interval

BASE = {0: 0.80, 1: 0.82, 2: 0.90}  # entity F1 of (-1e9, gamma 3, old) by seed


def entity_f1(mask, gamma, lambdas, seed):
    """-inf collapses to 0; gamma 2 adds 0.01 * seed; the new lambdas cost 0.02."""
    if mask == "-inf":
        return 0.0
    return BASE[seed] + (0.01 * seed if gamma == 2.0 else 0.0) - (0.02 if lambdas == "new" else 0.0)


def write_run(folder, rid, mask, gamma, lambdas, seed, f1, status="finished", data="phone-assistant"):
    run_dir = folder / "runs" / rid
    run_dir.mkdir(parents=True)
    config = {"mask_value": mask, "gamma": gamma, "lambdas": lambdas, "seed": seed, "loss_impl": "dense",
              "data": data}
    (run_dir / "config.json").write_text(json.dumps({"config": config, "run_id": rid, "dataset": data}))
    collapsed = mask == "-inf"
    summary = {"status": status, "test/entity_f1": f1, "test/intent_f1": 0.02 if collapsed else 0.9,
               "test/command_f1": 0.01 if collapsed else 0.8, "test/entity/pred_non_O": 0.0 if collapsed else 0.45,
               "test/entity/masked_pred": 0.0, "final/loss/total": math.nan if collapsed else 0.1 + seed / 100,
               "health/collapsed": collapsed, "health/first_nonfinite_step": 1 if collapsed else None,
               "health/episodes": episodes(collapsed, seed)}
    if collapsed and not (gamma == 3.0 and lambdas == "old" and seed == 2):  # that one ran with --forensics=off
        summary["health/nan_origin"] = {"step": 1, "op": "MulBackward0", "source": "losses/focal.py:52"}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    rows = [{"step": s, "loss/total": math.nan if collapsed else 1.0 / s, "loss/entity": 0.5, "loss/intent": 1.0,
             "grad/norm": math.nan if collapsed else 1.0, "dist/entity/pred_non_O": 0.0 if collapsed else 0.3,
             "dist/intent/max_share": 1.0 if collapsed else 0.2} for s in range(1, 6)]
    (run_dir / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def episodes(collapsed, seed):
    """A collapsed run's phase lasts to its end; healthy seeds 1 and 2 pass through a recovered one
    (onset 10 + seed, length 20 + 10 * seed); seed 0 has none."""
    if collapsed:
        return [{"kind": "one_intent", "first_step": 1, "last_step": 375, "recovered": False}]
    return [{"kind": "one_intent", "first_step": 10 + seed, "last_step": 29 + 11 * seed, "recovered": True}] if seed else []


def write_sweep(folder, data="phone-assistant", shift=0.0):
    """The 24-run grid; `shift` is added to every healthy run's entity F1."""
    planned = []
    for mask in ("-inf", "-1e9"):
        for gamma in (2.0, 3.0):
            for lambdas in ("old", "new"):
                for seed in range(3):
                    rid = f"{mask}-{gamma:g}-{lambdas}-{seed}"
                    f1 = entity_f1(mask, gamma, lambdas, seed)
                    write_run(folder, rid, mask, gamma, lambdas, seed, f1 + shift if f1 else f1, data=data)
                    planned.append({"run_id": rid, "status": "finished",
                                    "params": {"mask_value": mask, "gamma": gamma, "lambdas": lambdas, "seed": seed}})
    return planned


@pytest.fixture
def sweep_folder(tmp_path):
    planned = write_sweep(tmp_path)
    planned.append({"run_id": "never-ran", "params": {"mask_value": "-1e9", "gamma": 2.0, "lambdas": "new", "seed": 3},
                    "status": "failed"})
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": planned, "data": "phone-assistant"}))
    return tmp_path


def test_paired_interval_matches_a_hand_computation():
    mean, low, high, n = paired_interval([0.01, 0.03, 0.0])
    # mean 0.013333, sd 0.015275, t(0.975, 2) = 4.302653
    assert (n, mean) == (3, pytest.approx(0.0133333, abs=1e-6))
    assert low == pytest.approx(0.0133333 - 4.302653 * 0.0152753 / 3 ** 0.5, abs=1e-5)
    assert high == pytest.approx(0.0133333 + 4.302653 * 0.0152753 / 3 ** 0.5, abs=1e-5)


def test_missing_and_failed_runs_are_listed(sweep_folder):
    runs = load_local(sweep_folder)
    status = {r.run_id: r.status for r in runs}
    assert status["never-ran"] == "failed" and len(runs) == 25
    report = build_report(runs, "test", sweep_folder / "report", plots=False)
    assert "| never-ran | failed |" in report
    assert "24 finished, 1 not" in report


def test_before_after_table_and_nan_loss(sweep_folder):
    report = build_report(load_local(sweep_folder), "test", sweep_folder / "report", plots=False)
    # before = (-inf, 3, old): F1 0 everywhere, loss NaN; after = (-1e9, 2, new): F1 .78 .81 .90
    assert "| Entity F1 | 0.000 ± 0.000 | 0.830 ± 0.062 | 0.0 | 0.2-0.4 |" in report
    assert "| Final train loss | NaN | 0.110 ± 0.010 |" in report
    assert "| Collapse rate | 3/3 | 0/3 |" in report
    assert (sweep_folder / "report" / "before_after.csv").exists() and (sweep_folder / "report" / "grid.csv").exists()


def test_grid_cells_and_paired_effects(sweep_folder):
    runs = [r for r in load_local(sweep_folder) if r.status == "finished"]
    rows = grid(runs, ["mask_value", "gamma", "lambdas"], load_local(sweep_folder))
    cell = next(r for r in rows if (r["mask"], r["gamma"], r["lambdas"]) == ("-1e9", "3", "old"))
    assert cell["seeds (found/planned)"] == "3/3"
    assert cell["entity F1"] == "0.840 ± 0.053" and cell["collapsed"] == "0/3" and cell["first non-finite step"] == "never"
    assert next(r for r in rows if r["mask"] == "-inf")["first non-finite step"] == "1"
    # recovered episodes of seeds 1, 2: onsets 11, 12 -> 11.5; lengths 30, 40 -> 35; a collapse is not one
    assert cell["transient episodes"] == "2/3 runs, onset 11.5, length 35 (median)"
    assert next(r for r in rows if r["mask"] == "-inf")["transient episodes"] == "none"
    origins = {(r["mask"], r["gamma"], r["lambdas"]): r["origin of the first NaN"] for r in rows}
    assert origins[("-inf", "2", "new")] == "losses/focal.py:52 MulBackward0, 3/3 runs"
    assert origins[("-inf", "3", "old")] == "losses/focal.py:52 MulBackward0, 2/3 runs"
    assert origins[("-1e9", "3", "old")] == "none"
    # gamma 2 vs 3 among -1e9 runs, paired by seed and lambdas: 0.01 * seed, twice
    deltas = paired_deltas(runs, "gamma", 2.0, 3.0, "test/entity_f1", ["mask_value", "gamma", "lambdas"],
                           within={"mask_value": "-1e9"})
    assert sorted(deltas) == pytest.approx([0.0, 0.0, 0.01, 0.01, 0.02, 0.02])
    effects = factor_effects(runs, ["mask_value", "gamma", "lambdas"])
    gamma_row = next(r for r in effects if r["factor"] == "gamma" and r["among"] == "mask=-1e9")
    # mean 0.01, sd 0.008944, t(0.975, 5) = 2.570582: half-width 0.009386
    assert gamma_row["pairs"] == 6 and gamma_row["delta entity F1"] == "+0.010 [+0.001, +0.019]"
    assert "gamma=2 raises entity F1" in gamma_row["verdict"]
    lambdas_row = next(r for r in effects if r["factor"] == "lambdas" and r["among"] == "mask=-1e9")
    assert lambdas_row["delta entity F1"] == "-0.020 [-0.020, -0.020]" and "lowers entity F1" in lambdas_row["verdict"]
    inf_row = next(r for r in effects if r["factor"] == "gamma" and r["among"] == "mask=-inf")
    assert "No detectable effect" in inf_row["verdict"]
    mask_row = next(r for r in effects if r["factor"] == "mask_value")
    assert "mask=-inf collapsed 12 of 12 runs, mask=-1e9 0 of 12" in mask_row["verdict"]
    assert "raises entity F1" in mask_row["verdict"]


def test_plots_are_written(sweep_folder):
    build_report(load_local(sweep_folder), "test", sweep_folder / "report", plots=True)
    plots = sorted(p.name for p in (sweep_folder / "report" / "plots").glob("*.png"))
    assert "overview.png" in plots and len(plots) == 1 + 8


def test_runs_from_the_wandb_api_have_the_same_shape():
    from nlu_collapse.analysis.records import load_wandb

    class FakeRun:
        def __init__(self, rid, mask, state):
            self.id, self.state = rid, state
            self.config = {"mask_value": mask, "gamma": 3, "lambdas": "old", "seed": 0, "data": "phone-assistant"}
            self.summary = {"test/entity_f1": 0.0 if mask == "-inf" else 0.9, "health/collapsed": mask == "-inf"}

        def scan_history(self):
            return [{"_step": 1, "loss/total": math.nan, "grad/norm": math.nan}, {"_step": 1, "val/entity_f1": 0.0}]

    class FakeApi:
        def runs(self, path, filters):
            assert path == "team/proj" and filters == {"sweep": "abc"}
            return [FakeRun("r1", "-inf", "finished"), FakeRun("r2", "-1e9", "crashed")]

    runs = load_wandb("team/proj", "abc", api=FakeApi())
    assert [(r.run_id, r.status, r.factors["mask_value"], r.factors["gamma"]) for r in runs] == [
        ("r1", "finished", "-inf", 3.0), ("r2", "crashed", "-1e9", 3.0)]
    assert len(runs[0].history) == 1 and math.isnan(runs[0].history[0]["loss/total"])


def test_data_sweep_with_no_finished_run_is_reported_not_crashed(tmp_path):
    planned = [{"run_id": "p1", "params": {"mask_value": "-inf", "seed": 0}, "status": "pending"}]
    (tmp_path / "sweep.json").write_text(json.dumps({"data": "/x/atis", "runs": planned}))
    runs = load_local(tmp_path)
    assert runs[0].factors["data"] == "atis" and runs[0].status == "pending"
    report = build_report(runs, "t", tmp_path / "report", plots=False)
    assert "No finished run yet." in report and "| p1 | pending |" in report


def test_one_report_over_two_datasets_has_a_table_each_and_the_cross_dataset_summary(tmp_path, capsys):
    from nlu_collapse.analysis import report

    folders = [tmp_path / "ablation-a", tmp_path / "ablation-b"]
    for folder, data, shift in zip(folders, ("phone-assistant", "phone-assistant-wild"), (0.0, -0.3)):
        (folder / "sweep.json").parent.mkdir(parents=True)
        (folder / "sweep.json").write_text(json.dumps({"runs": write_sweep(folder, data, shift)}))
    text = report.main([str(folders[0]), str(folders[1]), "--no_plots"])
    assert "## Dataset: phone-assistant\n" in text and "## Dataset: phone-assistant-wild\n" in text
    assert "## Across datasets" in text and (folders[0] / "report" / "report.md").exists()
    wild = text.split("## Dataset: phone-assistant-wild")[1].split("## Across datasets")[0]
    after = (BASE[0] + 0.0 - 0.02, BASE[1] + 0.01 - 0.02, BASE[2] + 0.02 - 0.02)  # -1e9, gamma 2, new, by seed
    assert f"{sum(after) / 3 - 0.3:.3f}" in wild  # the shifted dataset's own numbers, not the other's
