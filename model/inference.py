"""What a loaded run predicts for word-segmented sentences: intent and command with their top-k
probabilities, a BIO tag per word and the entity spans those tags make.

Spans are read from the tags the way the test metrics read them (seqeval, strict IOB2): an `I-X`
that does not continue an `X` span starts no entity, so a span shown here is a span evaluation
would count. Words past the run's `--max_length` are never seen by the model: they are tagged `O`,
as in evaluation, and counted in `truncated_words`.
"""
from __future__ import annotations

import math

from seqeval.scheme import IOB2, Entities

from data import Example
from evaluation import predict
from model.loading import LoadedRun
from model.tokenization import encode


def bio_spans(tokens: list[str], tags: list[str]) -> list[dict]:
    """Entity spans of one sentence: type, text (syllables joined by spaces), token range [start, end)."""
    if not tags:
        return []
    return [{"type": e.tag, "text": " ".join(tokens[e.start:e.end]).replace("_", " "), "start": e.start, "end": e.end}
            for e in Entities([tags], IOB2).entities[0]]


def ranked(names: list[str], probs: list[float], predicted: str, k: int) -> dict:
    """The predicted label (argmax) with its probability and the k most probable labels, best first.
    NaN (a collapsed run's softmax) becomes None, JSON null; such a row keeps the label order, which
    is how argmax reads it (index 0 first)."""
    nan = any(math.isnan(p) for p in probs)
    order = range(len(names)) if nan else sorted(range(len(names)), key=lambda i: -probs[i])
    prob = lambda i: None if nan else probs[i]  # noqa: E731
    return {"label": predicted, "prob": prob(names.index(predicted)),
            "top": [{"label": names[i], "prob": prob(i)} for i in list(order)[:k]]}


def predict_sentences(run: LoadedRun, sentences: list[list[str]], batch_size: int = 64, k: int = 3) -> list[dict]:
    """One JSON-ready dict per sentence (a non-empty token list), in the input order."""
    labels = run.labels
    # Sorted by length so a batch pads to its own longest sentence, not the file's.
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    examples = [Example(tokens=sentences[i], tags=["O"] * len(sentences[i]), intent="") for i in order]
    encoded = encode(examples, run.tokenizer, labels, run.config.max_length)
    device = next(run.model.parameters()).device
    pred = predict(run.model, encoded, labels, batch_size, device, run.tokenizer.pad_token_id, probabilities=True)
    run.model.eval()  # `predict` leaves the model in train mode, as training expects
    results: list[dict] = [{}] * len(sentences)
    for position, i in enumerate(order):
        tokens, tags = sentences[i], pred.tags[position]
        results[i] = {
            "tokens": tokens,
            "tags": tags,
            "intent": ranked(labels.intents.names, pred.intent_probs[position], pred.intents[position], k),
            "command": (ranked(labels.commands.names, pred.command_probs[position], pred.commands[position], k)
                        if labels.commands else None),
            "entities": bio_spans(tokens, tags),
            "truncated_words": encoded[position].n_words - len(encoded[position].word_starts),
        }
    return results
