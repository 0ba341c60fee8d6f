"""Raw text as people type it -> word tokens segmented like the training data.

The training data is word-segmented the PhoBERT way: the syllables of one word joined by `_`
(`đặt báo_thức lúc 7h30`). A sentence typed by a person has spaces between syllables, stray
whitespace, punctuation stuck to words and maybe decomposed Unicode. `segment` turns it into
tokens in three steps:

1. Unicode NFC (`ẹ` typed as `e` + combining dot becomes one code point, as in the data)
   and whitespace collapsed.
2. A small pre-tokenizer: a chunk with a digit (`0912.345.678`, `(028)38123456`, `+84912345678`,
   `7h30`, `7:30`, `4g`) stays one token, as the data writes phone numbers and times, with only a
   trailing `,.!?;:` split off; on other chunks punctuation at either end becomes its own token;
   a chunk with `_` (already segmented) or with punctuation inside (`e-mail`) is kept as it is.
3. The remaining runs of plain syllables go to pyvi's CRF segmenter, which joins syllables into
   words and nothing else (checked: the output is re-derived from the input syllables).

Why pyvi (`bench/segmenters.py`, 10,000 generated sentences typed back with spaces; figures in the
README's Predict section): it reproduces the generator's segmentation better than underthesea by
every measure (sentences exact 0.67 against 0.59, word F1 0.92 against 0.89, entity spans intact
0.88 against 0.82), segments about twice as fast and imports in a third of the time; its CRF
model ships inside the wheel, so nothing is downloaded at run time. Its last release is from 2021
(underthesea is maintained): it is pinned with the sklearn-crfsuite its pickled model needs, and
`segment` takes any `segment_run`, so underthesea (measured the same way) can replace it.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

TRAILING_PUNCT = ",.!?;:…"
WORD_JOINER = "_"

SegmentRun = Callable[[str], list[str]]  # "đặt báo thức" -> ["đặt", "báo_thức"]


def normalize(text: str) -> str:
    """NFC, every run of whitespace (tabs, non-breaking and zero-width spaces included) one space. Text
    holding a lone surrogate (bytes that were not UTF-8, escaped by Python) is a ValueError here: pyvi's
    tagger would fail on it with a SystemError."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"not UTF-8 text: {text[err.start]!r} at character {err.start} of {text!r}") from None
    text = unicodedata.normalize("NFC", text).replace("\u200b", " ").replace("\ufeff", " ")
    return " ".join(text.split())


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith(("P", "S"))


def pretokenize(text: str) -> list[tuple[str, bool]]:
    """(chunk, fixed) pairs of a normalised sentence: fixed chunks are tokens as they are, the
    others single syllables for the segmenter."""
    pieces: list[tuple[str, bool]] = []
    for chunk in text.split():
        if any(ch.isdigit() for ch in chunk):
            core = chunk.rstrip(TRAILING_PUNCT) or chunk
            pieces.append((core, True))
            pieces += [(ch, True) for ch in chunk[len(core):]]
            continue
        start, end = 0, len(chunk)
        while start < end and _is_punct(chunk[start]):
            start += 1
        while end > start and _is_punct(chunk[end - 1]):
            end -= 1
        pieces += [(ch, True) for ch in chunk[:start]]
        if start < end:
            core = chunk[start:end]
            pieces.append((core, WORD_JOINER in core or any(_is_punct(ch) for ch in core)))
        pieces += [(ch, True) for ch in chunk[end:]]
    return pieces


def pyvi_run(syllables: str) -> list[str]:
    """pyvi's CRF word segmentation of a run of plain syllables."""
    from pyvi import ViTokenizer  # imported on first use: loading its model takes about a second

    return ViTokenizer.tokenize(syllables).split()


def _join(syllables: list[str], words: list[str]) -> list[str]:
    """Re-derive the segmenter's words from our own syllables: a segmenter may only group them,
    never change a character (on a mismatch, one token per syllable)."""
    groups, position = [], 0
    for word in words:
        size = len(word.replace(" ", WORD_JOINER).split(WORD_JOINER))
        groups.append(syllables[position:position + size])
        position += size
    same = all("".join(group) == re.sub(r"[_ ]", "", word) for group, word in zip(groups, words))
    return [WORD_JOINER.join(group) for group in groups] if same and position == len(syllables) else syllables


def segment(text: str, segment_run: SegmentRun = pyvi_run) -> list[str]:
    """Raw sentence -> word tokens with the syllables of a word joined by `_`."""
    tokens: list[str] = []
    run: list[str] = []

    def flush():
        if run:
            tokens.extend(_join(run, segment_run(" ".join(run))))
            run.clear()

    for chunk, fixed in pretokenize(normalize(text)):
        if fixed:
            flush()
            tokens.append(chunk)
        else:
            run.append(chunk)
    flush()
    return tokens


def pretokenized(text: str) -> list[str]:
    """Input that is already segmented (`--pretokenized`): normalised and split on whitespace only."""
    return normalize(text).split()
