"""Evaluation: word-level predictions from the masked logits, then the field's metrics.

Entity: seqeval, strict span matching under IOB2 (an `I-X` without a `B-X` is no entity).
Intent / command: scikit-learn accuracy and macro F1. Labels unseen in train keep their
original strings on the gold side, so they always count as errors.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2
from sklearn.metrics import accuracy_score
from sklearn.metrics import f1_score as macro_f1

from data import Example, LabelSpace
from model.tokenization import Encoded, collate


@dataclass
class Predictions:
    tags: list[list[str]]
    intents: list[str]
    commands: list[str] | None
    loss: float
    intent_probs: list[list[float]] | None = None   # softmax per sentence, with `probabilities=True`
    command_probs: list[list[float]] | None = None


@torch.no_grad()
def predict(model, encoded: list[Encoded], labels: LabelSpace, batch_size: int, device: torch.device,
            pad_id: int, loss_fn=None, autocast=contextlib.nullcontext, probabilities: bool = False) -> Predictions:
    """Predict every sentence; `loss_fn(logits, batch) -> total` gives the mean loss (NaN stays NaN);
    `probabilities` adds the intent and command softmax (predict.py's top-k)."""
    model.eval()
    tags, intents, commands, losses = [], [], [], []
    probs = {"intent": [], "command": []}
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items()}
        with autocast():
            logits = model(batch["input_ids"], batch["attention_mask"])
            if loss_fn is not None:
                losses.append(float(loss_fn(logits, batch)))
        entity = logits["entity"].argmax(-1).cpu().tolist()   # (B, T)
        intents += [labels.intents.names[i] for i in logits["intent"].argmax(-1).cpu().tolist()]
        if "command" in logits:
            commands += [labels.commands.names[i] for i in logits["command"].argmax(-1).cpu().tolist()]
        for head in probs if probabilities else ():
            if head in logits:
                probs[head] += logits[head].float().softmax(-1).cpu().tolist()
        for row, enc in zip(entity, chunk):
            kept = [labels.tags.names[row[p]] for p in enc.word_starts]
            tags.append(kept + ["O"] * (enc.n_words - len(kept)))  # words cut off by max_length: O
    model.train()
    loss = sum(losses) / len(losses) if losses else float("nan")
    return Predictions(tags, intents, commands if labels.commands is not None else None, loss,
                       probs["intent"] if probabilities else None,
                       probs["command"] if probabilities and labels.commands is not None else None)


def entity_type_report(gold: list[list[str]], pred: list[list[str]], averages: bool = False) -> dict[str, dict[str, float]]:
    """seqeval's per-type precision / recall / F1 / support (strict IOB2); with `averages`, also
    its "micro avg" row, which is seqeval's span-level precision / recall / F1 over all types."""
    report = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    return {name: {k: float(v) for k, v in row.items()} for name, row in report.items()
            if averages or not name.endswith("avg")}


def compute_metrics(examples: list[Example], pred: Predictions, labels: LabelSpace) -> dict[str, float]:
    gold_tags = [ex.tags for ex in examples]
    pred_tags = pred.tags
    no_spans = {"precision": 0.0, "recall": 0.0, "f1-score": 0.0}
    overall = entity_type_report(gold_tags, pred_tags, averages=True).get("micro avg", no_spans)
    words = [t for sentence in pred_tags for t in sentence]
    invalid = set(labels.invalid_tags)
    gold_intents = [ex.intent for ex in examples]
    metrics = {
        "entity_f1": overall["f1-score"],
        "entity_precision": overall["precision"],
        "entity_recall": overall["recall"],
        "intent_acc": accuracy_score(gold_intents, pred.intents),
        "intent_f1": macro_f1(gold_intents, pred.intents, average="macro", zero_division=0),
        "pred_non_O": sum(t != "O" for t in words) / max(len(words), 1),
        "masked_label_preds": float(sum(t in invalid for t in words)),
        "loss": pred.loss,
    }
    right = [gi == pi and gt == pt for gi, pi, gt, pt in zip(gold_intents, pred.intents, gold_tags, pred_tags)]
    if pred.commands is not None:
        gold_commands = [ex.command for ex in examples]
        metrics["command_acc"] = accuracy_score(gold_commands, pred.commands)
        metrics["command_f1"] = macro_f1(gold_commands, pred.commands, average="macro", zero_division=0)
        right = [r and gc == pc for r, gc, pc in zip(right, gold_commands, pred.commands)]
    metrics["sentence_acc"] = sum(right) / len(right)
    return {k: float(v) for k, v in metrics.items()}
