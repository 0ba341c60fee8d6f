"""Collapse forensics on genuine runs: the origin each kind of collapse gets, and that recording it
changes nothing about the run."""
import contextlib
import json
import math
from pathlib import Path

import pytest
import torch
from transformers import get_linear_schedule_with_warmup

from nlu_collapse import train
from nlu_collapse.analysis import diagnose
from nlu_collapse.config import parse_config
from nlu_collapse.data import load_dataset
from nlu_collapse.model import encode
from nlu_collapse.model.tokenization import collate
from nlu_collapse.telemetry.forensics import Forensics
from nlu_collapse.telemetry.record import read_history, read_json

ROOT = Path(__file__).resolve().parent.parent
SHORT = ["--epochs=1", "--threads=1", "--task_grad_every=0", "--wandb_mode=disabled"]


def source_line(path: str, text: str) -> str:
    """'losses/focal.py:52': the line of `path` that contains `text` (so the test follows the code)."""
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    return f"{path}:{next(i for i, line in enumerate(lines, 1) if text in line)}"


def run(out: Path, data, *flags):
    summary = train.main([f"--data={data}", f"--output_dir={out}", *SHORT, *flags])
    run_dir = out / summary["run_id"]
    return summary, run_dir, [row for row in read_history(run_dir / "history.jsonl") if "loss/total" in row]


@pytest.fixture(scope="module")
def dense_runs(tmp_path_factory, small_data):
    """The write-up's collapse (-inf mask, dense focal loss), with forensics on and off."""
    out = tmp_path_factory.mktemp("dense")
    return {mode: run(out, small_data, "--mask_value=-inf", "--max_steps=4", f"--forensics={mode}",
                      f"--run_id={mode}") for mode in ("first", "off")}


def test_dense_minus_inf_names_the_one_hot_product(dense_runs, capsys):
    summary, run_dir, _ = dense_runs["first"]
    origin = summary["health/nan_origin"]
    one_hot_line = source_line("losses/focal.py", "per_token = -(onehot")
    assert origin["step"] == 1 == summary["health/first_nonfinite_step"]
    assert origin["replay_exact"] is True  # the replay reproduced the step's losses bit for bit
    assert origin["component"] == "loss/entity" and origin["components"]["loss/entity"] == "nan"
    assert isinstance(origin["components"]["loss/intent"], float)  # the other tasks were finite
    assert (origin["op"], origin["source"], origin["module"]) == ("MulBackward0", one_hot_line, "entity")
    assert origin["inf_origin"]["op"] == "masked_fill"
    assert origin["inf_origin"]["source"] == source_line("model/masking.py", "logits.masked_fill(invalid, mask_value)")
    # the entity head's NaN reached the encoder in backward; clipping multiplied every gradient by NaN
    assert summary["health/nan_spread/all"] == 1.0 and summary["health/nan_spread/intent"] == 1.0
    assert summary["health/nan_spread/by"] == "clip_grad_norm_"
    assert f"MulBackward0 at {one_hot_line} (entity head gradient)" in origin["text"]
    assert len((run_dir / "forensics.jsonl").read_text().splitlines()) == 1  # `first`: one replay per run


def test_forensics_leaves_the_run_exactly_as_it_was(dense_runs):
    on, on_dir, on_history = dense_runs["first"]
    off, off_dir, off_history = dense_runs["off"]
    assert "health/nan_origin" not in off and not (off_dir / "forensics.jsonl").exists()
    assert json.dumps(on_history) == json.dumps(off_history)  # NaN-aware: both serialise NaN alike
    # The replay drew dropout masks again: the generator must be back where training left it.
    rng_on = torch.load(on_dir / "checkpoints" / "last.pt", weights_only=True)["rng"]["torch"]
    rng_off = torch.load(off_dir / "checkpoints" / "last.pt", weights_only=True)["rng"]["torch"]
    assert torch.equal(rng_on, rng_off)
    test_on, test_off = ({k: v for k, v in s.items() if k.startswith("test/")} for s in (on, off))
    assert json.dumps(test_on, sort_keys=True) == json.dumps(test_off, sort_keys=True)


def test_verdict_line_names_step_component_op_and_line(small_data, tmp_path, capsys):
    run(tmp_path, small_data, "--mask_value=-inf", "--max_steps=2")
    verdict = capsys.readouterr().out
    assert "collapsed at step 1" in verdict and "NaN first in loss/entity" in verdict
    assert f"MulBackward0 at {source_line('losses/focal.py', 'per_token = -(onehot')}" in verdict
    assert "| stopped dead after step 1 of 2 planned (nothing could change; --stop_dead_runs=False trains on) |" in verdict


def test_gather_with_a_masked_gold_label_is_the_cross_entropy_of_a_minus_inf_logit(small_data, tmp_path):
    """The gather form is finite with -inf logits unless the gold label itself is masked. Train never
    holds such a label (the mask is what train lacks), so this batch gets one: a real step of train.py's
    train_step on the real model and loss."""
    cfg = parse_config([f"--data={small_data}", "--mask_value=-inf", "--loss_impl=gather"])
    torch.manual_seed(0)
    dataset = load_dataset(cfg.data)
    tokenizer = train.load_tokenizer(cfg, dataset, None)
    batch = collate(encode(dataset.splits["train"][:16], tokenizer, dataset.labels, cfg.max_length),
                    tokenizer.pad_token_id)
    labelled = (batch["tags"][0] >= 0).nonzero()[0].item()
    batch["tags"][0, labelled] = dataset.labels.tags.index["I-PHONE"]  # a masked tag as gold
    model = train.build_model(cfg, dataset.labels, len(tokenizer))
    criterion, _ = train.build_criterion(cfg, dataset.labels)
    optimizer = train.build_optimizer(model, cfg)
    forensics = Forensics("first")
    forensics.begin_step(1)
    optimisation = train.Optimisation(optimizer, get_linear_schedule_with_warmup(optimizer, 0, 5), None, cfg.grad_clip)
    numbers = train.train_step(model, batch, criterion, optimisation, 0, contextlib.nullcontext, telemetry=False,
                               task_grads=False, forensics=forensics)
    origin = forensics.origin
    assert math.isinf(numbers["loss/entity"]) and origin["components"]["loss/entity"] == "inf"
    assert origin["phase"] == "backward" and origin["replay_exact"] is True  # forward inf, backward NaN
    assert origin["op"] == "ExpBackward0" and origin["source"] == source_line("losses/focal.py", "p_t = torch.exp(-ce)")
    assert origin["source"] != source_line("losses/focal.py", "per_token = -(onehot")
    assert origin["module"] == "entity" and origin["grad_tasks"] == ["entity"]


def _fp16_autocast_on_cpu() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            return (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float16
    except RuntimeError:
        return False


@pytest.mark.skipif(not _fp16_autocast_on_cpu(), reason="this torch build has no float16 autocast on CPU")
def test_fp16_forward_overflow_is_found_in_the_encoder_and_does_not_spread(small_data, tmp_path):
    summary, _, history = run(tmp_path, small_data, "--precision=fp16", "--device=cpu", "--mask_value=finfo_min",
                              "--lr=10", "--max_steps=6", "--stop_on_collapse=True")
    origin = summary["health/nan_origin"]
    step = summary["health/first_nonfinite_step"]
    assert step > 1 and origin["step"] == step and origin["replay_exact"] is True
    assert all(math.isfinite(row["loss/total"]) for row in history if row["step"] < step)
    assert origin["phase"] == "forward" and origin["module"] == "encoder"
    assert origin["inf_origin"]["kind"] == "inf" and origin["inf_origin"]["op"] == "linear"  # fp16 overflow
    assert origin["forward_module"]["name"].startswith("encoder.encoder.layer.")
    assert origin["source"] == source_line("model/multitask.py", "self.encoder(input_ids")
    assert summary["health/nan_spread/all"] == 0.0  # the GradScaler skipped that step


def test_exploding_run_without_masking_has_a_late_origin_in_the_encoder(small_data, tmp_path):
    summary, run_dir, history = run(tmp_path, small_data, "--mask_value=none", "--lr=1e3", "--grad_clip=0",
                                    "--max_steps=12", "--warmup_ratio=0.1")  # the trajectory this test pins
    origin = summary["health/nan_origin"]
    step = summary["health/first_nonfinite_step"]
    assert step >= 5 and origin["step"] == step and origin["replay_exact"] is True
    before = [row for row in history if row["step"] < step]
    assert all(math.isfinite(row["loss/total"]) and math.isfinite(row["grad/norm"]) for row in before)
    assert max(row["loss/total"] for row in before) > 1e3  # it exploded before it went non-finite
    assert origin["module"] == "encoder" and origin["op"] == "layer_norm"
    assert origin["source"] == source_line("model/multitask.py", "self.encoder(input_ids")
    assert "transformers/models/bert/" in origin["source_detail"]
    assert read_json(run_dir / "summary.json")["health/nan_origin"] == origin


def test_healthy_run_has_no_origin(small_data, tmp_path):
    summary, run_dir, _ = run(tmp_path, small_data, "--max_steps=3", "--forensics=every")
    assert summary["health/first_nonfinite_step"] is None and "health/nan_origin" not in summary
    assert not any(key.startswith("health/nan_spread") for key in summary)
    assert not (run_dir / "forensics.jsonl").exists()
    assert "Origin" not in diagnose.render(diagnose.load_local(run_dir))


def test_diagnose_explains_a_nan_collapse(dense_runs, capsys):
    _, run_dir, _ = dense_runs["first"]
    text = diagnose.main([str(run_dir)])
    assert "Verdict: COLLAPSED at step 1" in text
    assert "first non-finite  step 1" in text
    assert ("recovery          none: parameters non-finite at step 1, so no later step could change anything (stopped "
            "there; 4 steps planned)") in text
    assert f"operation MulBackward0 at {source_line('losses/focal.py', 'per_token = -(onehot')}" in text
    assert "carried by clip_grad_norm_" in text and "Configuration: mask -inf; loss dense focal" in text
    assert "masked tags: I-ACTION, I-MODE, I-PHONE, I-PLATFORM" in text


def test_diagnose_explains_a_prediction_collapse_without_nan(small_data, tmp_path):
    """O weighted 50x pushes every token to O: no NaN, an all-O collapse the entity gradient drove."""
    summary, run_dir, _ = run(tmp_path, small_data, "--o_weight=50", "--collapse_window=2", "--max_steps=40",
                              "--task_grad_every=5")
    reasons = summary["health/collapse_reasons"]
    assert any("100% of entity predictions O" in reason for reason in reasons), reasons
    assert not any("non-finite" in reason for reason in reasons)
    assert summary["health/first_nonfinite_step"] is None and "health/nan_origin" not in summary
    text = diagnose.render(diagnose.load_local(run_dir))
    assert "Prediction collapse without NaN" in text and "-> entity dominated" in text
    assert "entity predicted: O 100%" in text and "Entity class weights: O 50" in text


@pytest.mark.parametrize("target, message", [
    ("no/such/dir-or-run/extra", "not a run directory"),
    ("./missing", "not a run directory"),
])
def test_diagnose_bad_input_is_one_line(target, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        diagnose.main([target])
    assert message in str(exit_info.value) and "\n" not in str(exit_info.value)


def test_diagnose_folder_without_a_record(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        diagnose.main([str(tmp_path)])
    assert str(exit_info.value) == f"error: {tmp_path}: no config.json (expected a run directory written by " \
                                   "train.py, e.g. runs/<run_id>, or ENTITY/PROJECT/RUN_ID)"


def test_every_replays_each_non_finite_step_and_keeps_the_first_as_the_origin(small_data, tmp_path):
    summary, run_dir, history = run(tmp_path, small_data, "--mask_value=-inf", "--max_steps=3", "--forensics=every",
                                    "--stop_dead_runs=False")  # the steps after death, trained on
    lines = [json.loads(line) for line in (run_dir / "forensics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3] == [row["step"] for row in history]
    assert summary["health/nan_origin"]["step"] == 1 and summary["health/nan_origin"]["op"] == "MulBackward0"
    # from step 2 on the NaN is already in the parameters: no operation is blamed for it
    assert [line["phase"] for line in lines] == ["forward", "parameters", "parameters"]
    assert lines[1]["op"] is None and lines[1]["params_before"]["all"] == 1.0
    assert lines[1]["text"].startswith("non-finite before this step: already in the parameters (encoder 100%")
