"""analysis/fixes.py on known cases: each candidate change replayed alone from the checkpoint ring, judged by
the run's own verdict rules; and the ring itself (a replay without changes reproduces the run bit for bit)."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from nlu_collapse import train
from nlu_collapse.analysis import fixes
from nlu_collapse.replay import CONTROL, Run
from nlu_collapse.runfolder import RunFolder
from nlu_collapse.safeio import read_json
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.record import read_history
from tests.datasets import write_imbalanced

SHORT = ["--threads=1", "--task_grad_every=0", "--wandb_mode=disabled"]


def trained(out: Path, data: Path, run_id: str, *flags: str) -> RunFolder:
    train.main([f"--data={data}", f"--output_dir={out}", f"--run_id={run_id}", *SHORT, *flags])
    return RunFolder(out / run_id)


def outcomes(result: dict) -> dict[str, str]:
    """change -> its outcome, from the table fixes.json holds."""
    column = result["columns"].index("outcome")
    return {row[1]: row[column] for row in result["rows"]}


@pytest.fixture(scope="module")
def writeup(tmp_path_factory, small_data) -> tuple[RunFolder, dict]:
    """The write-up's configuration (dense focal loss, -inf, gamma 3, old lambdas; every other flag the
    default): dead at step 1, replayed from its initial state through the first epoch's dev evaluation."""
    folder = trained(tmp_path_factory.mktemp("writeup"), small_data, "writeup", "--mask_value=-inf", "--gamma=3",
                     "--lambdas=old")
    return folder, fixes.fixes(folder, margin=29)


def test_the_writeup_collapse_is_prevented_by_the_mask_value_and_the_loss_form_alone(writeup):
    folder, result = writeup
    assert result["onset"] == 1 and result["start_step"] == 0 and result["faithful"]
    found = outcomes(result)
    assert found["mask_value=-1e9"] == found["loss_impl=gather"] == fixes.PREVENTS
    for change in ("gamma=2", "lambdas=new (with its entity warm-up)", "lr=0.00025 (lr / 2)", "lr=5e-05 (lr / 10)",
                   "grad_clip=0.1 (a tenth of the run's)"):
        assert found[change] == fixes.NO_EFFECT, change
    assert found["skip the batch of step 1"] == fixes.DELAYS.format(2)  # the next batch meets the same -inf
    assert [row[1] for row in result["rows"][:2]] == ["mask_value=-1e9", "loss_impl=gather"]  # ranked first
    assert read_json(folder.fixes, measured=True)["rows"] == result["rows"]
    text = folder.fixes_text.read_text(encoding="utf-8")
    assert "What the replay cannot show: only steps 1-30" in text and "| 1 | mask_value=-1e9 |" in text


def test_a_late_explosion_is_replayed_from_before_it_began(small_data, tmp_path):
    """--lr=1e3 without clipping: finite for 7 steps, exploding from step 3, NaN at step 8. The replay starts
    from the last state before the explosion began (the ring's step 2)."""
    folder = trained(tmp_path, small_data, "late", "--mask_value=none", "--lr=1e3", "--grad_clip=0", "--max_steps=40",
                     "--warmup_ratio=0.15", "--ring_every=2")
    result = fixes.fixes(folder, margin=16)
    assert (result["onset"], result["trouble_step"], result["start_step"]) == (8, 3, 2) and result["faithful"]
    assert "bit for bit (6 of 6 recorded steps)" in result["control"]
    found = outcomes(result)
    assert found["lr=100 (lr / 10)"] == fixes.PREVENTS
    assert found["lr=500 (lr / 2)"].startswith("delays it to step")
    assert found["grad_clip=1"].startswith("delays it to step")  # clipping does not bound AdamW's step: it only delays


def test_a_replay_without_changes_reproduces_the_losses_bit_for_bit(small_data, tmp_path):
    folder = trained(tmp_path, small_data, "healthy", "--max_steps=8", "--ring_every=3", "--ring_keep=1",
                     "--log_every=1")
    assert list(folder.ring_steps()) == [0, 6]  # the initial state and the newest one kept
    run = Run(folder)
    recorded = {row[keys.STEP]: row[keys.LOSS_TOTAL] for row in read_history(folder.history) if keys.LOSS_TOTAL in row}
    for start in (0, 6):
        start_step, checkpoint = run.start(start + 1)
        replayed = run.replay(CONTROL, start_step, checkpoint, 8)
        assert replayed.losses == {step: recorded[step] for step in range(start + 1, 9)}  # exact float equality


def test_a_run_that_did_not_collapse_is_said_so_and_nothing_is_tried(small_data, tmp_path, capsys):
    folder = trained(tmp_path, small_data, "fine", "--max_steps=3")
    capsys.readouterr()
    fixes.main([str(folder.path)])
    out = capsys.readouterr().out
    assert out.startswith(f"{folder.path}: did not collapse (outcome: ") and "no change tried" in out
    assert not folder.fixes.exists()


@pytest.mark.parametrize("how, message", [
    ("damaged", "checkpoints/ring/step-00000000.pt: damaged file"),
    ("missing", "checkpoints/ring: no ring checkpoints"),
    ("not a run", "not a run directory"),
])
def test_bad_input_is_one_line_naming_the_file(writeup, tmp_path, how, message):
    folder = RunFolder(tmp_path / "copy")
    shutil.copytree(writeup[0].path, folder.path)
    if how == "damaged":
        ring = folder.ring_checkpoint(0)
        ring.write_bytes(ring.read_bytes()[:1000])
    elif how == "missing":
        shutil.rmtree(folder.ring)
    else:
        folder.config.unlink()
    with pytest.raises(SystemExit) as exit_info:
        fixes.main([str(folder.path)])
    assert str(exit_info.value).startswith("error: ") and message in str(exit_info.value)
    assert "\n" not in str(exit_info.value)


@pytest.mark.parametrize("tried, message", [
    ("lr=abc", "--try=lr=abc: "),
    ("no_such_flag=1", "--try=no_such_flag=1: expected FLAG=VALUE with a train.py flag"),
    ("seed=3", "--try=seed=3: --seed cannot be replayed"),
    ("gamma=-1", "--try=gamma=-1: --gamma=-1.0: expected a finite number"),
    ("lr", "--try=lr: expected FLAG=VALUE"),
])
def test_a_bad_try_names_the_flag(writeup, tried, message):
    with pytest.raises(SystemExit) as exit_info:
        fixes.main([str(writeup[0].path), f"--try={tried}"])
    assert str(exit_info.value).startswith(f"error: {message}"), str(exit_info.value)


def test_on_imbalanced_long_tail_data_with_a_try_and_the_table_on_the_runs_wandb_run(tmp_path, capsys):
    """Heavy imbalance (one intent over 70%) and a long tail of rare tags; a change of the user's own; the
    run recorded with W&B offline gets the table on its W&B run (its id resumed)."""
    data = write_imbalanced(tmp_path / "data", n_train=128, n_eval=32, n_intents=7, n_types=14)
    folder = RunFolder(tmp_path / "out" / "tail")
    train.main([f"--data={data}", f"--output_dir={folder.path.parent}", "--run_id=tail", "--threads=1",
                "--task_grad_every=0", "--wandb_mode=offline", "--mask_value=-inf"])
    capsys.readouterr()
    result = fixes.fixes(folder, margin=19, tries=["mask_value=finfo_min"])
    found = outcomes(result)
    assert result["faithful"] and found["mask_value=-1e9"] == found["mask_value=finfo_min"] == fixes.PREVENTS
    assert found["lr=5e-05 (lr / 10)"] == fixes.NO_EFFECT
    out = capsys.readouterr().out
    assert f"W&B: table {keys.TABLE_FIXES} logged on run tail" in out
    wandb_runs = sorted((folder.path.parent / "wandb").glob("offline-run-*-tail"))
    assert len(wandb_runs) == 2  # the run's own, and the one that resumed its id for the table
    assert all(math.isfinite(float(row[4])) for row in result["rows"] if row[2] == fixes.PREVENTS)
    assert json.loads(folder.fixes.read_text())["margin"] == 19


def test_a_resumed_run_keeps_the_ring_an_uninterrupted_run_keeps(tiny_data, tmp_path, crash_in_second_epoch):
    """Killed at its second evaluation (the ring already holds that epoch's states), resumed from the first
    epoch's last.pt: the entries after it are dropped and written again, identical to an uninterrupted run's."""
    args = [f"--data={tiny_data}", "--epochs=3", "--ring_every=3", "--ring_keep=10", *SHORT]
    with pytest.raises(KeyboardInterrupt):
        train.main([*args, f"--output_dir={tmp_path / 'killed'}", "--run_id=run"])
    crash_in_second_epoch.restore()
    killed = RunFolder(tmp_path / "killed" / "run")
    assert list(killed.ring_steps()) == [0, 3, 6]  # step 6 comes after last.pt's step 4
    train.main([f"--resume={killed.path}"])
    whole = trained(tmp_path / "whole", tiny_data, "run", "--epochs=3", "--ring_every=3", "--ring_keep=10")
    assert list(killed.ring_steps()) == list(whole.ring_steps()) == [0, 3, 6, 9, 12]
    for step, path in whole.ring_steps().items():
        ours, theirs = (torch.load(p, weights_only=True) for p in (killed.ring_steps()[step], path))
        assert all(torch.equal(ours["model"][k], theirs["model"][k]) for k in theirs["model"]), step
        assert torch.equal(ours["rng"]["torch"], theirs["rng"]["torch"]), step
