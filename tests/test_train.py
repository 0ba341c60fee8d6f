"""In-process smoke runs of the real entry point on a small dataset."""
import json
import logging
import math
import sys
from pathlib import Path

import pytest
import torch

from nlu_collapse import train
from nlu_collapse.config import Config, parse_config
from nlu_collapse.runfolder import RunFolder
from nlu_collapse.telemetry.record import read_history, read_json

FAST = ["--epochs=3", "--batch_size=32", "--task_grad_every=5", "--threads=1"]


def run(tmp_path, data, *flags, mode="disabled"):
    summary = train.main([f"--data={data}", f"--output_dir={tmp_path}", f"--wandb_mode={mode}", *FAST, *flags])
    run_dir = Path(tmp_path) / summary["run_id"]
    return summary, run_dir, read_history(run_dir / "history.jsonl")


def test_cli_accepts_what_wandb_agent_passes():
    cfg = parse_config(["--stop_on_collapse=True", "--max_steps=None", "--gamma=3", "--mask_value=-inf",
                        "--lambda_entity", "0.7", "--grad_clip=None"])
    assert cfg.stop_on_collapse is True and cfg.max_steps is None and cfg.gamma == 3.0
    assert cfg.lambda_entity == 0.7 and cfg.grad_clip is None and cfg.mask_value == "-inf"
    assert parse_config(["--stop_on_collapse=False"]).stop_on_collapse is False
    assert parse_config([]) == Config()


@pytest.mark.parametrize("flags, message", [
    (["--no_such_flag=1"], "unrecognized arguments"),
    (["--stop_on_collapse=maybe"], "expected True or False"),
    (["--loss_impl=sparse"], "--loss_impl='sparse': expected one of dense, gather"),
    (["--mask_value=banana"], "--mask_value"),
    (["--precision=fp16", "--mask_value=-1e9"], "does not fit in torch.float16"),
    (["--epochs=0"], "--epochs=0: expected an integer in [1, inf)"),
])
def test_cli_errors_name_the_flag(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_default_run_is_healthy_and_writes_the_record(tmp_path, small_data):
    summary, run_dir, history = run(tmp_path, small_data)
    assert summary["status"] == "finished" and summary["health/collapsed"] is False
    assert summary["test/entity_f1"] > 0.2 and summary["test/intent_f1"] > 0.2
    assert (run_dir / "config.json").exists() and (run_dir / "checkpoints" / "best.pt").exists()
    assert (run_dir / "checkpoints" / "last.pt").exists() and (run_dir / "tables" / "test_entity_types.json").exists()
    assert not (tmp_path / "wandb").exists()  # disabled writes no W&B files
    config = read_json(run_dir / "config.json")
    steps = [row for row in history if "loss/total" in row]
    assert [row["step"] for row in steps] == list(range(1, len(steps) + 1))  # every step
    first = steps[0]
    for key in ("loss/total", "loss/entity", "loss/intent", "loss/command", "loss/weighted/entity", "lambda/entity",
                "lr", "grad/norm", "grad/clipped", "grad/clip_rate", "grad/norm/encoder", "grad/norm/entity",
                "grad/norm/intent", "grad/norm/command", "grad/task/entity", "grad/task/intent",
                "dist/entity/pred_non_O", "dist/entity/n_labels_pred", "dist/intent/max_share",
                "dist/command/max_share", "dist/entity/masked_pred", "health/loss_nonfinite", "health/grad_explode",
                "health/pred_non_O_out_of_band", "health/intent_dominant", "health/clip_every_step"):
        assert key in first, key
    assert len(first["dist/entity/pred"]) == len(config["labels"]["tags"])  # one bin per label
    assert len(first["dist/entity/gold"]) == len(config["labels"]["tags"])
    assert len(first["dist/intent/pred"]) == len(config["labels"]["intents"])
    assert sum(first["dist/intent/pred"]) == 32
    with_task = [row["step"] for row in steps if "grad/task/entity" in row]
    assert with_task[:3] == [1, 5, 10]  # step 1, then every --task_grad_every=5
    assert [row["lambda/entity"] for row in steps][:1] == [pytest.approx(0.3)]
    val = [row for row in history if "val/entity_f1" in row]
    assert len(val) == 3 and {"val/intent_f1", "val/command_f1", "val/sentence_acc", "val/loss"} <= set(val[0])


def test_minus_inf_dense_collapses_with_all_three_symptoms(tmp_path, small_data):
    summary, run_dir, history = run(tmp_path, small_data, "--mask_value=-inf", "--gamma=3", "--lambdas=old",
                                    mode="offline")
    first = history[0]
    assert math.isnan(first["loss/total"]) and first["health/loss_nonfinite"] == 1.0
    assert summary["health/collapsed"] is True and summary["health/collapse_step"] == 1
    assert summary["health/collapse_reasons"][:2] == ["step 1: non-finite loss (nan)",
                                                      "step 1: non-finite gradient norm (nan)"]
    later = [row for row in history if row.get("step", 0) >= 2 and "dist/entity/pred_non_O" in row]
    assert all(row["dist/entity/pred_non_O"] == 0.0 and row["dist/intent/max_share"] == 1.0 for row in later)
    assert summary["test/entity/pred_non_O"] == 0.0 and summary["test/entity_f1"] == 0.0
    assert (tmp_path / "wandb").is_dir()  # offline run files, no account needed


def test_stop_on_collapse_ends_early(tmp_path, small_data):
    summary, _, history = run(tmp_path, small_data, "--mask_value=-inf", "--stop_on_collapse=True")
    assert summary["stopped_on_collapse"] is True and summary["steps"] == 1


def test_same_seed_same_metrics(tmp_path, small_data):
    a, _, _ = run(tmp_path / "a", small_data, "--max_steps=12", "--epochs=1")
    b, _, _ = run(tmp_path / "b", small_data, "--max_steps=12", "--epochs=1")
    keys = [k for k in a if k.startswith(("test/", "final/"))]
    assert keys and all(a[k] == b[k] for k in keys)


def test_crashed_then_resumed_run_matches_an_uninterrupted_one(tmp_path, small_data, request):
    whole, _, whole_history = run(tmp_path / "whole", small_data, "--run_id=whole")
    crash = request.getfixturevalue("crash_in_second_epoch")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", small_data, "--run_id=cut")
    cut_dir = tmp_path / "cut" / "cut"
    assert read_json(cut_dir / "summary.json")["status"] == "interrupted"  # a KeyboardInterrupt, as Ctrl-C
    assert len(read_history(cut_dir / "history.jsonl")) > 0  # the crashed run keeps its history
    crash.restore()
    resumed = train.main([f"--resume={cut_dir}"])
    assert resumed["status"] == "finished"
    for key in [k for k in whole if k.startswith(("test/", "final/"))]:
        assert resumed[key] == whole[key], key
    resumed_history = read_history(cut_dir / "history.jsonl")
    assert [r["step"] for r in resumed_history] == [r["step"] for r in whole_history]


def test_torn_history_line_is_skipped(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text(json.dumps({"step": 1, "loss/total": 1.0}) + "\n" + '{"step": 2, "loss/to', encoding="utf-8")
    assert read_history(path) == [{"step": 1, "loss/total": 1.0}]


def test_wandb_auto_mode_is_offline_without_a_key(monkeypatch, tmp_path):
    from nlu_collapse.telemetry.tracking import resolve_mode

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("auto") == "disabled"
    assert resolve_mode("offline") == "offline"


def test_sentences_longer_than_max_length_are_evaluated_with_cut_words_as_O(tmp_path, small_data):
    summary, run_dir, _ = run(tmp_path, small_data, "--max_length=6", "--max_steps=4", "--epochs=1")
    assert summary["status"] == "finished" and 0.0 <= summary["test/entity_recall"] < 1.0


def test_rerun_of_the_same_run_id_starts_fresh_and_keeps_every_earlier_attempt_whole(tmp_path, small_data):
    """Three starts of one run id without --resume: each earlier attempt moves whole to previous/<n>/
    (config, history, summary, tables, checkpoints), none is overwritten, and the record counts them."""
    histories = []
    for max_steps in (2, 3, 4):
        _, run_dir, history = run(tmp_path, small_data, "--run_id=same", f"--max_steps={max_steps}", "--epochs=1")
        histories.append(history)
    assert [row["step"] for row in histories[-1] if "loss/total" in row] == [1, 2, 3, 4]
    folder = RunFolder(run_dir)
    assert [attempt.name for attempt in folder.earlier_attempts()] == ["1", "2"]
    for attempt, history, steps in zip(folder.earlier_attempts(), histories, (2, 3)):
        assert read_history(attempt.history) == history
        assert read_json(attempt.summary)["steps"] == steps
        assert read_json(attempt.config)["identity"]["attempt"] == int(attempt.name)
        assert attempt.best.exists() and list(attempt.tables.glob("*.json"))
    assert read_json(folder.config)["identity"]["attempt"] == 3


def test_length_grouped_batches_pad_less_and_keep_every_sentence(tmp_path, small_data):
    """Long-tailed lengths (3 to 60 tokens): each window of batches is sorted, nothing is lost or repeated."""
    generator = torch.Generator().manual_seed(0)
    lengths = [3 + int(x) for x in (torch.rand(1000, generator=generator) ** 4 * 57).tolist()]
    order = torch.randperm(1000, generator=generator)
    grouped = train.length_grouped(order, lengths, batch_size=8, window=10)
    assert sorted(grouped.tolist()) == list(range(1000))
    for start in range(0, 1000, 80):  # a window: the same sentences as the shuffle's, longest first
        window = grouped[start:start + 80].tolist()
        assert set(window) == set(order[start:start + 80].tolist())
        assert [lengths[i] for i in window] == sorted((lengths[i] for i in window), reverse=True)
    padded = lambda o: sum(8 * max(lengths[i] for i in o[s:s + 8].tolist()) for s in range(0, 1000, 8))  # noqa: E731
    assert padded(grouped) < 0.8 * padded(order)
    summary, _, history = run(tmp_path, small_data, "--group_by_length=True", "--max_steps=6")
    assert summary["status"] == "finished" and len([r for r in history if "loss/total" in r]) == 6


def test_log_lines_are_not_glued_onto_the_progress_bar(tmp_path, tiny_data, monkeypatch, capsys):
    """With the bar shown (a terminal), a warning or error logged mid-training starts its own line."""
    from tqdm import tqdm

    monkeypatch.setattr(train, "tqdm", lambda *args, **kwargs: tqdm(*args, **{**kwargs, "disable": False,
                                                                               "mininterval": 0}))
    handler = logging.StreamHandler(sys.stderr)  # the console handler train.main sets up outside pytest
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        run(tmp_path, tiny_data, "--mask_value=-inf", "--epochs=1", "--max_steps=3", "--forensics=off")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = capsys.readouterr().err.split("\n")
    logged = [line for line in lines if "ERROR " in line or "WARNING " in line]
    assert any("|" in line for line in lines) and any(line.split("\r")[-1].startswith("ERROR ") for line in logged)
    glued = [line for line in logged if not line.split("\r")[-1].startswith(("ERROR ", "WARNING "))]
    assert not glued, glued
