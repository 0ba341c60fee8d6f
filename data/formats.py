"""Readers (and a writer) for the dataset formats people already have.

- `jsonl`: native, one object a line: {"tokens": [...], "tags": [...], "intent": "...", "command": "..."}
  in `train.jsonl`, `dev.jsonl`, `test.jsonl` (`command` may be absent or null everywhere).
- `jointbert`: the JointBERT / JointIDSF folder used for ATIS, SNIPS and PhoATIS:
  `{train,dev,test}/seq.in` (space-separated tokens), `seq.out` (one BIO tag a token),
  `label` (intent; `a#b` multi-intent labels are classes of their own), and an optional
  line-aligned `command` file. Without it the command head is disabled.
- `massive`: Amazon MASSIVE JSONL. `annot_utt` brackets `[slot : value]` become BIO tags,
  `intent` -> intent, `scenario` -> command. Either one file with a `partition` field
  (as MASSIVE ships `vi-VN.jsonl`) or a folder of `train/dev/test.jsonl`.

Every reader reports bad input as `DataError("<file>:<line>: ...")`.
An `I-X` tag that does not continue an `X` span is repaired to `B-X` (the conlleval
convention) with a warning that counts the repairs and names the first place.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from nlu_collapse.safeio import DuplicateKeyError, decode_utf8, json_text, loads_unique

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
FORMATS = ("jsonl", "jointbert", "massive")
TAG_RE = re.compile(r"O|[BI]-\S+")  # used with fullmatch: `$` would also accept a trailing newline


class DataError(ValueError):
    """Input data that cannot be read; the message names the file and line."""


@dataclass
class Example:
    tokens: list[str]
    tags: list[str]
    intent: str
    command: str | None = None


def check_tags(tokens: list[str], tags: list[str], where: str, repairs: list[str]) -> list[str]:
    """Validate one sentence's tokens and BIO tags; returns the tags with orphan `I-X` repaired to `B-X`."""
    if not tokens:
        raise DataError(f"{where}: empty sentence (expected at least one token)")
    for position, token in enumerate(tokens, start=1):
        if not token.strip():  # a blank word is a data error; one the tokenizer drops is reported by train.py
            raise DataError(f"{where}: token {position} is {token!r} (expected a non-empty word)")
    if len(tokens) != len(tags):
        raise DataError(f"{where}: {len(tokens)} tokens but {len(tags)} tags (expected one tag per token)")
    fixed = []
    previous = "O"
    for tag in tags:
        if not TAG_RE.fullmatch(tag):
            raise DataError(f"{where}: malformed tag {tag!r} (expected O, B-<TYPE> or I-<TYPE>)")
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            repairs.append(where)
            tag = "B-" + tag[2:]
        fixed.append(tag)
        previous = tag
    return fixed


def _warn_repairs(repairs: list[str]) -> None:
    if repairs:
        log.warning("repaired %d orphan I- tags to B- (first at %s)", len(repairs), repairs[0])


def _nonempty(examples: list[Example], path: Path) -> list[Example]:
    if not examples:
        raise DataError(f"{path}: split is empty (expected at least one sentence)")
    return examples


def _read_lines(path: Path) -> list[str]:
    """Lines split on newlines only (not on U+2028 and friends, which may sit inside text); a BOM and
    trailing blank lines are dropped."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        text = decode_utf8(path.read_bytes(), path)
    except ValueError as err:
        raise DataError(str(err)) from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _json_objects(path: Path):
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = loads_unique(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: invalid JSON ({err.msg} at column {err.colno})") from None
        except DuplicateKeyError as err:
            raise DataError(f"{path}:{number}: {err} (expected each field once)") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield f"{path}:{number}", record


def _label(record: dict, key: str, where: str, optional: bool = False) -> str | None:
    """A sentence-level label: a non-empty string (or, if `optional`, null/absent)."""
    value = record.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value.strip()


def _same_command_presence(examples: list[Example], places: list[str]) -> None:
    """Commands on every sentence or on none: a null among them names its line, not a later traceback."""
    present = [ex.command is not None for ex in examples]
    if any(present) and not all(present):
        odd = present.index(not present[0]) if present.count(present[0]) > 1 else 0
        raise DataError(f"{places[odd]}: command is {'missing or null' if not present[odd] else 'set'} while "
                        f"{places[0 if odd else 1]} {'has one' if not present[odd] else 'has none'} "
                        "(expected a command for every sentence or for none)")


def read_jsonl_split(path: Path) -> list[Example]:
    examples, repairs, places = [], [], []
    for where, record in _json_objects(path):
        missing = [key for key in ("tokens", "tags", "intent") if key not in record]
        if missing:
            raise DataError(f"{where}: missing key(s) {missing} (expected tokens, tags, intent[, command])")
        for key in ("tokens", "tags"):
            if not isinstance(record[key], list) or not all(isinstance(t, str) for t in record[key]):
                raise DataError(f"{where}: {key} must be a list of strings")
        intent, command = _label(record, "intent", where), _label(record, "command", where, optional=True)
        tags = check_tags(record["tokens"], record["tags"], where, repairs)
        examples.append(Example(record["tokens"], tags, intent, command))
        places.append(where)
    _same_command_presence(examples, places)
    _warn_repairs(repairs)
    return _nonempty(examples, path)


def jsonl_text(examples: list[Example], extra: list[dict] | None = None) -> str:
    """Native JSONL, one record a line; `extra` adds fields to each record (readers ignore unknown keys)."""
    lines = []
    for i, ex in enumerate(examples):
        record = {"tokens": ex.tokens, "tags": ex.tags, "intent": ex.intent, "command": ex.command}
        lines.append(json_text(record | (extra[i] if extra else {})) + "\n")
    return "".join(lines)


def write_jsonl_split(path: Path, examples: list[Example]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(jsonl_text(examples), encoding="utf-8")


def read_jointbert_split(folder: Path) -> list[Example]:
    seq_in, seq_out, labels = (_read_lines(folder / name) for name in ("seq.in", "seq.out", "label"))
    command_file = folder / "command"
    commands = _read_lines(command_file) if command_file.exists() else None
    for name, lines in (("seq.out", seq_out), ("label", labels), ("command", commands)):
        if lines is not None and len(lines) != len(seq_in):
            raise DataError(f"{folder / name}: {len(lines)} lines but seq.in has {len(seq_in)} "
                            "(expected line-aligned files)")
    examples, repairs = [], []
    for i, (text, tag_line, intent) in enumerate(zip(seq_in, seq_out, labels)):
        where = f"{folder / 'seq.out'}:{i + 1}"
        tokens = text.split()
        if not tokens:
            raise DataError(f"{folder / 'seq.in'}:{i + 1}: empty sentence (expected at least one token)")
        tags = check_tags(tokens, tag_line.split(), where, repairs)
        if not intent.strip():
            raise DataError(f"{folder / 'label'}:{i + 1}: empty intent label")
        command = commands[i].strip() if commands is not None else None
        if command == "":
            raise DataError(f"{command_file}:{i + 1}: empty command label")
        examples.append(Example(tokens, tags, intent.strip(), command))
    _warn_repairs(repairs)
    return _nonempty(examples, folder / "seq.in")


def write_jointbert_split(folder: Path, examples: list[Example]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "seq.in").write_text("".join(" ".join(e.tokens) + "\n" for e in examples), encoding="utf-8")
    (folder / "seq.out").write_text("".join(" ".join(e.tags) + "\n" for e in examples), encoding="utf-8")
    (folder / "label").write_text("".join(e.intent + "\n" for e in examples), encoding="utf-8")
    if all(e.command is not None for e in examples):
        (folder / "command").write_text("".join(e.command + "\n" for e in examples), encoding="utf-8")


def parse_massive_annotation(annot_utt: str, where: str) -> tuple[list[str], list[str]]:
    """`wake me at [time : five am]` -> tokens and BIO tags (`B-time I-time`).

    Strict: every `[` closes with `]` before the next `[` (no nesting), holds `slot : value` with a
    non-empty slot name and value, and no `]` stands alone; anything else is a DataError.
    """
    tokens, tags = [], []
    position = 0
    while position < len(annot_utt):
        opening = annot_utt.find("[", position)
        outside = annot_utt[position:] if opening < 0 else annot_utt[position:opening]
        if "]" in outside:
            column = position + outside.index("]") + 1
            raise DataError(f"{where}: unbalanced bracket: ']' without '[' at column {column} "
                            f"in annot_utt {annot_utt!r}")
        tokens += outside.split()
        tags += ["O"] * len(outside.split())
        if opening < 0:
            break
        closing = annot_utt.find("]", opening + 1)
        nested = annot_utt.find("[", opening + 1)
        if closing < 0:
            raise DataError(f"{where}: unbalanced bracket: '[' at column {opening + 1} is never closed "
                            f"in annot_utt {annot_utt!r}")
        if 0 <= nested < closing:
            raise DataError(f"{where}: nested bracket: '[' at column {nested + 1} (slots cannot nest) "
                            f"in annot_utt {annot_utt!r}")
        slot, colon, value = annot_utt[opening + 1:closing].partition(":")
        slot, words = slot.strip(), value.split()
        if not colon or not slot or len(slot.split()) != 1:
            raise DataError(f"{where}: slot at column {opening + 1} is not '[name : value]' in annot_utt {annot_utt!r}")
        if not words:
            raise DataError(f"{where}: empty slot value for {slot!r} in annot_utt")
        tokens += words
        tags += [f"B-{slot}"] + [f"I-{slot}"] * (len(words) - 1)
        position = closing + 1
    return tokens, tags


def _massive_example(where: str, record: dict, repairs: list[str]) -> Example:
    missing = [key for key in ("annot_utt", "intent") if key not in record]
    if missing:
        raise DataError(f"{where}: missing key(s) {missing} (expected MASSIVE annot_utt, intent, scenario)")
    if not isinstance(record["annot_utt"], str):
        raise DataError(f"{where}: annot_utt must be a string, got {record['annot_utt']!r}")
    intent, scenario = _label(record, "intent", where), _label(record, "scenario", where, optional=True)
    tokens, tags = parse_massive_annotation(record["annot_utt"], where)
    return Example(tokens, check_tags(tokens, tags, where, repairs), intent, scenario)


def read_massive(path: Path) -> dict[str, list[Example]]:
    """One MASSIVE locale file (split by `partition`) or a folder of train/dev/test.jsonl."""
    repairs: list[str] = []
    if path.is_dir():
        splits = {s: [_massive_example(w, r, repairs) for w, r in _json_objects(path / f"{s}.jsonl")]
                  for s in SPLITS}
        for s in SPLITS:
            _nonempty(splits[s], path / f"{s}.jsonl")
    else:
        splits = {s: [] for s in SPLITS}
        for where, record in _json_objects(path):
            partition = record.get("partition")
            if not isinstance(partition, str) or partition not in splits:
                raise DataError(f"{where}: partition {partition!r} (expected one of {list(SPLITS)})")
            splits[partition].append(_massive_example(where, record, repairs))
        for s in SPLITS:
            if not splits[s]:
                raise DataError(f"{path}: no sentence with partition {s!r} (expected train, dev and test)")
    _warn_repairs(repairs)
    return splits


def detect_format(path: Path) -> str:
    """Guess the format of a dataset path from its layout and first record."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir() and (path / "train" / "seq.in").exists():
        return "jointbert"
    first = path / "train.jsonl" if path.is_dir() else path
    if first.suffix == ".jsonl" and first.is_file():
        for where, record in _json_objects(first):
            if "annot_utt" in record:
                return "massive"
            if "tokens" in record and path.is_dir():
                return "jsonl"
            break
    raise DataError(f"{path}: unknown dataset format (expected a folder with train/seq.in (jointbert), "
                    "train/dev/test.jsonl with tokens/tags (jsonl) or annot_utt (massive), "
                    "or a MASSIVE .jsonl file); set --data_format to one of " + ", ".join(FORMATS))


def read_splits(path: Path, data_format: str) -> dict[str, list[Example]]:
    if data_format == "jsonl":
        return {s: read_jsonl_split(path / f"{s}.jsonl") for s in SPLITS}
    if data_format == "jointbert":
        return {s: read_jointbert_split(path / s) for s in SPLITS}
    if data_format == "massive":
        return read_massive(path)
    raise DataError(f"--data_format={data_format!r}: expected auto or one of {', '.join(FORMATS)}")
