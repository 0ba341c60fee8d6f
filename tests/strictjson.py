"""A strict JSON parser for the files the repo writes: RFC 8259 has no NaN or Infinity token."""
from __future__ import annotations

import json
from pathlib import Path


def _refuse(token: str):
    raise ValueError(f"not JSON: the bare token {token}")


def parse_strict(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity, as jq --seq or JavaScript's JSON.parse would."""
    return json.loads(text, parse_constant=_refuse)


def parse_every_json_file(folder: Path) -> list[Path]:
    """Parse every *.json and *.jsonl file under `folder` strictly (each line of a .jsonl); the files parsed."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix in (".json", ".jsonl") and p.is_file())
    for path in files:
        text = path.read_text(encoding="utf-8")
        chunks = [line for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" else [text]
        for number, chunk in enumerate(chunks, 1):
            try:
                parse_strict(chunk)
            except ValueError as err:
                raise AssertionError(f"{path} (chunk {number}): {err}") from None
    return files
