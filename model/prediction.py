"""What the model predicts for encoded sentences: a label per word (the masked entity logits'
argmax at each word's first subword, `O` for a word with none), an intent and a command per sentence, optionally their
softmax. Scoring these is `evaluation`'s job; turning raw sentences into them, `model.inference`'s.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from nlu_collapse.data import LabelSpace
from nlu_collapse.model.tokenization import Encoded, collate


@dataclass
class Predictions:
    tags: list[list[str]]
    intents: list[str]
    commands: list[str] | None
    loss: float
    intent_probs: list[list[float]] | None = None   # softmax per sentence, with `probabilities=True`
    command_probs: list[list[float]] | None = None


def word_tags(row: list[int], enc: Encoded, names: list[str]) -> list[str]:
    """One tag per word, read at the word's own first subword; `O` for a word with none (cut off by
    max_length, or dropped by the tokenizer). Never read in order: a dropped word would shift every later
    word onto its neighbour's prediction."""
    return ["O" if position is None else names[row[position]] for position in enc.word_positions]


@torch.no_grad()
def predict_encoded(model, encoded: list[Encoded], labels: LabelSpace, batch_size: int, device: torch.device,
                    pad_id: int, loss_fn=None, autocast=contextlib.nullcontext, probabilities: bool = False) -> Predictions:
    """Predict every sentence; `loss_fn(logits, batch) -> total` gives the mean loss (NaN stays NaN);
    `probabilities` adds the intent and command softmax (predict.py's top-k)."""
    model.eval()
    tags, intents, commands, losses = [], [], [], []
    probs = {"intent": [], "command": []}
    with torch.inference_mode():  # no autograd graph: evaluation only reads the weights
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
                tags.append(word_tags(row, enc, labels.tags.names))
    model.train()
    loss = sum(losses) / len(losses) if losses else float("nan")
    return Predictions(tags, intents, commands if labels.commands is not None else None, loss,
                       probs["intent"] if probabilities else None,
                       probs["command"] if probabilities and labels.commands is not None else None)
