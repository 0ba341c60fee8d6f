"""Write the examples' output into docs/toolkit.md, between its markers (the toolkit's measured cost is a
measured block of `python bench/toolkit_cost.py --write_docs`).

    python examples/write_docs.py                 # both examples, each in a fresh process (about a minute)

tests/test_toolkit.py checks that the examples' blocks are what the examples print today.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "toolkit.md"
EXAMPLES = ("examples/plain_loop.py", "examples/hf_trainer_token_classification.py")


def markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"


def block(text: str, name: str) -> str:
    """The text between `name`'s markers in `text`."""
    begin, end = markers(name)
    return text[text.index(begin) + len(begin):text.index(end)].strip("\n")


def replace_block(text: str, name: str, content: str) -> str:
    begin, end = markers(name)
    return text[:text.index(begin) + len(begin)] + "\n" + content.strip("\n") + "\n" + text[text.index(end):]


def fenced(output: str) -> str:
    return f"```text\n{output.strip()}\n```"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    text = DOCS.read_text(encoding="utf-8")
    for example in EXAMPLES:
        done = subprocess.run([sys.executable, example], cwd=ROOT, capture_output=True, text=True, check=True)
        text = replace_block(text, example, fenced(done.stdout))
    DOCS.write_text(text, encoding="utf-8")
    print(f"wrote {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
