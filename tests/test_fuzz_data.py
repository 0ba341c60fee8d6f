"""Generated malformed inputs for the three readers (hypothesis): every one is a DataError naming the
file and, where the damage sits on a line, that line; never another exception, never accepted.

Each test breaks one line of an otherwise valid dataset in one way drawn at random (a wrong JSON type,
a missing key, a damaged bracket, bytes that are not UTF-8, a torn line, ...). 100 inputs per format,
derandomized so CI sees the same 300 cases every time.
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlu_collapse.data.formats import TAG_RE, DataError, read_jointbert_split, read_jsonl_split, read_massive

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
GOOD = {"tokens": ["gọi", "mẹ", "lúc", "5h"], "tags": ["O", "B-CONTACT", "O", "B-TIME"], "intent": "call",
        "command": "call.voice"}
LINES = 3

not_a_string = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         st.lists(st.integers(), max_size=2),
                         st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))
blank = st.sampled_from(["", " ", "\t"])
bad_tag = st.text(min_size=1, max_size=6).filter(lambda t: not TAG_RE.fullmatch(t) and t.strip() and len(t.split()) == 1)
junk = st.text(max_size=20).filter(lambda t: t.strip() and not _is_json_object(t))


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _line_damage(line: bytes, draw) -> bytes:
    """Damage that any JSON line suffers: non-UTF-8 bytes, a torn tail, or junk in its place."""
    kind = draw(st.sampled_from(["bytes", "torn", "junk"]))
    if kind == "bytes":
        at = draw(st.integers(0, len(line)))
        return line[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xe1\x80", b"\x80abc"])) + line[at:]
    if kind == "torn":
        return line[: draw(st.integers(1, len(line) - 1))]
    return draw(junk).encode()


@st.composite
def jsonl_damage(draw):
    """(line number, damaged line bytes)."""
    number = draw(st.integers(1, LINES))
    record = dict(GOOD)
    kind = draw(st.sampled_from(["type", "blank_label", "missing", "tags", "empty_token", "null_command", "line"]))
    if kind == "line":
        return number, _line_damage(json.dumps(record, ensure_ascii=False).encode(), draw)
    if kind == "type":
        record[draw(st.sampled_from(["tokens", "tags", "intent"]))] = draw(not_a_string)
    elif kind == "blank_label":
        record[draw(st.sampled_from(["intent", "command"]))] = draw(blank)
    elif kind == "missing":
        del record[draw(st.sampled_from(["tokens", "tags", "intent"]))]
    elif kind == "tags":
        tags = list(record["tags"])
        if draw(st.booleans()):
            tags[draw(st.integers(0, len(tags) - 1))] = draw(bad_tag)
        else:
            tags = tags + ["O"] if draw(st.booleans()) else tags[:-1]
        record["tags"] = tags
    elif kind == "empty_token":
        tokens = list(record["tokens"])
        tokens[draw(st.integers(0, len(tokens) - 1))] = draw(blank)
        record["tokens"] = tokens
    else:
        record["command"] = None  # the other lines have one
    return number, json.dumps(record, ensure_ascii=False).encode()


@FUZZ
@given(jsonl_damage())
def test_malformed_jsonl_is_a_data_error_with_file_and_line(damage):
    number, bad = damage
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.jsonl"
        lines = [json.dumps(GOOD, ensure_ascii=False).encode()] * LINES
        lines[number - 1] = bad
        path.write_bytes(b"\n".join(lines) + b"\n")
        _assert_named_error(read_jsonl_split, path, rf"{re.escape(str(path))}:{number}: ")


MASSIVE_GOOD = {"partition": "train", "annot_utt": "gọi [person : mẹ] lúc [time : năm giờ]", "intent": "call",
                "scenario": "calling"}


@st.composite
def massive_damage(draw):
    number = draw(st.integers(1, LINES))
    record = dict(MASSIVE_GOOD)
    kind = draw(st.sampled_from(["bracket", "annot_type", "label", "partition", "missing", "line"]))
    if kind == "line":
        return number, _line_damage(json.dumps(record, ensure_ascii=False).encode(), draw)
    if kind == "bracket":  # insert a bracket anywhere, or delete one of the four
        text = record["annot_utt"]
        if draw(st.booleans()):
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.sampled_from(["[", "]"])) + text[at:]
        else:
            at = draw(st.sampled_from([m.start() for m in re.finditer(r"[\[\]]", text)]))
            text = text[:at] + text[at + 1:]
        record["annot_utt"] = text
    elif kind == "annot_type":
        record["annot_utt"] = draw(not_a_string)
    elif kind == "label":
        field = draw(st.sampled_from(["intent", "scenario"]))
        value = draw(st.one_of(not_a_string, blank))
        record[field] = None if field == "scenario" and value is None else value
        if field == "scenario" and record[field] is None:
            record[field] = draw(blank)  # null scenario is allowed (no command); blank is not
    elif kind == "partition":
        record["partition"] = draw(st.one_of(not_a_string, st.sampled_from(["validation", "TRAIN", ""])))
    else:
        del record[draw(st.sampled_from(["annot_utt", "intent"]))]
    return number, json.dumps(record, ensure_ascii=False).encode()


@FUZZ
@given(massive_damage())
def test_malformed_massive_is_a_data_error_with_file_and_line(damage):
    number, bad = damage
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vi-VN.jsonl"
        lines = [json.dumps(MASSIVE_GOOD, ensure_ascii=False).encode()] * LINES
        lines[number - 1] = bad
        lines += [json.dumps({**MASSIVE_GOOD, "partition": p}, ensure_ascii=False).encode() for p in ("dev", "test")]
        path.write_bytes(b"\n".join(lines) + b"\n")
        _assert_named_error(read_massive, path, rf"{re.escape(str(path))}:{number}: ")


@st.composite
def jointbert_damage(draw):
    """(file the damage is in, line number or None for a file-level error, {file: lines})."""
    number = draw(st.integers(1, LINES))
    files = {"seq.in": [" ".join(GOOD["tokens"]).encode()] * LINES,
             "seq.out": [" ".join(GOOD["tags"]).encode()] * LINES,
             "label": [b"call"] * LINES, "command": [b"call.voice"] * LINES}
    kind = draw(st.sampled_from(["bytes", "bad_tag", "tag_count", "blank", "missing_line"]))
    name = draw(st.sampled_from(sorted(files)))
    where = name
    if kind == "bytes":
        line = files[name][number - 1]
        at = draw(st.integers(0, len(line)))
        files[name][number - 1] = line[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x80"])) + line[at:]
    elif kind == "bad_tag":
        tags = GOOD["tags"].copy()
        tags[draw(st.integers(0, len(tags) - 1))] = draw(bad_tag)
        files["seq.out"][number - 1], where = " ".join(tags).encode(), "seq.out"
    elif kind == "tag_count":  # one token more or less on either side: reported on the seq.out line
        side = draw(st.sampled_from(["seq.in", "seq.out"]))
        words = files[side][number - 1].split()
        files[side][number - 1] = b" ".join(words + [b"O"] if draw(st.booleans()) else words[:-1])
        where = "seq.out"
    elif kind == "blank":
        name = draw(st.sampled_from(["seq.in", "label", "command"]))
        files[name][number - 1], where = draw(blank).encode(), name
        if number == LINES:  # trailing blank lines are dropped: then the files no longer align
            return r"(seq\.out|label|command)", None, files
    else:  # files no longer line-aligned: a file-level error
        name = draw(st.sampled_from(["seq.out", "label", "command"]))
        del files[name][number - 1]
        return name, None, files
    return where, number, files


@FUZZ
@given(jointbert_damage())
def test_malformed_jointbert_is_a_data_error_with_file_and_line(damage):
    where, number, files = damage
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, lines in files.items():
            (folder / name).write_bytes(b"\n".join(lines) + b"\n")
        where = where if number is None else re.escape(where)  # file-level cases give a pattern
        prefix = re.escape(str(folder)) + "/" + where + (rf":{number}: " if number else ": ")
        _assert_named_error(read_jointbert_split, folder, prefix)


def _assert_named_error(reader, path: Path, prefix: str) -> None:
    try:
        reader(path)
    except DataError as err:
        assert re.match(prefix, str(err)), f"{err} does not start with {prefix}"
        assert "\n" not in str(err)
        return
    raise AssertionError(f"malformed input accepted by {reader.__name__}: {path}")
