"""Word alignment by the tokenizer's own word ids: a word that produces no subword does not shift the others.

A fast tokenizer's normaliser removes zero-width characters and soft hyphens, so a word made only of them
gets no subword. Predictions read back in order would then give every later word its neighbour's tag.
Every tokenizer here is built from scratch (no Hub): the tiny WordPiece with a normaliser that drops them.
"""
from __future__ import annotations

import json
import logging
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from tokenizers import normalizers
from transformers import BertTokenizerFast
from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

from nlu_collapse import predict, train
from nlu_collapse.config import Config, parse_config
from nlu_collapse.data import load_dataset
from nlu_collapse.data.formats import Example
from nlu_collapse.data.labels import build_label_space
from nlu_collapse.evaluation import compute_metrics
from nlu_collapse.model import build_tiny_tokenizer, encode
from nlu_collapse.model.loading import LoadedRun
from nlu_collapse.model.prediction import predict_encoded
from nlu_collapse.model.tokenization import dropped_words_warning
from nlu_collapse.runfolder import RunFolder
from nlu_collapse.telemetry import keys
from tests.datasets import write_imbalanced

INVISIBLE = ["\u200b", "\u200c\u200d", "\ufeff", "\u00ad", "\u200d\u00ad"]  # each dropped whole by the normaliser
SENTENCES = [  # the dropped word sits before the entities: read in order, each would take its neighbour's tag
    Example(["gọi", "\u200b", "mẹ", "lúc", "7_giờ"], ["O", "O", "B-PERSON", "O", "B-TIME"], "call", "dial"),
    Example(["nhắc", "\u00ad", "lúc", "7_giờ", "sáng"], ["O", "B-TIME", "O", "B-TIME", "I-TIME"], "alarm", "set"),
    Example(["gọi", "mẹ", "lúc", "sáng"], ["O", "B-PERSON", "O", "B-TIME"], "call", "dial"),
]


def dropping(tokenizer):
    """`tokenizer` (changed in place) with BERT's text cleaning first: it removes zero-width characters, the BOM
    and soft hyphens, as the normaliser of many pretrained tokenizers does. Ids and vocabulary are unchanged."""
    bert = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    tokenizer.backend_tokenizer.normalizer = normalizers.Sequence([bert, normalizers.NFC(), normalizers.Lowercase()])
    return tokenizer


class Oracle(torch.nn.Module):
    """A model that predicts each subword's gold tag (O where none), known from the encoded sentences: a
    perfect tagger, so any tag that differs from gold comes from reading the predictions back."""

    def __init__(self, encoded, labels):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))  # a device for predict.py to read
        self.gold = {tuple(e.input_ids): [max(t, 0) for t in e.tag_ids] for e in encoded}
        self.labels = labels

    def forward(self, input_ids, attention_mask):
        n_tags = len(self.labels.tags)
        entity = torch.zeros(*input_ids.shape, n_tags)
        for row, (ids, mask) in enumerate(zip(input_ids.tolist(), attention_mask.tolist())):
            gold = self.gold[tuple(i for i, m in zip(ids, mask) if m)]
            entity[row, :len(gold)] = torch.nn.functional.one_hot(torch.tensor(gold), n_tags).float()
        batch = input_ids.shape[0]
        logits = {"entity": entity, "intent": torch.zeros(batch, len(self.labels.intents))}
        return logits | ({"command": torch.zeros(batch, len(self.labels.commands))} if self.labels.commands else {})


class ByToken(Oracle):
    """Predicts a tag from each input id alone (a table): what predict.py's sentences get without gold tags."""

    def __init__(self, table: dict[int, int], labels):
        super().__init__([], labels)
        self.table = table

    def forward(self, input_ids, attention_mask):
        self.gold = {tuple(ids): [self.table.get(i, 0) for i in ids] for ids in input_ids.tolist()}
        return super().forward(input_ids, torch.ones_like(input_ids))


@pytest.fixture(scope="module")
def hand():
    labels = build_label_space(SENTENCES)
    return labels, dropping(build_tiny_tokenizer(SENTENCES, min_count=1))


def _predict(model, encoded, labels):
    return predict_encoded(model, encoded, labels, 2, torch.device("cpu"), 0)


def test_each_word_after_a_dropped_word_reads_its_own_first_subword(hand):
    labels, tokenizer = hand
    encoded = encode(SENTENCES, tokenizer, labels)
    tags = _predict(Oracle(encoded, labels), encoded, labels).tags
    assert tags[0] == ["O", "O", "B-PERSON", "O", "B-TIME"]   # in order: O B-PERSON O B-TIME O
    assert tags[1] == ["O", "O", "O", "B-TIME", "I-TIME"]     # the dropped B-TIME word: O (gold tags untouched)
    assert tags[2] == SENTENCES[2].tags
    assert SENTENCES[1].tags[1] == "B-TIME"
    first = encoded[0]
    assert first.word_positions == [1, None, 2, 3, 4] and first.dropped_words == [1] and first.cut_off == 0
    assert [e.dropped_words for e in encoded] == [[1], [1], []]
    assert dropped_words_warning(SENTENCES, encoded) == (
        "2 words in 2 sentences produce no subword with this tokenizer (its normaliser removes them; 1 with an "
        "entity tag): the model never sees them, predicted O and scored against the gold tag; "
        "e.g. sentence 1 word 2 '\\u200b' (U+200B); sentence 2 word 2 '\\xad' (U+00AD)")
    assert dropped_words_warning(SENTENCES[2:], encoded[2:]) is None


def test_a_dropped_word_is_told_apart_from_words_cut_off_by_max_length(hand):
    labels, tokenizer = hand
    words = ["gọi", "\u200d", "mẹ", "lúc", "7_giờ", "sáng", "\u00ad", "mẹ"]
    ex = Example(words, ["O", "O", "B-PERSON", "O", "B-TIME", "I-TIME", "O", "B-PERSON"], "call", "dial")
    [enc] = encode([ex], tokenizer, labels, max_length=5)  # [CLS] + 3 words + [SEP]: "7_giờ" and later are cut
    [tags] = _predict(Oracle([enc], labels), [enc], labels).tags
    assert tags == ["O", "O", "B-PERSON", "O", "O", "O", "O", "O"]
    assert enc.word_positions == [1, None, 2, 3, None, None, None, None]
    assert enc.dropped_words == [1, 6] and enc.cut_off == 3     # the soft hyphen past the cut is still "dropped"
    [whole] = encode([ex], tokenizer, labels, max_length=16)    # nothing cut: the same two words dropped
    assert whole.dropped_words == [1, 6] and whole.cut_off == 0 and whole.word_positions[-1] == 6


def test_slow_and_fast_tokenizers_agree_on_a_word_with_no_subword(tmp_path, hand):
    """The slow path (word by word, as PhoBERT's) gives a word that encodes to nothing no subword, as the fast
    path does, rather than an [UNK] the fast path never shows the model."""
    labels = hand[0]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "gọi", "mẹ", "lúc", "7_giờ", "sáng", "nhắc"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    slow = BertTokenizerLegacy(str(tmp_path / "vocab.txt"), do_lower_case=False, strip_accents=False,
                               tokenize_chinese_chars=False)  # the Python WordPiece: no word_ids()
    fast = BertTokenizerFast(str(tmp_path / "vocab.txt"), do_lower_case=False, strip_accents=False,
                             tokenize_chinese_chars=False)
    assert not slow.is_fast and fast.is_fast
    for ex in SENTENCES:
        [by_word], [by_ids] = encode([ex], slow, labels), encode([ex], fast, labels)
        assert by_word.input_ids == by_ids.input_ids                   # no [UNK] in the dropped word's place
        assert by_word == by_ids
    assert encode(SENTENCES[:1], slow, labels)[0].dropped_words == [1]


def _with_invisible_words(folder: Path, seed: int = 3) -> dict[str, list[tuple[int, int]]]:
    """Insert an O-tagged invisible word into every third sentence of each split, before its first entity when
    it has one; returns (sentence, word) of each, counted from 0."""
    rng, inserted = random.Random(seed), {}
    for split in ("train", "dev", "test"):
        path, rows, inserted[split] = folder / f"{split}.jsonl", [], []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            row = json.loads(line)
            if n % 3 == 0:
                entities = [i for i, tag in enumerate(row["tags"]) if tag != "O"]
                at = entities[0] if entities else rng.randrange(len(row["tokens"]) + 1)
                row["tokens"].insert(at, rng.choice(INVISIBLE))
                row["tags"].insert(at, "O")
                inserted[split].append((n, at))
            rows.append(json.dumps(row, ensure_ascii=False) + "\n")
        path.write_text("".join(rows), encoding="utf-8")
    return inserted


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    """The imbalanced dataset (one intent over 70%, a long tail of entity types, some with a handful of spans)
    with invisible words, and a tiny tokenizer whose normaliser drops them."""
    folder = write_imbalanced(tmp_path_factory.mktemp("invisible"), n_train=240, n_eval=90, n_intents=5, n_types=16)
    inserted = _with_invisible_words(folder)
    dataset = load_dataset(str(folder))
    return folder, inserted, dataset, dropping(build_tiny_tokenizer(dataset.splits["train"]))


def test_a_perfect_tagger_scores_perfectly_on_an_imbalanced_long_tail_set_with_dropped_words(imbalanced):
    _, inserted, dataset, tokenizer = imbalanced
    examples, labels = dataset.splits["test"], dataset.labels
    encoded = encode(examples, tokenizer, labels)
    predictions = _predict(Oracle(encoded, labels), encoded, labels)
    assert predictions.tags == [ex.tags for ex in examples]
    scores, types = compute_metrics(examples, predictions, labels)
    assert scores[keys.ENTITY_F1] == 1.0
    rare = [t for t, row in types.items() if row["support"] <= 3]
    assert rare and all(types[t]["f1"] == 1.0 for t in types)                     # the long tail too
    assert [(n, w) for n, e in enumerate(encoded) for w in e.dropped_words] == inserted["test"]
    # The same predictions read in order (the old alignment) score far lower: the data exercises the shift.
    in_order = [[labels.tags.names[max(e.tag_ids[p], 0)] for p in e.word_positions if p is not None] for e in encoded]
    shifted = [tags + ["O"] * (len(ex.tokens) - len(tags)) for tags, ex in zip(in_order, examples)]
    assert compute_metrics(examples, replace(predictions, tags=shifted), labels)[0][keys.ENTITY_F1] < 0.8


def test_training_warns_once_per_split_with_examples_and_keeps_gold_tags(imbalanced, monkeypatch, caplog, tmp_path):
    folder, inserted, dataset, _ = imbalanced
    real = train.load_tokenizer
    monkeypatch.setattr(train, "load_tokenizer", lambda *args: dropping(real(*args)))
    cfg = parse_config([f"--data={folder}", "--wandb_mode=disabled", "--threads=1", f"--output_dir={tmp_path}"])
    with caplog.at_level(logging.WARNING, logger="train"):
        parts = train.build(cfg, RunFolder(tmp_path / "run"), resuming=False)
    warnings = [r.getMessage() for r in caplog.records if "produce no subword" in r.getMessage()]
    assert len(warnings) == 3
    for split, message in zip(("train", "dev", "test"), warnings):
        n, word = inserted[split][0]
        token = dataset.splits[split][n].tokens[word]
        assert message.startswith(f"{split}: {len(inserted[split])} words in {len(inserted[split])} sentences ")
        assert "0 with an entity tag" in message
        assert f"sentence {n + 1} word {word + 1} {token!r} ({' '.join(f'U+{ord(c):04X}' for c in token)})" in message
        assert message.count("sentence ") == 3 and message.endswith("; ...")      # three examples, then more
        assert parts.dataset.splits[split] == dataset.splits[split]                 # gold tags as written


def test_predict_lists_dropped_words_per_sentence(hand, monkeypatch, capsys, tmp_path):
    labels, tokenizer = hand
    table = {tokenizer.convert_tokens_to_ids("mẹ"): labels.tags.encode("B-PERSON"),
             tokenizer.convert_tokens_to_ids("7_giờ"): labels.tags.encode("B-TIME")}
    run = LoadedRun(tmp_path, Config(), {}, {}, labels, tokenizer, ByToken(table, labels), "best", 0)
    monkeypatch.setattr("nlu_collapse.model.loading.load_run", lambda *args: run)
    lines = ["gọi \u00ad mẹ lúc 7_giờ", "gọi mẹ lúc 7_giờ"]
    predict.main([str(tmp_path), *lines, "--pretokenized", "--json"])
    first, second = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert first["tags"] == ["O", "O", "B-PERSON", "O", "B-TIME"] and second["tags"] == ["O", "B-PERSON", "O", "B-TIME"]
    assert first["dropped_words"] == [{"index": 1, "word": "\u00ad", "code_points": "U+00AD"}]
    assert second["dropped_words"] == [] and first["truncated_words"] == second["truncated_words"] == 0
    assert [e["text"] for e in first["entities"]] == ["mẹ", "7 giờ"]
    predict.main([str(tmp_path), *lines, "--pretokenized"])
    out = capsys.readouterr().out
    assert out.count("(1 word produces no subword with the run's tokenizer: not seen, tagged O: word 2 U+00AD)") == 1
