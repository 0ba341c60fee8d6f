"""What a loaded run predicts for word-segmented sentences: intent and command with their top-k
probabilities, a BIO tag per word and the entity spans those tags make.

Spans are read from the tags the way the test metrics read them (strict IOB2, as seqeval): an `I-X`
that does not continue an `X` span starts no entity, so a span shown here is a span evaluation
would count. Words past the run's `--max_length` are never seen by the model: they are tagged `O`,
as in evaluation, and counted in `truncated_words`. Words the run's tokenizer turns into no subword
(its normaliser removes zero-width characters, soft hyphens...) are not seen either: tagged `O` too,
and listed in `dropped_words` with their code points, since printing them shows nothing.
"""
from __future__ import annotations

import math

from nlu_collapse.data import Example
from nlu_collapse.model.loading import LoadedRun
from nlu_collapse.model.prediction import predict_encoded
from nlu_collapse.model.tokenization import Encoded, code_points, encode


def bio_spans(tokens: list[str], tags: list[str]) -> list[dict]:
    """Entity spans of one sentence: type, text (syllables joined by spaces), token range [start, end).

    Strict IOB2, as seqeval's `Entities(..., IOB2)` reads it (the tests check they agree): a span is
    `B-X` then any `I-X`; an `I-X` that continues no `X` span belongs to none. Written out because
    seqeval's reader costs about a millisecond a sentence, as much as the model."""
    spans, start, kind = [], None, None
    for i, tag in enumerate([*tags, "O"]):
        if start is not None and tag != f"I-{kind}":
            spans.append({"type": kind, "text": " ".join(tokens[start:i]).replace("_", " "), "start": start, "end": i})
            start = None
        if tag.startswith("B-"):
            start, kind = i, tag[2:]
    return spans


def ranked(names: list[str], probs: list[float], predicted: str, k: int) -> dict:
    """The predicted label (argmax) with its probability and the k most probable labels, best first.
    A NaN row (a collapsed run's softmax) has no ranking: argmax reads it as index 0, so `top` holds
    that label alone, with probability None (JSON null)."""
    if any(math.isnan(p) for p in probs):
        return {"label": predicted, "prob": None, "top": [{"label": predicted, "prob": None}]}
    order = sorted(range(len(names)), key=lambda i: -probs[i])[:k]
    return {"label": predicted, "prob": probs[names.index(predicted)],
            "top": [{"label": names[i], "prob": probs[i]} for i in order]}


def dropped_words(tokens: list[str], enc: Encoded) -> list[dict]:
    """The words of one sentence that produce no subword: index (from 0, as spans), word, code points."""
    return [{"index": i, "word": tokens[i], "code_points": code_points(tokens[i])} for i in enc.dropped_words]


def predict_sentences(run: LoadedRun, sentences: list[list[str]], batch_size: int = 64, k: int = 3) -> list[dict]:
    """One JSON-ready dict per sentence (a non-empty token list), in the input order."""
    labels = run.labels
    # Sorted by length so a batch pads to its own longest sentence, not the file's.
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    # `encode` reads gold labels too; these placeholders are never used.
    examples = [Example(tokens=sentences[i], tags=["O"] * len(sentences[i]), intent="") for i in order]
    encoded = encode(examples, run.tokenizer, labels, run.config.max_length)
    device = next(run.model.parameters()).device
    pred = predict_encoded(run.model, encoded, labels, batch_size, device, run.tokenizer.pad_token_id, probabilities=True)
    run.model.eval()  # `predict_encoded` leaves the model in train mode, as training expects
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
            "truncated_words": encoded[position].cut_off,
            "dropped_words": dropped_words(tokens, encoded[position]),
        }
    return results
