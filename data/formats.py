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

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
FORMATS = ("jsonl", "jointbert", "massive")
TAG_RE = re.compile(r"^(O|[BI]-\S+)$")


class DataError(ValueError):
    """Input data that cannot be read; the message names the file and line."""


@dataclass
class Example:
    tokens: list[str]
    tags: list[str]
    intent: str
    command: str | None = None


def check_tags(tokens: list[str], tags: list[str], where: str, repairs: list[str]) -> list[str]:
    """Validate one sentence's BIO tags; returns them with orphan `I-X` repaired to `B-X`."""
    if not tokens:
        raise DataError(f"{where}: empty sentence (expected at least one token)")
    if len(tokens) != len(tags):
        raise DataError(f"{where}: {len(tokens)} tokens but {len(tags)} tags (expected one tag per token)")
    fixed = []
    previous = "O"
    for tag in tags:
        if not TAG_RE.match(tag):
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
    lines = [line.rstrip("\r") for line in path.read_text(encoding="utf-8-sig").split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _json_objects(path: Path):
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: invalid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield f"{path}:{number}", record


def read_jsonl_split(path: Path) -> list[Example]:
    examples, repairs = [], []
    for where, record in _json_objects(path):
        missing = [key for key in ("tokens", "tags", "intent") if key not in record]
        if missing:
            raise DataError(f"{where}: missing key(s) {missing} (expected tokens, tags, intent[, command])")
        for key in ("tokens", "tags"):
            if not isinstance(record[key], list) or not all(isinstance(t, str) for t in record[key]):
                raise DataError(f"{where}: {key} must be a list of strings")
        for key in ("intent", "command"):
            if key in record and not isinstance(record[key], str) and not (key == "command" and record[key] is None):
                raise DataError(f"{where}: {key} must be a string, got {record[key]!r}")
        tags = check_tags(record["tokens"], record["tags"], where, repairs)
        examples.append(Example(record["tokens"], tags, record["intent"], record.get("command")))
    _warn_repairs(repairs)
    return _nonempty(examples, path)


def write_jsonl_split(path: Path, examples: list[Example]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for ex in examples:
            record = {"tokens": ex.tokens, "tags": ex.tags, "intent": ex.intent, "command": ex.command}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


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


MASSIVE_SLOT_RE = re.compile(r"\[\s*([^\]:]+?)\s*:\s*([^\]]*?)\s*\]")


def parse_massive_annotation(annot_utt: str, where: str) -> tuple[list[str], list[str]]:
    """`wake me at [time : five am]` -> tokens and BIO tags (`B-time I-time`)."""
    tokens, tags = [], []
    position = 0
    for match in MASSIVE_SLOT_RE.finditer(annot_utt):
        outside = annot_utt[position:match.start()]
        if "[" in outside or "]" in outside:
            raise DataError(f"{where}: unbalanced bracket in annot_utt {annot_utt!r}")
        tokens += outside.split()
        tags += ["O"] * len(outside.split())
        slot, value = match.group(1).strip(), match.group(2).split()
        if not value:
            raise DataError(f"{where}: empty slot value for {slot!r} in annot_utt")
        tokens += value
        tags += [f"B-{slot}"] + [f"I-{slot}"] * (len(value) - 1)
        position = match.end()
    rest = annot_utt[position:]
    if "[" in rest or "]" in rest:
        raise DataError(f"{where}: unbalanced bracket in annot_utt {annot_utt!r}")
    tokens += rest.split()
    tags += ["O"] * len(rest.split())
    return tokens, tags


def _massive_example(where: str, record: dict, repairs: list[str]) -> Example:
    missing = [key for key in ("annot_utt", "intent") if key not in record]
    if missing:
        raise DataError(f"{where}: missing key(s) {missing} (expected MASSIVE annot_utt, intent, scenario)")
    tokens, tags = parse_massive_annotation(record["annot_utt"], where)
    return Example(tokens, check_tags(tokens, tags, where, repairs), record["intent"], record.get("scenario"))


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
            if partition not in splits:
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
