"""predict.py on runs trained here: a default run, a collapsed run and a Hugging Face encoder run."""
from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from nlu_collapse import predict, train
from nlu_collapse.data import Example, load_dataset
from nlu_collapse.data.phone_assistant import generate, strip_diacritics
from nlu_collapse.data.segmentation import pretokenized, segment
from nlu_collapse.evaluation import compute_metrics
from nlu_collapse.model.inference import bio_spans
from nlu_collapse.model.loading import labels_from_record, load_run

ROOT = Path(__file__).resolve().parent.parent
TINY_RUN = ["--epochs=3", "--batch_size=32", "--task_grad_every=0", "--threads=1",
            "--wandb_mode=disabled", "--max_length=32"]
LONG = "gọi cho mẹ lúc 7 giờ sáng mai " * 8  # 56 words: past --max_length=32 subwords


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_data) -> dict[str, Path]:
    """A default run and a collapsed one (`-inf`, the dense loss: NaN from step 1), each a few steps."""
    out = tmp_path_factory.mktemp("predict-runs")
    for run_id, flags in (("default", []), ("collapsed", ["--mask_value=-inf", "--max_steps=3", "--epochs=1"])):
        train.main([f"--data={small_data}", f"--output_dir={out}", f"--run_id={run_id}", *TINY_RUN, *flags])
    return {name: out / name for name in ("default", "collapsed")}


def run_json(capsys, *argv) -> tuple[str, list[dict]]:
    """(stderr, one dict per stdout line) of an in-process `predict.py --json` call."""
    assert predict.main([*map(str, argv), "--json"]) == 0
    captured = capsys.readouterr()
    return captured.err, [json.loads(line) for line in captured.out.splitlines()]


def cli_error(monkeypatch, capsys, *argv) -> str:
    """The message `predict.py` exits with (as a user sees it), checked to be one line."""
    monkeypatch.setattr(sys, "argv", ["predict.py", *map(str, argv)])
    with pytest.raises(SystemExit) as exit_info:
        predict.cli()
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    assert "Traceback" not in capsys.readouterr().err
    return message


# --- spans from BIO

@pytest.mark.parametrize("tags, spans", [
    (["B-ACTION", "O", "B-CONTACT", "I-CONTACT"], [("ACTION", 0, 1), ("CONTACT", 2, 4)]),
    (["O", "I-TIME", "I-TIME", "O"], []),                               # orphan I-: no span (strict IOB2)
    (["B-TIME", "I-DATE", "B-DATE", "I-DATE"], [("TIME", 0, 1), ("DATE", 2, 4)]),
    (["B-APP", "B-APP", "I-APP"], [("APP", 0, 1), ("APP", 1, 3)]),       # B after B: two spans
    (["O", "O", "O", "O"], []),
])
def test_bio_spans(tags, spans):
    tokens = ["gọi", "số", "Nguyễn_Văn_An", "ngay"]
    got = bio_spans(tokens, tags)
    assert [(s["type"], s["start"], s["end"]) for s in got] == spans
    assert all(s["text"] == " ".join(tokens[s["start"]:s["end"]]).replace("_", " ") for s in got)


def test_bio_spans_agree_with_seqeval_strict_iob2():
    """The span reader is seqeval's strict IOB2 (what the test metrics count), on random tag sequences."""
    from seqeval.scheme import IOB2, Entities

    rng = random.Random(0)
    tags = ["O", "B-A", "I-A", "B-B", "I-B"]
    for _ in range(500):
        sequence = [rng.choice(tags) for _ in range(rng.randint(1, 9))]
        expected = [(e.tag, e.start, e.end) for e in Entities([sequence], IOB2).entities[0]]
        got = bio_spans([f"w{i}" for i in range(len(sequence))], sequence)
        assert [(s["type"], s["start"], s["end"]) for s in got] == expected, sequence


def test_spans_of_a_sentence_longer_than_max_length(runs, capsys):
    _, [result] = run_json(capsys, runs["default"], LONG)
    n_words = len(result["tokens"])
    cut = result["truncated_words"]
    assert n_words == len(result["tags"]) and 0 < cut < n_words
    assert set(result["tags"][n_words - cut:]) == {"O"}              # never seen by the model
    assert result["entities"] == bio_spans(result["tokens"], result["tags"])
    assert result["entities"] and all(span["end"] <= n_words - cut for span in result["entities"])
    predict.main([str(runs["default"]), LONG])
    assert f"({cut} words past the run's --max_length" in capsys.readouterr().out


# --- the run is rebuilt exactly

def test_predictions_reproduce_the_runs_own_test_metrics(runs, capsys, tmp_path, small_data):
    """Pretokenized test sentences through predict.py score what train.py measured on test."""
    test = load_dataset(str(small_data)).splits["test"]
    path = tmp_path / "test.txt"
    path.write_text("".join(" ".join(ex.tokens) + "\n" for ex in test), encoding="utf-8")
    _, results = run_json(capsys, runs["default"], f"--input={path}", "--pretokenized", "--batch_size=7")
    assert [r["tokens"] for r in results] == [ex.tokens for ex in test]
    from nlu_collapse.model.prediction import Predictions

    run = load_run(runs["default"])
    pred = Predictions([r["tags"] for r in results], [r["intent"]["label"] for r in results],
                       [r["command"]["label"] for r in results], float("nan"))
    metrics, _ = compute_metrics(test, pred, run.labels)
    for key in ("entity_f1", "intent_f1", "command_f1", "entity/pred_non_O"):
        assert metrics[key] == pytest.approx(run.summary[f"test/{key}"], abs=1e-9), key


def test_labels_and_mask_come_from_the_record(runs):
    run = load_run(runs["default"], "last")
    record = json.loads((runs["default"] / "config.json").read_text(encoding="utf-8"))
    assert run.labels.tags.names == record["labels"]["tags"] == labels_from_record(record).tags.names
    assert run.labels.invalid_tags == ["I-ACTION", "I-MODE", "I-PHONE", "I-PLATFORM"]
    assert run.model.invalid_tag_mask.tolist() == [t in run.labels.invalid_tags for t in run.labels.tags.names]
    assert run.model.mask_value == -1e9 and run.checkpoint == "last" and run.step == 90
    assert not run.model.training


def test_hugging_face_encoder_run_loads_without_its_source(tmp_path, small_data, capsys):
    """`--encoder=<dir>`: the architecture is read from the run's encoder/config.json, so the run
    still loads after the encoder's own directory is gone (as a hub model is, offline)."""
    from transformers import BertConfig, BertModel

    from nlu_collapse.model import build_tiny_tokenizer

    source = tmp_path / "my-encoder"
    tokenizer = build_tiny_tokenizer(load_dataset(str(small_data)).splits["train"])
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(source)
    tokenizer.save_pretrained(source)
    train.main([f"--data={small_data}", f"--output_dir={tmp_path}", "--run_id=hf", f"--encoder={source}",
                *TINY_RUN, "--max_steps=3", "--epochs=1"])
    shutil.rmtree(source)
    capsys.readouterr()  # train.py's own verdict line
    _, [result] = run_json(capsys, tmp_path / "hf", "bật wifi")
    assert result["tokens"] == ["bật", "wifi"] and len(result["tags"]) == 2
    assert load_run(tmp_path / "hf").model.encoder.config.hidden_size == 32


# --- the collapsed run, shown as it is

def test_collapsed_run_prints_its_verdict_first_and_predicts_what_it_learned(runs, capsys):
    assert predict.main([str(runs["collapsed"]), "gọi cho mẹ lúc 7 giờ sáng mai"]) == 0
    first, *rest = capsys.readouterr().out.splitlines()
    assert "COLLAPSED at step 1" in first and "non-finite loss" in first
    assert "intent    add-contacts (probabilities NaN" in "\n".join(rest)
    err, results = run_json(capsys, runs["collapsed"], "gọi cho mẹ", "bật chế độ máy bay")
    assert "COLLAPSED" in err.splitlines()[0]                       # --json keeps stdout pure JSONL
    for result in results:
        assert set(result["tags"]) == {"O"} and result["entities"] == []
        assert result["intent"] == {"label": "add-contacts", "prob": None,
                                    "top": [{"label": "add-contacts", "prob": None}]}


def test_healthy_verdict_names_the_test_scores(runs, capsys, tmp_path):
    predict.main([str(runs["default"]), "bật wifi"])
    first = capsys.readouterr().out.splitlines()[0]
    assert re.search(r"healthy \(entity F1 \d\.\d{3}, intent F1 \d\.\d{3}, command F1 \d\.\d{3} on test\)", first)
    crashed = _damaged(runs, tmp_path, lambda d: (d / "summary.json").write_text('{"status": "crashed"}'))
    predict.main([str(crashed), "bật wifi"])
    assert "no final verdict (summary.json status: crashed)" in capsys.readouterr().out.splitlines()[0]


# --- output schema

def test_json_schema(runs, capsys):
    run = load_run(runs["default"])
    err, results = run_json(capsys, runs["default"], "gọi cho mẹ lúc 7 giờ sáng mai", "Nhắn anh Minh: đang kẹt xe!",
                            "--top_k=4")
    assert len(results) == 2
    for n, result in enumerate(results, 1):
        assert set(result) == {"source", "line", "text", "tokens", "tags", "intent", "command", "entities",
                               "truncated_words", "dropped_words"}
        assert result["source"] == "argument" and result["line"] == n and result["truncated_words"] == 0
        assert result["dropped_words"] == []
        assert len(result["tokens"]) == len(result["tags"]) and set(result["tags"]) <= set(run.labels.tags.names)
        for head, names in (("intent", run.labels.intents.names), ("command", run.labels.commands.names)):
            ranked = result[head]
            probs = [r["prob"] for r in ranked["top"]]
            assert len(ranked["top"]) == 4 and probs == sorted(probs, reverse=True)
            assert ranked["label"] == ranked["top"][0]["label"] and ranked["prob"] == probs[0]
            assert all(r["label"] in names for r in ranked["top"]) and 0 < sum(probs) <= 1 + 1e-6
        for span in result["entities"]:
            assert set(span) == {"type", "text", "start", "end"}
            assert result["tags"][span["start"]] == f"B-{span['type']}"
    assert results[1]["tokens"][:3] == ["Nhắn", "anh", "Minh"] and ":" in results[1]["tokens"]


def test_input_file_stdin_and_empty_lines(runs, capsys, tmp_path, monkeypatch, caplog):
    path = tmp_path / "in.txt"
    path.write_bytes("\ufeffgọi cho mẹ\r\n\r\n   \nbật wifi\n".encode("utf-8"))  # BOM, CRLF, blank lines
    _, results = run_json(capsys, runs["default"], f"--input={path}")
    assert [(r["line"], r["text"]) for r in results] == [(1, "gọi cho mẹ"), (4, "bật wifi")]
    assert f"{path}: 2 empty lines skipped (line 2, 3)" in caplog.text
    monkeypatch.setattr(sys, "stdin", open(path, encoding="utf-8-sig"))
    _, from_stdin = run_json(capsys, runs["default"])
    assert [r["tokens"] for r in from_stdin] == [r["tokens"] for r in results]


# --- bad input: one line, no traceback

def _damaged(runs, tmp_path, damage) -> Path:
    run_dir = tmp_path / "copy"
    shutil.copytree(runs["default"], run_dir)
    damage(run_dir)
    return run_dir


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "checkpoints" / "best.pt").unlink(), "missing checkpoints/best.pt"),
    (lambda d: shutil.rmtree(d / "tokenizer"), "missing tokenizer/"),
    (lambda d: (d / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint"), "best.pt: not a checkpoint"),
    (lambda d: (d / "config.json").write_text("{\"config\": {}", encoding="utf-8"), "config.json: not a run config"),
    (lambda d: (d / "config.json").write_text("{\"config\": {}}", encoding="utf-8"), "config.json: not a run config"),
])
def test_damaged_run_directory(runs, tmp_path, monkeypatch, capsys, damage, message):
    assert message in cli_error(monkeypatch, capsys, _damaged(runs, tmp_path, damage), "bật wifi")


def test_bad_input(runs, tmp_path, monkeypatch, capsys):
    assert "not a run directory (no config.json" in cli_error(monkeypatch, capsys, tmp_path, "bật wifi")
    assert "no such directory" in cli_error(monkeypatch, capsys, tmp_path / "absent", "bật wifi")
    assert "every input is empty" in cli_error(monkeypatch, capsys, runs["default"], "  ", "")
    assert "--checkpoint='middle'" in cli_error(monkeypatch, capsys, runs["default"], "x", "--checkpoint=middle")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("bật wifi\n".encode() + "tắt đèn".encode("utf-16-le"))
    assert f"{latin}:2: not UTF-8" in cli_error(monkeypatch, capsys, runs["default"], f"--input={latin}")
    assert "No such file" in cli_error(monkeypatch, capsys, runs["default"], f"--input={tmp_path / 'none.txt'}")
    assert "not both" in cli_error(monkeypatch, capsys, runs["default"], "x", f"--input={latin}")


def test_bad_input_exits_with_one_line_in_a_real_process(tmp_path):
    """The real entry point: status 1, one line on stderr, nothing on stdout (input is checked before
    torch is imported, so this costs no model loading)."""
    missing = tmp_path / "none.txt"
    done = subprocess.run([sys.executable, str(ROOT / "predict.py"), str(tmp_path), f"--input={missing}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [f"error: --input={missing}: No such file or directory"]


# --- segmentation of raw text

def _typed(example: Example) -> str:
    return " ".join(example.tokens).replace("_", " ")


def test_segmenter_matches_the_generators_segmentation():
    """Typed back with spaces and segmented again, generated sentences mostly get the generator's
    own words back (bench/segmenters.py measures 0.67 exact / 0.91 word F1 on 10,000)."""
    examples = [ex for ex in generate(seed=21, sizes=(400, 0, 0))["train"] if not "".join(ex.tokens).isascii()]
    segmented = [segment(_typed(ex)) for ex in examples]
    exact = sum(s == ex.tokens for s, ex in zip(segmented, examples)) / len(examples)
    hits = sum(len(set(_offsets(s)) & set(_offsets(ex.tokens))) for s, ex in zip(segmented, examples))
    recall = hits / sum(len(ex.tokens) for ex in examples)
    assert exact > 0.6 and recall > 0.85
    for tokens, ex in zip(segmented, examples):  # a segmenter only groups syllables
        assert "".join(tokens).replace("_", "") == "".join(ex.tokens).replace("_", "")


def _offsets(tokens: list[str]) -> list[tuple[int, int]]:
    spans, position = [], 0
    for token in tokens:
        size = len(token.replace("_", ""))
        spans.append((position, position + size))
        position += size
    return spans


@pytest.mark.parametrize("text, tokens", [
    ("gọi số 0912.345.678 nhé", ["gọi", "số", "0912.345.678", "nhé"]),
    ("bấm số (028)38123456, gấp!", ["bấm", "số", "(028)38123456", ",", "gấp", "!"]),
    ("gọi +84912345678.", ["gọi", "+84912345678", "."]),
    ("hẹn giờ 7:30 hoặc 6h45", ["hẹn", "giờ", "7:30", "hoặc", "6h45"]),
    ("bật 4g", ["bật", "4g"]),
    ("  nhắn   mẹ:\tđến nơi chưa?  ", ["nhắn", "mẹ", ":", "đến", "nơi", "chưa", "?"]),
    ("đặt báo_thức lúc 5 giờ", ["đặt", "báo_thức", "lúc", "5", "giờ"]),   # already segmented: kept
    ("mở máy ảnh", ["mở", "máy_ảnh"]),
])
def test_segment_keeps_numbers_and_splits_punctuation(text, tokens):
    assert segment(text) == tokens


def test_segment_normalises_unicode_and_passes_text_without_diacritics():
    composed = "gọi cho mẹ lúc bảy giờ"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed and segment(decomposed) == segment(composed)
    assert all(unicodedata.is_normalized("NFC", t) for t in segment(decomposed))
    plain = strip_diacritics("đặt báo thức lúc 6h30 sáng mai")
    assert "".join(segment(plain)).replace("_", "") == plain.replace(" ", "")
    assert segment("") == [] and segment(" \u200b\t ") == []
    assert pretokenized("  đặt  báo_thức\u00a0lúc ") == ["đặt", "báo_thức", "lúc"]

