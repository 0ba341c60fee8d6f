"""Span-level error analysis of entity predictions (strict IOB2 spans, as seqeval reads them).

Every gold and predicted span falls in one bucket:
  correct    same type, same boundaries
  type       same boundaries, another type (gold type -> predicted type)
  boundary   overlapping span of the same type with other boundaries
  type+boundary  overlapping span of another type and other boundaries
  missed     a gold span no prediction overlaps
  spurious   a predicted span no gold span overlaps
"""
from __future__ import annotations

from collections import Counter

from seqeval.metrics.sequence_labeling import get_entities


def _spans(sentence: list[str]) -> list[tuple[str, int, int]]:
    return [(t, start, end) for t, start, end in get_entities(sentence)]


def span_errors(gold: list[list[str]], pred: list[list[str]]) -> Counter:
    """Counter of (kind, gold type, predicted type); '-' where a side has no span."""
    errors = Counter()
    for gold_sentence, pred_sentence in zip(gold, pred):
        gold_spans, pred_spans = _spans(gold_sentence), _spans(pred_sentence)
        overlapping_preds = set()
        for g_type, g_start, g_end in gold_spans:
            overlaps = [(p_type, p_start, p_end) for p_type, p_start, p_end in pred_spans
                        if p_start <= g_end and g_start <= p_end]
            overlapping_preds.update(overlaps)
            if not overlaps:
                errors[("missed", g_type, "-")] += 1
                continue
            exact = [p for p in overlaps if (p[1], p[2]) == (g_start, g_end)]
            best = exact[0] if exact else overlaps[0]
            same_type = best[0] == g_type
            if exact:
                kind = "correct" if same_type else "type"
            else:
                kind = "boundary" if same_type else "type+boundary"
            errors[(kind, g_type, best[0])] += 1
        for p in pred_spans:
            if p not in overlapping_preds:
                errors[("spurious", "-", p[0])] += 1
    return errors


def confusion_rows(errors: Counter, top: int = 20) -> list[list]:
    """The most frequent errors (correct spans left out) as table rows: kind, gold, predicted, count."""
    wrong = [(key, n) for key, n in errors.items() if key[0] != "correct"]
    return [[kind, gold, pred, n] for (kind, gold, pred), n in sorted(wrong, key=lambda kv: (-kv[1], kv[0]))[:top]]
