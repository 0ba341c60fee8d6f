"""Tokenizers and word-to-subword alignment.

`tiny` builds a WordPiece tokenizer from the training words with the `tokenizers` library
and wraps it as a `PreTrainedTokenizerFast`, so it saves and loads like any HF tokenizer.
Any other encoder uses its own tokenizer (`AutoTokenizer`).

Alignment: the first subword of a word carries the word's label; other pieces and special
tokens get -100. `word_positions` keeps, for every word, the position of its first subword, read
from the tokenizer's own word ids, so that predictions map back to the word they belong to. A word
with no position is predicted `O`: one cut off by `max_length`, or one the tokenizer turns into no
subword at all (a normaliser that removes zero-width characters and soft hyphens drops a word made
only of them). Positions are never shifted to fill such a gap: reading predictions in order would
score every later word against its neighbour's tag. `dropped_words` lists the second kind, for the
warnings of train.py and predict.py.

`normalisation_report` says what an encoder's own tokenizer does to words before the model sees them: an
uncased English WordPiece lower-cases and strips diacritics, so Vietnamese words that differ only in tone marks
(`bán`, `bạn`, `bàn`) become one input.
"""
from __future__ import annotations

import logging
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from nlu_collapse.data import UNKNOWN, Example, LabelSpace

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_tokenizer(train: list[Example], min_count: int = 2) -> PreTrainedTokenizerFast:
    """A WordPiece tokenizer whose vocabulary is a pure function of the training words.

    Words seen `min_count` times are whole tokens; every character seen is a token and a `##`
    continuation, so any unseen word (a new phone number, a typo) splits into known pieces.
    The vocabulary is built here rather than by `WordPieceTrainer`, whose tie-breaking is not
    deterministic, so the same data and seed give the same run.
    """
    normalize = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    words = Counter(normalize.normalize_str(t) for ex in train for t in ex.tokens)
    chars = sorted({ch for word in words for ch in word})
    frequent = sorted((w for w, n in words.items() if n >= min_count and len(w) > 1), key=lambda w: (-words[w], w))
    vocab = {token: i for i, token in enumerate(SPECIAL + chars + [f"##{ch}" for ch in chars] + frequent)}
    tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalize
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


@dataclass
class Encoded:
    input_ids: list[int]
    tag_ids: list[int]                 # per subword; -100 on non-first pieces and special tokens
    word_positions: list[int | None]   # per word: its first subword's position; None: dropped or cut off
    dropped_words: list[int]           # words that produce no subword (the tokenizer removes them), in order
    intent_id: int
    command_id: int

    @property
    def n_words(self) -> int:
        return len(self.word_positions)

    @property
    def cut_off(self) -> int:
        """Words past `max_length` (dropped words not counted): never seen by the model, predicted O."""
        return sum(p is None for p in self.word_positions) - len(self.dropped_words)


def _no_subword(tokenizer: PreTrainedTokenizerBase, words: list[str], candidates: list[int]) -> list[int]:
    """The candidate words that produce no subword at all. Each pre-split word is normalised on its own,
    so encoding the candidates alone, untruncated, tells a dropped word from one `max_length` cut off."""
    word_ids = tokenizer([words[i] for i in candidates], is_split_into_words=True, add_special_tokens=False,
                         verbose=False).word_ids()
    kept = set(word_ids)
    return [word for n, word in enumerate(candidates) if n not in kept]


def _subword_ids(tokenizer: PreTrainedTokenizerBase, words: list[str], max_length: int):
    """(input_ids, word index per position or None, words that produce no subword) for one pre-split sentence.

    A word that produces no subword gets none on both paths, fast and slow: it is reported and predicted
    `O`, never given an `[UNK]` the fast path could not give it (the fast tokenizer's normaliser removes
    it before any model sees it, and the same run must not align differently with its slow twin)."""
    if tokenizer.is_fast:
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        word_ids = enc.word_ids()
        missing = sorted(set(range(len(words))) - set(word_ids))
        if missing and len(enc["input_ids"]) >= max_length:  # truncated: some may be cut off, not dropped
            return enc["input_ids"], word_ids, _no_subword(tokenizer, words, missing)
        return enc["input_ids"], word_ids, missing
    # Slow tokenizers (PhoBERT's BPE) have no word_ids(): encode word by word.
    per_word = [tokenizer.encode(word, add_special_tokens=False) for word in words]
    pieces, owners = [], []
    budget = max_length - tokenizer.num_special_tokens_to_add()
    for i, ids in enumerate(per_word):
        if len(pieces) + len(ids) > budget:
            break
        pieces += ids
        owners += [i] * len(ids)
    owner = iter(owners)
    word_ids = [None if special else next(owner) for special in tokenizer.get_special_tokens_mask(pieces)]
    dropped = [i for i, ids in enumerate(per_word) if not ids]
    return tokenizer.build_inputs_with_special_tokens(pieces), word_ids, dropped


def encode(examples: list[Example], tokenizer: PreTrainedTokenizerBase, labels: LabelSpace,
           max_length: int = 128) -> list[Encoded]:
    encoded = []
    for ex in examples:
        input_ids, word_ids, dropped = _subword_ids(tokenizer, ex.tokens, max_length)
        tag_ids, positions, previous = [], [None] * len(ex.tokens), None
        for position, word in enumerate(word_ids):
            if word is None or word == previous:
                tag_ids.append(UNKNOWN)
            else:
                tag_ids.append(labels.tags.encode(ex.tags[word]))
                positions[word] = position
            previous = word
        command_id = labels.commands.encode(ex.command) if labels.commands is not None else UNKNOWN
        encoded.append(Encoded(input_ids, tag_ids, positions, dropped, labels.intents.encode(ex.intent), command_id))
    return encoded


def collate(batch: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of encoded sentences into tensors: input_ids, attention_mask, tags (B, T); intent, command (B,)."""
    width = max(len(e.input_ids) for e in batch)
    pad = lambda values, fill: values + [fill] * (width - len(values))  # noqa: E731
    return {
        "input_ids": torch.tensor([pad(e.input_ids, pad_id) for e in batch]),
        "attention_mask": torch.tensor([pad([1] * len(e.input_ids), 0) for e in batch]),
        "tags": torch.tensor([pad(e.tag_ids, UNKNOWN) for e in batch]),
        "intent": torch.tensor([e.intent_id for e in batch]),
        "command": torch.tensor([e.command_id for e in batch]),
    }


def code_points(word: str) -> str:
    """`U+200B U+00AD`: what a word made of invisible characters is, where printing it shows nothing."""
    return " ".join(f"U+{ord(ch):04X}" for ch in word)


def dropped_words_warning(examples: list[Example], encoded: list[Encoded], listed: int = 3) -> str | None:
    """One line on a split's words that produce no subword (None if there are none): how many, how many
    carry an entity tag (never learned, predicted O, so scored as errors), and the first `listed` of them
    by sentence and word (counted from 1) with their code points. The gold tags are left as they are."""
    found = [(n, word) for n, enc in enumerate(encoded) for word in enc.dropped_words]
    if not found:
        return None
    tagged = sum(examples[n].tags[word] != "O" for n, word in found)
    shown = "; ".join(f"sentence {n + 1} word {word + 1} {examples[n].tokens[word]!r} "
                      f"({code_points(examples[n].tokens[word])})" for n, word in found[:listed])
    sentences = len({n for n, _ in found})
    many = len(found) > 1
    return (f"{len(found)} word{'s' * many} in {sentences} sentence{'s' * (sentences > 1)} produce{'s' * (not many)} "
            f"no subword with this tokenizer (its normaliser removes {'them' if many else 'it'}; {tagged} with an "
            f"entity tag): the model never sees {'them' if many else 'it'}, predicted O and scored against the gold "
            f"tag; e.g. {shown}{'; ...' if len(found) > listed else ''}")


DIACRITIC_PROBE = "ệ"  # e with a circumflex and a tone mark (dot below): an accent-stripping normaliser makes it `e`


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _strip_marks(text: str) -> str:
    """`bạn` -> `ban`, as BERT's accent stripping does (NFD, combining marks removed; `đ` is a letter and stays)."""
    return _nfc("".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn"))


def _quoted(words: list[str]) -> str:
    shown = [repr(word) for word in words]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"


def normalisation_report(tokenizer: PreTrainedTokenizerBase, splits: dict[str, list[Example]],
                         example_members: int = 3) -> tuple[int, str] | None:
    """What the tokenizer's normaliser does to the words of `splits`, as (logging level, one line); None when
    it changes none of them, or when the tokenizer exposes no normaliser (only fast tokenizers do:
    `backend_tokenizer.normalizer`; a slow one, such as PhoBERT's BPE, is not inspected).

    The line names what the normaliser does (lower-cases, strips diacritics, other changes with an example),
    how many distinct words change and how often they occur, and how many distinct words fall together into
    one normal form, with the largest such group as an example. Words are compared in NFC, so a normaliser's
    NFC step alone changes nothing; a word normalised away entirely is left to `dropped_words_warning`.
    WARNING when some word changes beyond its case (the model can no longer tell such words apart), INFO when
    the normaliser only lower-cases (the tiny tokenizer's own choice)."""
    normalizer = getattr(getattr(tokenizer, "backend_tokenizer", None), "normalizer", None)
    if normalizer is None:
        return None

    def normal(word: str) -> str:
        return _nfc(normalizer.normalize_str(word))

    counts = Counter(_nfc(word) for examples in splits.values() for ex in examples for word in ex.tokens)
    forms = {word: normal(word) for word in counts}
    changed = sorted(word for word, form in forms.items() if form and form != word)
    if not changed:
        return None
    lowercases, strips = normal("A") == "a", normal(DIACRITIC_PROBE) == "e"

    def fold(word: str) -> str:  # what the two named kinds alone would make of `word`
        word = word.lower() if lowercases else word
        return _strip_marks(word) if strips else word

    kinds = ["lower-cases"] * lowercases + [f"strips diacritics ({DIACRITIC_PROBE!r} -> 'e')"] * strips
    other = [word for word in changed if forms[word] != fold(word)]
    if other:
        kinds.append(f"changes {len(other)} word{'s' * (len(other) > 1)} otherwise (e.g. {other[0]!r} -> "
                     f"{forms[other[0]]!r})")
    groups = defaultdict(list)
    for word, form in forms.items():
        if form:
            groups[form].append(word)
    merged = {form: sorted(words) for form, words in groups.items() if len(words) > 1}
    where = "/".join(splits)
    line = (f"the tokenizer's normaliser {' and '.join(kinds)}: {len(changed)} of {len(counts)} distinct {where} "
            f"words change ({sum(counts[w] for w in changed)} of {sum(counts.values())} words in the text); ")
    if merged:
        # the example: words that differ beyond case if any, the largest group, its most frequent members
        form = max(merged, key=lambda f: (len({w.lower() for w in merged[f]}) > 1, len(merged[f]),
                                          sum(counts[w] for w in merged[f]), f))
        members = sorted(merged[form], key=lambda w: (-counts[w], w))[:example_members]
        more = len(merged[form]) - len(members)
        line += (f"{sum(len(words) for words in merged.values())} distinct words fall together into {len(merged)} "
                 f"form{'s' * (len(merged) > 1)}, which the model cannot tell apart, e.g. {_quoted(members)}"
                 f"{f' (and {more} more)' if more else ''} {'both' if len(merged[form]) == 2 else 'all'} "
                 f"become {form!r}")
    else:
        line += "no two words become one"
    beyond_case = any(forms[word] != word.lower() for word in changed)
    return (logging.WARNING if beyond_case else logging.INFO), line
