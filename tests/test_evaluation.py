import pytest
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from data import Example
from data.labels import build_label_space
from evaluation import Predictions, compute_metrics

TRAIN = [Example(["gọi", "anh", "Minh"], ["B-ACTION", "B-CONTACT", "I-CONTACT"], "call", "call_contact"),
         Example(["bật", "wifi"], ["B-ACTION", "B-MODE"], "change-mode", "turn_on")]


def test_metrics_match_seqeval_and_sklearn_and_unknown_labels_count_as_errors():
    labels = build_label_space(TRAIN)
    test = [Example(["gọi", "anh", "Minh"], ["B-ACTION", "B-CONTACT", "I-CONTACT"], "call", "call_contact"),
            Example(["mở", "zalo", "đi"], ["B-ACTION", "B-APP", "O"], "open-app", "open_app")]  # unseen APP, intent
    pred = Predictions(tags=[["B-ACTION", "B-CONTACT", "O"], ["B-ACTION", "I-MODE", "O"]],
                       intents=["call", "call"], commands=["call_contact", "turn_on"], loss=0.5)
    metrics = compute_metrics(test, pred, labels)
    gold = [ex.tags for ex in test]
    padded = pred.tags
    strict = dict(mode="strict", scheme=IOB2)
    assert metrics["entity_f1"] == pytest.approx(f1_score(gold, padded, **strict))
    assert metrics["entity_precision"] == pytest.approx(precision_score(gold, padded, **strict))
    assert metrics["entity_recall"] == pytest.approx(recall_score(gold, padded, **strict))
    assert metrics["intent_acc"] == 0.5 and metrics["command_acc"] == 0.5  # unseen open-app is an error
    assert metrics["sentence_acc"] == 0.0
    assert "I-MODE" in labels.invalid_tags and metrics["masked_label_preds"] == 1.0
    assert metrics["pred_non_O"] == pytest.approx(4 / 6)
