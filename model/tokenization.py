"""Tokenizers and word-to-subword alignment.

`tiny` builds a WordPiece tokenizer from the training words with the `tokenizers` library
and wraps it as a `PreTrainedTokenizerFast`, so it saves and loads like any HF tokenizer.
Any other encoder uses its own tokenizer (`AutoTokenizer`).

Alignment: the first subword of a word carries the word's label; other pieces and special
tokens get -100. `word_starts` keeps the position of every word's first subword so that
predictions map back to words for evaluation (a word cut off by `max_length` is predicted `O`).
"""
from __future__ import annotations

from collections import Counter
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
    tag_ids: list[int]      # per subword; -100 on non-first pieces and special tokens
    word_starts: list[int]  # subword position of each word's first piece (kept words only)
    n_words: int            # words in the sentence, kept or cut off by max_length
    intent_id: int
    command_id: int


def _subword_ids(tokenizer: PreTrainedTokenizerBase, words: list[str], max_length: int):
    """(input_ids, word index per position or None) for one pre-split sentence."""
    if tokenizer.is_fast:
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        return enc["input_ids"], enc.word_ids()
    # Slow tokenizers (PhoBERT's BPE) have no word_ids(): encode word by word.
    pieces, owners = [], []
    budget = max_length - tokenizer.num_special_tokens_to_add()
    for i, word in enumerate(words):
        ids = tokenizer.encode(word, add_special_tokens=False) or [tokenizer.unk_token_id]
        if len(pieces) + len(ids) > budget:
            break
        pieces += ids
        owners += [i] * len(ids)
    owner = iter(owners)
    word_ids = [None if special else next(owner) for special in tokenizer.get_special_tokens_mask(pieces)]
    return tokenizer.build_inputs_with_special_tokens(pieces), word_ids


def encode(examples: list[Example], tokenizer: PreTrainedTokenizerBase, labels: LabelSpace,
           max_length: int = 128) -> list[Encoded]:
    encoded = []
    for ex in examples:
        input_ids, word_ids = _subword_ids(tokenizer, ex.tokens, max_length)
        tag_ids, word_starts, previous = [], [], None
        for position, word in enumerate(word_ids):
            if word is None or word == previous:
                tag_ids.append(UNKNOWN)
            else:
                tag_ids.append(labels.tags.encode(ex.tags[word]))
                word_starts.append(position)
            previous = word
        command_id = labels.commands.encode(ex.command) if labels.commands is not None else UNKNOWN
        encoded.append(Encoded(input_ids, tag_ids, word_starts, len(ex.tokens), labels.intents.encode(ex.intent),
                               command_id))
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
