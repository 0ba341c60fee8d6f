"""Baselines and other datasets: loss levels reach the loss, span errors, the same report on a JointBERT folder."""
from pathlib import Path

import pytest
import torch.nn.functional as F

from nlu_collapse import train
from nlu_collapse.analysis.records import load_local
from nlu_collapse.analysis.report import build_report
from nlu_collapse.config import LOSS_LEVELS, parse_config
from nlu_collapse.data import load_dataset
from nlu_collapse.data.formats import write_jointbert_split
from nlu_collapse.evaluation.errors import confusion_rows, span_errors
from nlu_collapse.runner import planning
from nlu_collapse.telemetry.record import read_history
from tests.scripts import local

ROOT = Path(__file__).resolve().parent.parent


def test_baseline_yaml_levels():
    config = planning.load_sweep(ROOT / "sweeps" / "baseline.yaml")
    runs = planning.expand(config)
    assert len(runs) == 12 and {r["loss_level"] for r in runs} == set(LOSS_LEVELS)
    cfg = parse_config(["--loss_level=plain_ce"])
    assert (cfg.gamma, cfg.entity_loss_scale, cfg.unit_class_weights) == (0.0, 1.0, True)
    assert parse_config(["--loss_level=plain_ce", "--gamma=0"]) == cfg  # agreeing flags are fine
    with pytest.raises(SystemExit):
        parse_config(["--loss_level=focal_g9"])


@pytest.mark.parametrize("flag", ["--gamma=5", "--entity_loss_scale=0.25", "--unit_class_weights=False"])
def test_loss_level_and_a_contradicting_flag_is_an_error_naming_both(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(["--loss_level=plain_ce", flag])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and flag.split("=")[0] in err and "--loss_level=plain_ce" in err


def test_plain_ce_level_is_exactly_cross_entropy_in_the_first_step_loss(tmp_path, small_data, monkeypatch):
    seen = []

    class Recording(train.MultiTaskLoss):
        def task_losses(self, logits, batch):
            if not seen:
                seen.append((logits["entity"].detach().clone(), batch["tags"].clone()))
            return super().task_losses(logits, batch)

    monkeypatch.setattr(train, "MultiTaskLoss", Recording)
    summary = train.main([f"--data={small_data}", f"--output_dir={tmp_path}", "--wandb_mode=disabled",
                          "--loss_level=plain_ce", "--max_steps=1", "--epochs=1"])
    logits, tags = seen[0]
    expected = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tags.reshape(-1), ignore_index=-100)
    first = read_history(tmp_path / summary["run_id"] / "history.jsonl")[0]
    assert first["loss/entity"] == pytest.approx(expected.item(), rel=1e-6)


def test_span_errors_on_a_hand_made_example():
    gold = [["B-ACTION", "B-CONTACT", "I-CONTACT", "O", "B-PHONE"],
            ["B-ACTION", "O", "B-TIME", "I-TIME"]]
    pred = [["B-ACTION", "B-CONTACT", "O", "B-MODE", "B-APP"],
            ["O", "O", "B-TIME", "I-TIME"]]
    errors = span_errors(gold, pred)
    assert errors[("correct", "ACTION", "ACTION")] == 1 and errors[("correct", "TIME", "TIME")] == 1
    assert errors[("boundary", "CONTACT", "CONTACT")] == 1
    assert errors[("type", "PHONE", "APP")] == 1
    assert errors[("spurious", "-", "MODE")] == 1
    assert errors[("missed", "ACTION", "-")] == 1
    assert confusion_rows(errors)[0][3] == 1 and all(row[0] != "correct" for row in confusion_rows(errors))


def test_per_type_scores_in_summary_and_history(tmp_path, small_data):
    summary = train.main([f"--data={small_data}", f"--output_dir={tmp_path}", "--wandb_mode=disabled",
                          "--max_steps=20", "--epochs=1"])
    assert "test/entity_type/PHONE/f1" in summary and "test/spans/missed" in summary
    history = read_history(tmp_path / summary["run_id"] / "history.jsonl")
    assert any("val/entity_type/CONTACT/f1" in row for row in history)
    assert (tmp_path / summary["run_id"] / "tables" / "test_entity_errors.json").exists()


def test_baseline_sweep_on_a_jointbert_folder_produces_its_own_table(tmp_path):
    atis = tmp_path / "atis-like"
    dataset = load_dataset("phone-assistant")
    for split, n in (("train", 160), ("dev", 40), ("test", 40)):
        examples = dataset.splits[split][:n]
        for ex in examples:
            ex.command = None
        write_jointbert_split(atis / split, examples)
    sweep_file = tmp_path / "mini-baseline.yaml"
    sweep_file.write_text("""
program: train.py
method: grid
metric: {name: val/entity_f1, goal: maximize}
parameters:
  loss_level: {values: [plain_ce, focal_g2]}
  seed: {values: [0, 1]}
  max_steps: {value: 6}
  epochs: {value: 1}
  wandb_mode: {value: disabled}
command: ["${env}", "${interpreter}", "${program}", "${args}"]
""", encoding="utf-8")
    out = tmp_path / "out"
    assert local.main([str(sweep_file), f"--out={out}", f"--data={atis}", "--workers=2"]) == 0
    folder = out / "mini-baseline-atis-like"
    runs = load_local(folder)
    assert len(runs) == 4 and all(r.factors["data"] == "atis-like" for r in runs)
    assert all(r.summary.get("test/command_f1") is None for r in runs)  # no command file: head disabled
    report = build_report(runs, "mini", folder / "report", plots=False)
    assert "Does the focal term help here?" in report
    assert "| loss_level | focal_g2 | plain_ce | all runs | 2 |" in report
