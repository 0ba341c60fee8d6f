import pytest

from nlu_collapse.data import Example
from nlu_collapse.data.labels import build_label_space
from nlu_collapse.evaluation import compute_metrics
from nlu_collapse.model.prediction import Predictions

TRAIN = [Example(["gọi", "anh", "Minh"], ["B-ACTION", "B-CONTACT", "I-CONTACT"], "call", "call_contact"),
         Example(["bật", "wifi"], ["B-ACTION", "B-MODE"], "change-mode", "turn_on")]


def test_metrics_match_seqeval_and_sklearn_and_unknown_labels_count_as_errors():
    labels = build_label_space(TRAIN)
    test = [Example(["gọi", "anh", "Minh"], ["B-ACTION", "B-CONTACT", "I-CONTACT"], "call", "call_contact"),
            Example(["mở", "zalo", "đi"], ["B-ACTION", "B-APP", "O"], "open-app", "open_app")]  # unseen APP, intent
    pred = Predictions(tags=[["B-ACTION", "B-CONTACT", "O"], ["B-ACTION", "I-MODE", "O"]],
                       intents=["call", "call"], commands=["call_contact", "turn_on"], loss=0.5)
    metrics, types = compute_metrics(test, pred, labels)
    # Gold spans: ACTION, CONTACT(anh Minh) | ACTION, APP. Predicted: ACTION, CONTACT(anh) | ACTION, and
    # I-MODE alone, which strict IOB2 does not read as a span. Correct: the two ACTIONs.
    precision, recall = 2 / 3, 2 / 4
    assert metrics["entity_precision"] == pytest.approx(precision)
    assert metrics["entity_recall"] == pytest.approx(recall)
    assert metrics["entity_f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert metrics["intent_acc"] == 0.5 and metrics["command_acc"] == 0.5  # unseen open-app is an error
    assert metrics["sentence_acc"] == 0.0
    assert "I-MODE" in labels.invalid_tags and metrics["entity/masked_pred"] == 1.0
    assert metrics["entity/pred_non_O"] == pytest.approx(4 / 6)
    assert types["CONTACT"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1.0}
    assert types["ACTION"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2.0}
