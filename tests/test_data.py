import json
import logging
from collections import Counter

import pytest

from nlu_collapse.data import DataError, Example, load_dataset
from nlu_collapse.data.card import card
from nlu_collapse.data.formats import (
    detect_format,
    parse_massive_annotation,
    read_jointbert_split,
    read_massive,
    write_jointbert_split,
    write_jsonl_split,
)
from nlu_collapse.data.labels import UNKNOWN, build_label_space
from nlu_collapse.data.phone_assistant import INTENTS, PREFIXES, generate, strip_diacritics


@pytest.fixture(scope="module")
def default():
    return load_dataset("phone-assistant")


def test_generator_is_deterministic_and_seed_dependent():
    a, b, c = generate(seed=3, sizes=(50, 10, 10)), generate(seed=3, sizes=(50, 10, 10)), generate(seed=4, sizes=(50, 10, 10))
    assert a == b
    assert a != c


def test_default_splits_sizes_and_disjoint(default):
    sizes = {s: len(e) for s, e in default.splits.items()}
    assert sizes == {"train": 4000, "dev": 500, "test": 500}
    keys = {s: {tuple(ex.tokens) for ex in e} for s, e in default.splits.items()}
    assert not keys["train"] & keys["dev"] and not keys["train"] & keys["test"] and not keys["dev"] & keys["test"]


def test_default_label_structure(default):
    train = default.splits["train"]
    intents = Counter(ex.intent for ex in train)
    assert len(intents) >= 8 and "add-contacts" in intents
    assert default.labels.intents.names[0] == "add-contacts"
    assert max(intents.values()) >= 3 * min(intents.values())
    assert len({ex.command for ex in train}) >= 15
    tags = default.labels.tag_counts
    assert 0.40 <= tags["O"] / sum(tags.values()) <= 0.70
    assert {"I-PHONE", "I-ACTION", "I-MODE", "I-PLATFORM"} <= set(default.labels.invalid_tags)
    for multi in ("CONTACT", "TIME", "DATE", "MESSAGE"):
        assert tags[f"I-{multi}"] > 0
    assert default.labels.tags.names[0] == "O"


def test_default_text_looks_like_assistant_traffic(default):
    train = default.splits["train"]
    assert sum(len(v[1][c]) for v in INTENTS.values() for c in v[1]) >= 30
    assert any("_" in t for ex in train for t in ex.tokens)  # word-segmented
    no_diacritics = [ex for ex in train if all(strip_diacritics(t) == t for t in ex.tokens)]
    assert 0.05 < len(no_diacritics) / len(train) < 0.5
    fillers = {p for p in PREFIXES if p}
    assert sum(" ".join(ex.tokens[:2]) in fillers or ex.tokens[0] in fillers for ex in train) > 100
    phones = [t for ex in train for t, tag in zip(ex.tokens, ex.tags) if tag == "B-PHONE"]
    assert any("." in p for p in phones) and any("-" in p for p in phones) and any(p.startswith("+84") for p in phones)


def test_card_prints_the_figures(default):
    text = card(default)
    assert "train 4000, dev 500, test 500" in text
    assert "O share" in text and "I-PHONE" in text and "add-contacts" in text


def test_jointbert_round_trip(tmp_path, default):
    examples = default.splits["train"][:20]
    for split in ("train", "dev", "test"):
        write_jointbert_split(tmp_path / split, examples)
    assert detect_format(tmp_path) == "jointbert"
    assert read_jointbert_split(tmp_path / "train") == examples
    loaded = load_dataset(str(tmp_path))
    assert loaded.data_format == "jointbert" and loaded.labels.commands is not None


def test_jointbert_without_command_file_disables_the_command_head(tmp_path):
    examples = [Example(["gọi", "mẹ"], ["B-ACTION", "B-CONTACT"], "call#urgent"), Example(["mở", "zalo"], ["O", "B-APP"], "open")]
    for split in ("train", "dev", "test"):
        write_jointbert_split(tmp_path / split, examples)
    loaded = load_dataset(str(tmp_path))
    assert loaded.labels.commands is None
    assert "call#urgent" in loaded.labels.intents.names  # multi-intent labels are classes of their own


def test_massive_file_and_brackets(tmp_path):
    rows = [{"partition": p, "annot_utt": "đặt báo thức lúc [time : năm giờ sáng] cho [person : mẹ]",
             "intent": "alarm_set", "scenario": "alarm"} for p in ("train", "dev", "test")]
    path = tmp_path / "vi-VN.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    assert detect_format(path) == "massive"
    splits = read_massive(path)
    ex = splits["train"][0]
    assert ex.tokens == ["đặt", "báo", "thức", "lúc", "năm", "giờ", "sáng", "cho", "mẹ"]
    assert ex.tags == ["O", "O", "O", "O", "B-time", "I-time", "I-time", "O", "B-person"]
    assert (ex.intent, ex.command) == ("alarm_set", "alarm")


def test_unknown_dev_labels_map_to_unknown_with_a_warning(tmp_path, caplog):
    train = [Example(["gọi", "mẹ"], ["B-ACTION", "B-CONTACT"], "call", "call_contact")]
    dev = [Example(["tắt", "wifi"], ["B-ACTION", "B-MODE"], "change-mode", "turn_off")]
    write_jsonl_split(tmp_path / "train.jsonl", train)
    write_jsonl_split(tmp_path / "dev.jsonl", dev)
    write_jsonl_split(tmp_path / "test.jsonl", train)
    with caplog.at_level(logging.WARNING):
        loaded = load_dataset(str(tmp_path))
    assert "dev: labels unseen in train" in caplog.text and "'tag': 1" in caplog.text
    assert loaded.labels.intents.encode("change-mode") == UNKNOWN
    assert loaded.labels.tags.encode("B-MODE") == UNKNOWN


def test_invalid_mask_lists_exactly_the_unseen_I_tags():
    train = [Example(["gọi", "anh", "Minh", "số", "0912"], ["B-ACTION", "B-CONTACT", "I-CONTACT", "O", "B-PHONE"], "call")]
    labels = build_label_space(train)
    assert labels.invalid_tags == ["I-ACTION", "I-PHONE"]
    assert labels.invalid_mask == [name in ("I-ACTION", "I-PHONE") for name in labels.tags.names]


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _jointbert(tmp_path, seq_in="gọi mẹ\n", seq_out="B-ACTION B-CONTACT\n", label="call\n"):
    for split in ("train", "dev", "test"):
        _write(tmp_path / split / "seq.in", seq_in)
        _write(tmp_path / split / "seq.out", seq_out)
        _write(tmp_path / split / "label", label)
    return tmp_path


@pytest.mark.parametrize("seq_in, seq_out, label, message", [
    ("gọi mẹ\n", "B-ACTION\n", "call\n", r"seq.out:1: 2 tokens but 1 tags"),
    ("gọi mẹ\n", "B-ACTION X-FOO\n", "call\n", r"seq.out:1: malformed tag 'X-FOO'"),
    ("gọi mẹ\ngọi bố\n", "O O\nO O\n", "call\n", r"label: 1 lines but seq.in has 2"),
    ("", "", "", r"split is empty"),
])
def test_jointbert_errors_name_file_and_line(tmp_path, seq_in, seq_out, label, message):
    _jointbert(tmp_path, seq_in, seq_out, label)
    with pytest.raises(DataError, match=message):
        load_dataset(str(tmp_path))


def test_orphan_I_tag_is_repaired_with_a_warning(tmp_path, caplog):
    _jointbert(tmp_path, "gọi anh Minh\n", "B-ACTION I-CONTACT I-CONTACT\n")
    with caplog.at_level(logging.WARNING):
        loaded = load_dataset(str(tmp_path))
    assert loaded.splits["train"][0].tags == ["B-ACTION", "B-CONTACT", "I-CONTACT"]
    assert "repaired 1 orphan I- tags" in caplog.text and "seq.out:1" in caplog.text


def test_missing_file_broken_json_and_unknown_format(tmp_path):
    _jointbert(tmp_path)
    (tmp_path / "dev" / "label").unlink()
    with pytest.raises(DataError, match=r"dev/label: file not found"):
        load_dataset(str(tmp_path))
    folder = tmp_path / "jsonl"
    _write(folder / "train.jsonl", '{"tokens": ["a"], "tags": ["O"], "intent": "x"}\n{"tokens": [\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: invalid JSON"):
        load_dataset(str(folder), "jsonl")
    _write(tmp_path / "odd" / "notes.txt", "hello")
    with pytest.raises(DataError, match=r"unknown dataset format"):
        load_dataset(str(tmp_path / "odd"))
    with pytest.raises(DataError, match=r"no such file or folder"):
        load_dataset(str(tmp_path / "absent"))


def test_massive_unbalanced_bracket_is_an_error():
    with pytest.raises(DataError, match=r"x.jsonl:3: unbalanced bracket"):
        parse_massive_annotation("wake me [time : five am", "x.jsonl:3")


def test_bom_crlf_trailing_blank_lines_and_line_separators_in_text(tmp_path):
    _jointbert(tmp_path, "\ufeffgọi mẹ\r\n\r\n", "B-ACTION B-CONTACT\r\n", "call\r\n")
    loaded = load_dataset(str(tmp_path))
    assert loaded.splits["train"][0].tokens == ["gọi", "mẹ"] and loaded.labels.intents.names == ["call"]
    folder = tmp_path / "jsonl"
    examples = [Example(["nhắn", "mẹ", "a\u2028b"], ["B-ACTION", "B-CONTACT", "B-MESSAGE"], "send", "sms")]
    for split in ("train", "dev", "test"):
        write_jsonl_split(folder / f"{split}.jsonl", examples)
    assert load_dataset(str(folder)).splits["train"] == examples  # reads back its own output


def test_wrong_types_and_blank_sentences_name_the_right_file(tmp_path):
    folder = tmp_path / "jsonl"
    _write(folder / "train.jsonl", '{"tokens": ["a", 3], "tags": ["O", "O"], "intent": "x"}\n')
    with pytest.raises(DataError, match=r"train.jsonl:1: tokens must be a list of strings"):
        load_dataset(str(folder), "jsonl")
    _jointbert(tmp_path / "jb", "gọi mẹ\n \ngọi bố\n", "B-ACTION O\nO\nO O\n", "call\ncall\ncall\n")
    with pytest.raises(DataError, match=r"seq.in:2: empty sentence"):
        load_dataset(str(tmp_path / "jb"))


def test_train_py_and_the_data_package_name_the_same_default_dataset():
    from nlu_collapse.config import Config
    from nlu_collapse.data import DEFAULT_DATA, EMBEDDED

    assert Config.data == DEFAULT_DATA == next(iter(EMBEDDED))
