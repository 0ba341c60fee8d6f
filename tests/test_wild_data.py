"""The embedded `phone-assistant-wild` data have the properties issue #12 asks for, the novelty
measures count what they say on data written by hand, and the card prints them."""
import hashlib
import json
import random
import statistics
import time
from collections import Counter

import pytest

from nlu_collapse import data
from nlu_collapse.data import Example, load_dataset, materialize_embedded
from nlu_collapse.data.card import card
from nlu_collapse.data.card import main as card_main
from nlu_collapse.data.formats import write_jsonl_split
from nlu_collapse.data.labels import build_label_space
from nlu_collapse.data.novelty import (
    held_out_flags,
    new_ngram_flags,
    pattern,
    recorded_held_out,
    spans,
    unseen_value_share,
)
from nlu_collapse.data.phone_assistant import strip_diacritics
from nlu_collapse.data.phone_assistant_wild import (
    INTENTS,
    LANGUAGES,
    MEDIA_TYPES,
    MODES,
    PLATFORMS,
    PREFIXES,
    ROLE_SOURCE,
    SLOT_RE,
    SUFFIXES,
    _typo,
    generate,
    generate_flagged,
    reserved,
)

SEED = data.EMBEDDED["phone-assistant-wild"][1]
ONE_TOKEN_TYPES = {"PHONE", "ACTION", "MODE", "PLATFORM", "EMAIL", "MEDIA_TYPE", "SOURCE_LANG", "TARGET_LANG"}
ROLE_PAIRS = [("SENDER", "RECIPIENT"), ("START_TIME", "END_TIME"), ("FROM_PLACE", "TO_PLACE"),
              ("SOURCE_APP", "TARGET_APP"), ("SOURCE_LANG", "TARGET_LANG")]
CHAT_ABBREVIATIONS = {"k", "ko", "hok", "dc", "đc", "j", "mk", "mik", "bn", "ns", "nt", "oke", "vs", "r", "vk", "ck"}


@pytest.fixture(scope="module")
def flagged():
    start = time.perf_counter()
    generated = generate_flagged(SEED)
    generated["seconds"] = time.perf_counter() - start
    return generated


@pytest.fixture(scope="module")
def splits(flagged):
    return {split: [ex for ex, _ in flagged[split]] for split in ("train", "dev", "test")}


def _skeleton(template: str) -> tuple[str, ...]:
    return tuple(f"<{m.group(1)}>" if (m := SLOT_RE.fullmatch(piece)) else piece for piece in template.split())


def _all(splits) -> list[Example]:
    return [ex for examples in splits.values() for ex in examples]


def test_deterministic_seed_dependent_and_fast(flagged):
    sizes = (200, 50, 50)
    assert generate(seed=3, sizes=sizes) == generate(seed=3, sizes=sizes)
    assert generate(seed=3, sizes=sizes) != generate(seed=4, sizes=sizes)
    assert flagged["seconds"] < 2.0


def test_sizes_and_no_sentence_in_two_splits(splits):
    assert {s: len(e) for s, e in splits.items()} == {"train": 4000, "dev": 500, "test": 500}
    keys = [{tuple(ex.tokens) for ex in examples} for examples in splits.values()]
    assert sum(map(len, keys)) == len(set().union(*keys)) == 5000


def test_held_out_templates_are_designed_in():
    seen_skeletons = {_skeleton(t) for _, commands in INTENTS.values() for seen, _ in commands.values() for t in seen}
    counts = [(len(seen), len(new)) for _, commands in INTENTS.values() for seen, new in commands.values()]
    for seen, new in counts:
        if seen + new >= 3:
            assert 1 <= new <= (seen + new) / 2
    assert 0.25 <= sum(n for _, n in counts) / sum(s + n for s, n in counts) <= 0.4
    for _, commands in INTENTS.values():
        for _, new in commands.values():
            assert not any(_skeleton(t) in seen_skeletons for t in new)  # a held-out template is a new skeleton
    assert not set(PREFIXES[0]) & set(PREFIXES[1]) and not set(SUFFIXES[0]) & set(SUFFIXES[1])


def test_dev_and_test_mix_held_out_and_in_template_sentences(flagged, splits):
    train_words = {t.lower() for ex in splits["train"] for t in ex.tokens}
    assert not any(flag for _, flag in flagged["train"])
    for split in ("dev", "test"):
        flags = [flag for _, flag in flagged[split]]
        assert 0.4 <= sum(flags) / len(flags) <= 0.6
        unseen = held_out_flags(splits["train"], splits[split])
        held_out = [u for u, flag in zip(unseen, flags) if flag]
        in_template = [u for u, flag in zip(unseen, flags) if not flag]
        assert sum(held_out) / len(held_out) >= 0.99  # only noise can make a held-out skeleton look like a train one
        assert sum(in_template) / len(in_template) < 0.9
        assert "alo" not in train_words and any("alo" in ex.tokens for ex in splits[split])  # a held-out filler


def test_reserved_values_only_in_dev_and_test(splits):
    def values(examples, kinds):
        return {strip_diacritics(text) for ex in examples for kind, text in spans(ex) if kind in kinds}

    lists = {"MODE": MODES, "PLATFORM": PLATFORMS, "MEDIA_TYPE": MEDIA_TYPES, "TARGET_LANG": LANGUAGES}
    for kind, full in lists.items():
        held = {strip_diacritics(v.lower()) for v in reserved(full)}
        assert held and not held & values(splits["train"], {kind})
    dev_test = splits["dev"] + splits["test"]
    assert {strip_diacritics(v.lower()) for v in reserved(MODES)} & values(dev_test, {"MODE"})
    for split in ("dev", "test"):
        assert 0.2 < unseen_value_share(splits["train"], splits[split]) < 0.6
    assert unseen_value_share(splits["train"], splits["train"]) == 0.0


def test_imbalance_and_nesting(splits):
    train = splits["train"]
    intents = Counter(ex.intent for ex in train)
    assert len(intents) >= 20
    assert 0.5 <= intents.most_common(1)[0][1] / len(train) <= 0.7
    assert sum(count / len(train) < 0.02 for count in intents.values()) >= 3
    owners = Counter(command for _, commands in INTENTS.values() for command in commands)
    assert set(owners.values()) == {1}
    assert all(1 <= len(commands) <= 4 for _, commands in INTENTS.values())
    pairs = {(ex.intent, ex.command) for ex in _all(splits)}
    assert len({command for _, command in pairs}) == len(pairs)  # each command under one intent in the data too


def test_entity_types_long_tail_and_span_shapes(splits):
    train = splits["train"]
    types = Counter(kind for ex in train for kind, _ in spans(ex))
    assert len(types) >= 25
    assert sum(count < 30 for count in types.values()) >= 3
    invalid = {tag[2:] for tag in build_label_space(train).invalid_tags}
    assert ONE_TOKEN_TYPES <= invalid
    tags = Counter(tag for ex in train for tag in ex.tags)
    for kind in ("CONTACT", "MESSAGE", "NOTE", "TO_PLACE", "START_TIME", "END_TIME", "SETTING", "QUERY"):
        assert tags[f"I-{kind}"] > 0


def test_role_pairs_share_values_and_come_in_both_orders(splits):
    examples = _all(splits)
    for first, second in ROLE_PAIRS:
        assert ROLE_SOURCE[first] == ROLE_SOURCE[second]
        firsts = {text for ex in examples for kind, text in spans(ex) if kind == first}
        seconds = {text for ex in examples for kind, text in spans(ex) if kind == second}
        assert firsts & seconds
    orders = Counter()
    for ex in examples:
        kinds = [kind for kind, _ in spans(ex)]
        for first, second in ROLE_PAIRS[:4]:
            if first in kinds and second in kinds:
                orders[first, kinds.index(first) < kinds.index(second)] += 1
    for first, _ in ROLE_PAIRS[:4]:
        assert orders[first, True] and orders[first, False]
    assert any(("từ", "<FROM_PLACE>", "đến", "<TO_PLACE>") == pattern(ex)[i:i + 4]
               for ex in examples for i in range(len(ex.tokens)))


def test_lengths(splits):
    lengths = [len(ex.tokens) for ex in _all(splits)]
    assert min(lengths) >= 3 and max(lengths) <= 40
    assert sum(n >= 25 for n in lengths) >= 10 and sum(n <= 4 for n in lengths) >= 100
    assert 5 <= statistics.median(lengths) <= 12


def test_noise_users_type(splits):
    train = splits["train"]
    bare = [ex for ex in train if all(strip_diacritics(t) == t for t in ex.tokens)]
    assert 0.15 < len(bare) / len(train) < 0.5
    chat = [ex for ex in train if CHAT_ABBREVIATIONS & {t.lower() for t in ex.tokens}]
    assert len(chat) / len(train) > 0.05  # chat style hits only sentences with an abbreviable word
    words = {t.lower() for ex in _all(splits) for t in ex.tokens}
    assert {"wifi", "bluetooth", "alarm", "settings", "volume", "dark", "mode", "timer", "app"} <= words
    assert any("_" in t for t in words)


@pytest.mark.parametrize("word", ["báo_thức", "bluetooth", "Minh"])
def test_a_typo_is_one_slip(word):
    rng = random.Random(0)
    for _ in range(20):
        typo = _typo(word, rng)
        assert typo != word and abs(len(typo) - len(word)) <= 1


def _ex(text: str, tags: str, intent: str = "x") -> Example:
    return Example(text.split(), tags.split(), intent)


def test_novelty_on_hand_written_data():
    train = [_ex("gọi anh Minh nhé", "B-ACTION B-CONTACT I-CONTACT O"), _ex("ơi gọi mẹ", "O B-ACTION B-CONTACT"),
             _ex("đặt báo_thức 7 giờ", "O O B-TIME I-TIME")]
    same_skeleton = _ex("Gọi Lan nhé", "B-ACTION B-CONTACT O")           # a new value in a seen pattern
    recombined = _ex("ơi gọi mẹ nhé", "O B-ACTION B-CONTACT O")          # a new pattern, every trigram seen
    new_filler = _ex("alo gọi anh Minh", "O B-ACTION B-CONTACT I-CONTACT")  # a new pattern with a new word
    orphan = _ex("đặt báo_thức giờ", "O O I-TIME")                       # an orphan I- starts a span
    assert pattern(same_skeleton) == ("<ACTION>", "<CONTACT>", "nhé")
    assert spans(train[0]) == [("ACTION", "gọi"), ("CONTACT", "anh minh")]
    assert spans(orphan) == [("TIME", "giờ")] and pattern(orphan) == ("đặt", "báo_thức", "<TIME>")
    examples = [same_skeleton, recombined, new_filler, orphan]
    assert held_out_flags(train, examples) == [False, True, True, False]
    assert new_ngram_flags(train, examples) == [False, False, True, False]
    assert new_ngram_flags(train, examples, n=5) == [False, True, True, False]
    assert unseen_value_share(train, [same_skeleton, recombined]) == pytest.approx(1 / 4)  # lan; Gọi is gọi
    assert unseen_value_share(train, [_ex("xin chào", "O O")]) == 0.0


def test_phone_assistant_is_byte_for_byte_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DATA_DIR", tmp_path)
    folder = materialize_embedded("phone-assistant")
    digests = {split: hashlib.sha256((folder / f"{split}.jsonl").read_bytes()).hexdigest()[:16]
               for split in ("train", "dev", "test")}
    assert folder == tmp_path / "phone-assistant"
    assert digests == {"train": "0d2d3858fdf78ab9", "dev": "0d4d99a5aa5c2255", "test": "2e48c0f2a4bf346e"}
    assert recorded_held_out(folder) is None


def test_card_prints_novelty_and_imbalance(tmp_path, monkeypatch, capsys, splits):
    monkeypatch.setattr(data, "DATA_DIR", tmp_path)
    card_main(["--data=phone-assistant-wild"])
    text = capsys.readouterr().out
    folder = tmp_path / "phone-assistant-wild"
    records = [json.loads(line) for line in (folder / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert not any(r["held_out_phrasing"] for r in records)
    assert load_dataset("phone-assistant-wild").splits == splits
    for line in ("dev:  sentences with a pattern never seen in train", "entity spans with a value never seen in train",
                 "held-out phrasing recorded by the generator", "largest intent call", "intents under 2%",
                 "entity types with under 30 spans", "sentence length in tokens (all splits): min 3"):
        assert line in text


def test_card_lines_for_any_dataset(tmp_path):
    examples = [_ex("gọi anh Minh nhé", "B-ACTION B-CONTACT I-CONTACT O", "call"),
                _ex("tắt wifi đi", "B-ACTION B-MODE O", "change-mode")]
    for split in ("train", "dev", "test"):
        write_jsonl_split(tmp_path / f"{split}.jsonl", examples)
    text = card(load_dataset(str(tmp_path)))
    assert "dev:  sentences with a pattern never seen in train 0.0%" in text
    assert "entity spans with a value never seen in train 0.0% of 4" in text
    assert "largest intent call 50.0%; 0 of 2 intents under 2%" in text
    assert "3 of 3 entity types with under 30 spans" in text and "min 3, median 3.5, max 4" in text
    assert "recorded by the generator" not in text
