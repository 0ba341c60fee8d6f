"""Evaluation: the field's metrics of word-level predictions (model.prediction).

Entity: seqeval, strict span matching under IOB2 (an `I-X` without a `B-X` is no entity).
Intent / command: scikit-learn accuracy and macro F1. Labels unseen in train keep their
original strings on the gold side, so they always count as errors.
"""
from __future__ import annotations

from seqeval.metrics import classification_report
from seqeval.scheme import IOB2
from sklearn.metrics import accuracy_score
from sklearn.metrics import f1_score as macro_f1

from nlu_collapse.data import Example, LabelSpace
from nlu_collapse.data.labels import masked_gold
from nlu_collapse.model.prediction import Predictions
from nlu_collapse.telemetry import keys


def entity_type_report(gold: list[list[str]], pred: list[list[str]]) -> tuple[dict[str, dict[str, float]], dict]:
    """seqeval's strict IOB2 report in one pass: per type {precision, recall, f1, support}, and its
    "micro avg" row (span-level precision / recall / F1 over all types; zeros without spans)."""
    report = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    rows = {name: {stat.replace("-score", ""): float(v) for stat, v in row.items()} for name, row in report.items()}
    overall = rows.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1": 0.0})
    return {name: row for name, row in rows.items() if not name.endswith("avg")}, overall


def compute_metrics(examples: list[Example], pred: Predictions,
                    labels: LabelSpace) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(metrics of one split under their leaf names (telemetry.keys), per-type entity report)."""
    gold_tags = [ex.tags for ex in examples]
    pred_tags = pred.tags
    entity_types, overall = entity_type_report(gold_tags, pred_tags)
    words = [t for sentence in pred_tags for t in sentence]
    invalid = set(labels.invalid_tags)
    gold_intents = [ex.intent for ex in examples]
    metrics = {
        keys.ENTITY_F1: overall["f1"],
        keys.ENTITY_PRECISION: overall["precision"],
        keys.ENTITY_RECALL: overall["recall"],
        keys.accuracy("intent"): accuracy_score(gold_intents, pred.intents),
        keys.macro_f1("intent"): macro_f1(gold_intents, pred.intents, average="macro", zero_division=0),
        keys.entity_eval(keys.PRED_NON_O): sum(t != "O" for t in words) / max(len(words), 1),
        keys.entity_eval(keys.MASKED_PRED): float(sum(t in invalid for t in words)),
        keys.entity_eval(keys.GOLD_MASKED): float(sum(masked_gold(labels, examples).values())),
        keys.EVAL_LOSS: pred.loss,
    }
    right = [gi == pi and gt == pt for gi, pi, gt, pt in zip(gold_intents, pred.intents, gold_tags, pred_tags)]
    if pred.commands is not None:
        gold_commands = [ex.command for ex in examples]
        metrics[keys.accuracy("command")] = accuracy_score(gold_commands, pred.commands)
        metrics[keys.macro_f1("command")] = macro_f1(gold_commands, pred.commands, average="macro", zero_division=0)
        right = [r and gc == pc for r, gc, pc in zip(right, gold_commands, pred.commands)]
    metrics[keys.SENTENCE_ACC] = sum(right) / len(right)
    return {k: float(v) for k, v in metrics.items()}, entity_types
