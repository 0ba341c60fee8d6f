"""What an encoder's tokenizer does to words before the model sees them, reported at the start of training.

An uncased English WordPiece (all-MiniLM-L6-v2, BERT's uncased models) lower-cases and strips diacritics, so
Vietnamese words that differ only in tone marks become one input. Every tokenizer here is built from scratch
with the `tokenizers` library (no Hub); tests/test_pretrained.py checks the same report on the real one.
"""
from __future__ import annotations

import logging
import unicodedata

import pytest
from tokenizers import normalizers

from nlu_collapse import train
from nlu_collapse.config import parse_config
from nlu_collapse.data import Example
from nlu_collapse.model import build_tiny_tokenizer
from nlu_collapse.model.tokenization import normalisation_report
from nlu_collapse.runfolder import RunFolder

UNCASED_BERT = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True,
                                          lowercase=True)


def sentence(*words: str) -> Example:
    return Example(list(words), ["O"] * len(words), "buy", "order")


# `bán` twice; `ghế` once composed and once decomposed (NFD): one word, as the model's input is the same
SPLITS = {"dev": [sentence("bán", "bàn", "ghế", "bán")],
          "test": [sentence("Bạn", "gọi", "goi", "ban", unicodedata.normalize("NFD", "ghế"))]}


def replace_normalizer(tokenizer, normalizer):
    tokenizer.backend_tokenizer.normalizer = normalizer
    return tokenizer


def with_normalizer(normalizer):
    """A WordPiece tokenizer built from the words above, its normaliser replaced by `normalizer`."""
    return replace_normalizer(build_tiny_tokenizer(SPLITS["dev"] + SPLITS["test"], min_count=1), normalizer)


def test_an_uncased_bert_normaliser_is_a_warning_naming_what_it_does_and_the_words_it_merges():
    level, line = normalisation_report(with_normalizer(UNCASED_BERT), SPLITS)
    assert level == logging.WARNING
    assert line == ("the tokenizer's normaliser lower-cases and strips diacritics ('ệ' -> 'e'): 5 of 7 distinct "
                    "dev/test words change (7 of 9 words in the text); 6 distinct words fall together into 2 forms, "
                    "which the model cannot tell apart, e.g. 'bán', 'Bạn' and 'ban' (and 1 more) all become 'ban'")


def test_a_normaliser_that_only_lower_cases_is_reported_at_info_level():
    lower_case = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])  # the tiny tokenizer's own
    level, line = normalisation_report(with_normalizer(lower_case), SPLITS)
    assert level == logging.INFO
    assert line == ("the tokenizer's normaliser lower-cases: 1 of 7 distinct dev/test words change (1 of 9 words in "
                    "the text); no two words become one")


def test_any_other_change_is_named_with_an_example():
    splits = {"dev": [sentence("ﬁle", "gọi")]}  # the ligature ﬁ: NFKC makes it two letters
    level, line = normalisation_report(with_normalizer(normalizers.NFKC()), splits)
    assert level == logging.WARNING
    assert line.startswith("the tokenizer's normaliser changes 1 word otherwise (e.g. 'ﬁle' -> 'file'): 1 of 2 ")


@pytest.mark.parametrize("normalizer", [None, normalizers.NFC(), normalizers.NFD()], ids=["none", "NFC", "NFD"])
def test_nothing_is_reported_when_no_word_changes_beyond_its_canonical_form(normalizer):
    assert normalisation_report(with_normalizer(normalizer), SPLITS) is None


def test_a_tokenizer_without_a_normaliser_to_read_is_not_inspected():
    assert normalisation_report(object(), SPLITS) is None  # a slow tokenizer has no backend_tokenizer


def build_logs(data, out, caplog) -> tuple[object, list[logging.LogRecord]]:
    """train.py's build on `data` (data, tokenizer, model: no training), and its records about normalisation."""
    cfg = parse_config([f"--data={data}", "--wandb_mode=disabled", "--threads=1", f"--output_dir={out}"])
    with caplog.at_level(logging.INFO, logger="train"):
        parts = train.build(cfg, RunFolder(out / "run"), resuming=False)
    return parts, [r for r in caplog.records if "normaliser" in r.getMessage()]


def test_training_reports_the_normalisation_of_dev_and_test_once_at_start(tiny_data, tmp_path, caplog, monkeypatch):
    real = train.load_tokenizer
    monkeypatch.setattr(train, "load_tokenizer", lambda *args: replace_normalizer(real(*args), UNCASED_BERT))
    parts, records = build_logs(tiny_data, tmp_path, caplog)
    assert [r.levelno for r in records] == [logging.WARNING]
    splits = {split: parts.dataset.splits[split] for split in ("dev", "test")}
    assert records[0].getMessage() == normalisation_report(parts.tokenizer, splits)[1]
    assert "lower-cases and strips diacritics" in records[0].getMessage()
    assert " distinct words fall together into " in records[0].getMessage()  # the generated data has such words


def test_the_tiny_tokenizer_lower_cases_and_says_so_without_a_warning(tiny_data, tmp_path, caplog):
    _, records = build_logs(tiny_data, tmp_path, caplog)
    assert [r.levelno for r in records] == [logging.INFO]
    assert records[0].getMessage().startswith("the tokenizer's normaliser lower-cases: ")
