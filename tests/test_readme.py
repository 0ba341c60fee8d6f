"""The README is the contract users read: its commands and flag table must match the code."""
import re
from dataclasses import fields
from pathlib import Path

from config import Config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_flag_is_documented():
    documented = set(re.findall(r"^\| `--(\w+)` \|", README, flags=re.MULTILINE))
    assert documented == {f.name for f in fields(Config)}


def test_ci_runs_exactly_the_readme_test_command():
    test_command = next(line for line in README.splitlines() if line.endswith("-m pytest -q tests"))
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_no_unfilled_placeholders():
    assert "PLACEHOLDER" not in README
