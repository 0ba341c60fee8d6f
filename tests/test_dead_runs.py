"""Dead runs stop: a run whose parameters are non-finite after a step (and whose every head outputs NaN)
cannot change any more, so it is scored once and ends as finished; the report's numbers are the same
as when it trains on (--stop_dead_runs=False), and its curves carry the last state, marked."""
from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nlu_collapse import train  # noqa: E402
from nlu_collapse.analysis import plots  # noqa: E402
from nlu_collapse.analysis.records import load_local  # noqa: E402
from nlu_collapse.analysis.report import build_report  # noqa: E402
from nlu_collapse.config import parse_config  # noqa: E402
from nlu_collapse.runfolder import SweepFolder  # noqa: E402
from nlu_collapse.telemetry import keys  # noqa: E402
from nlu_collapse.telemetry.record import read_history  # noqa: E402
from tests.datasets import write_imbalanced  # noqa: E402
from tests.scripts import local  # noqa: E402

SWEEP = """\
program: train.py
method: grid
metric: {{name: val/entity_f1, goal: maximize}}
command: ["${{env}}", "${{interpreter}}", "${{program}}", "${{args}}"]
parameters:
  data: {{value: {data}}}
  epochs: {{value: 3}}
  batch_size: {{value: 16}}
  wandb_mode: {{value: disabled}}
  task_grad_every: {{value: 0}}
  stop_dead_runs: {{value: {stop}}}
  mask_value: {{values: ["-inf", "-1e9"]}}
  gamma: {{values: [2, 3]}}
  seed: {{values: [0, 1]}}
"""


@pytest.fixture(scope="module")
def long_tail(tmp_path_factory) -> Path:
    """Heavy imbalance and a long tail of tags (not the embedded data): 64 train sentences, 4 steps an epoch."""
    return write_imbalanced(tmp_path_factory.mktemp("long-tail"), n_train=64, n_eval=24, n_intents=7, n_types=14)


def _sweep(tmp_path: Path, data: Path, stop: bool) -> SweepFolder:
    name = f"dead-{'stop' if stop else 'on'}"
    (tmp_path / f"{name}.yaml").write_text(SWEEP.format(data=data, stop=stop), encoding="utf-8")
    assert local.main([str(tmp_path / f"{name}.yaml"), f"--out={tmp_path}", "--workers=2"]) == 0
    return SweepFolder(tmp_path / name)


def test_the_report_is_identical_with_and_without_the_stop_and_dead_runs_stop_at_their_death(long_tail, tmp_path):
    stopped, trained_on = _sweep(tmp_path, long_tail, True), _sweep(tmp_path, long_tail, False)
    reports = [build_report(load_local(f.path), "dead runs", tmp_path / f"report-{f.name}", plots=False)
               for f in (stopped, trained_on)]
    assert reports[0] == reports[1]  # every table cell
    assert reports[0].count("| NaN | 2/2 | 0/2 | none | 1 | losses/focal.py") == 2  # the two dead cells, collapsed
    runs = {f.name: {r.run_id: r for r in load_local(f.path)} for f in (stopped, trained_on)}
    dead = [r for r in runs[stopped.name].values() if r.summary.get(keys.STOPPED_DEAD)]
    assert len(dead) == 4 and all(r.factors["mask_value"] == "-inf" for r in dead)  # dense -inf: dead at step 1
    for run in runs[stopped.name].values():
        steps = [row[keys.STEP] for row in read_history(run.history_path) if keys.LOSS_TOTAL in row]
        planned = run.summary[keys.PLANNED_STEPS]
        if run in dead:  # never trained past the step after which nothing could change
            assert run.summary[keys.DEAD_AT_STEP] == 1 == run.summary[keys.STEPS] and steps == [1] and planned == 12
            assert run.summary[keys.STATUS] == "finished" and run.summary[keys.OUTCOME] == "collapsed"
        else:
            assert keys.DEAD_AT_STEP not in run.summary and steps == list(range(1, planned + 1))
    on = [r for r in runs[trained_on.name].values() if r.summary.get(keys.DEAD_AT_STEP) is not None]
    assert len(on) == 4 and all(r.summary[keys.STEPS] == 12 and not r.summary[keys.STOPPED_DEAD] for r in on)
    for dead_run in dead:  # what a dead run reports as its last state is what the trained-on twin logged at its end
        twin = next(r for r in on if r.factors == dead_run.factors and r.seed == dead_run.seed)
        for key in keys.DEAD_STATE_KEYS:
            ours, theirs = dead_run.summary[keys.dead_state(key)], twin.summary[keys.final(key)]
            assert ours == theirs or (math.isnan(ours) and math.isnan(theirs)), key


def test_a_dead_run_alerts_and_says_why_it_stopped(long_tail, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        summary = train.main([f"--data={long_tail}", f"--output_dir={tmp_path}", "--run_id=dead", "--epochs=2",
                              "--mask_value=-inf", "--wandb_mode=disabled", "--task_grad_every=0"])
    assert "Training collapsed" in caplog.text and "parameters non-finite at step 1: stopped" in caplog.text
    assert summary[keys.DEAD_REASON] == "parameters non-finite at step 1" and summary[keys.STEPS] == 1
    assert summary[keys.dead_state(keys.entity_dist(keys.PRED_NON_O))] in (0.0, 1.0)  # argmax of NaN: one class


def _tiny_model(data: Path):
    cfg = parse_config([f"--data={data}", "--tiny_layers=1", "--tiny_hidden=32", "--tiny_heads=2"])
    parts = train.build(cfg, None, resuming=False)
    batch = train.collate(parts.encoded["train"][:8], parts.tokenizer.pad_token_id)
    return parts.model, batch


def test_dead_needs_every_head_to_output_nan_not_one_non_finite_parameter(long_tail):
    model, batch = _tiny_model(long_tail)
    null = contextlib.nullcontext
    assert not train.dead(model, batch, null)
    with torch.no_grad():
        model.intent_head.weight[0, 0] = math.nan  # one head broken, the encoder and the other heads still learn
    assert not train.dead(model, batch, null)
    with torch.no_grad():
        for parameter in model.encoder.parameters():
            parameter.fill_(math.nan)
    assert train.dead(model, batch, null)


def test_the_curves_carry_a_dead_runs_last_state_to_its_planned_end_marked(long_tail, tmp_path):
    train.main([f"--data={long_tail}", f"--output_dir={tmp_path}", "--run_id=dead", "--epochs=3",
                "--mask_value=-inf", "--wandb_mode=disabled", "--task_grad_every=0"])
    run = _recorded(tmp_path / "dead")
    fig, ax = plt.subplots()
    plots._draw_panel(ax, [run], [keys.entity_dist(keys.PRED_NON_O)], (0.1, 0.3), False)
    labels = [t.get_text() for t in ax.texts]
    assert labels == [" stopped: parameters non-finite at step 1"]
    assert ax.get_xlim()[1] == run.summary[keys.PLANNED_STEPS] > 1
    carried = [line for line in ax.lines if list(line.get_xdata()) == [1, run.summary[keys.PLANNED_STEPS]]]
    assert len(carried) == 1 and list(carried[0].get_ydata()) == [run.summary[keys.dead_state(
        keys.entity_dist(keys.PRED_NON_O))]] * 2
    logged = [line for line in ax.lines if line not in carried]
    assert all(max(line.get_xdata()) <= 1 for line in logged)  # no fabricated steps: the logged line ends at step 1
    plt.close(fig)


def _recorded(run_dir: Path):
    from nlu_collapse.analysis.records import RecordedRun
    from nlu_collapse.runfolder import RunFolder

    folder = RunFolder(run_dir)
    return RecordedRun(run_id=folder.name, status="finished", factors={}, seed=0, summary=folder.read_summary(),
                       history_path=folder.history)
