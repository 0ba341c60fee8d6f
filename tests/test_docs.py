"""README.md and docs/ do not drift from the code: every generated block is today's output of its source,
the README is short, and every repo path and train.py flag named in the prose exists."""
import importlib.util
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from nlu_collapse import docpage
from nlu_collapse.config import Config

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_spec = importlib.util.spec_from_file_location("docs_build", ROOT / "docs" / "build.py")
build = importlib.util.module_from_spec(_spec)  # docs/build.py: the one place the generated blocks are made
_spec.loader.exec_module(build)


def test_every_generated_block_is_up_to_date():
    """Runs the README's quick-start commands as written, the forensics example, the fault-test collection, the
    dataset cards and every results table from the evidence, and compares with the pages."""
    result = subprocess.run([sys.executable, "docs/build.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_readme_is_a_five_minute_read():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


def test_the_quickstart_is_the_readme_block_and_collapses_then_recovers():
    commands = build.quickstart_commands()
    assert commands == [".venv/bin/python train.py --mask_value=-inf --gamma=3 --lambdas=old",
                        ".venv/bin/python train.py"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = readme.split("<!-- generated: quickstart", 1)[1].split("<!-- /generated: quickstart", 1)[0]
    collapsed, healthy = [line for line in shown.splitlines() if line.startswith("[<run_id>]")]
    assert ": collapsed at step 1" in collapsed and "losses/focal.py" in collapsed
    assert ": healthy |" in healthy


def test_every_flag_is_in_the_generated_reference():
    page = (ROOT / "docs" / "flags.md").read_text(encoding="utf-8")
    assert set(re.findall(r"^\| `--(\w+)` \|", page, flags=re.MULTILINE)) == {f.name for f in fields(Config)}


def _prose(text: str) -> str:
    """A page without its generated blocks (their sources are checked above)."""
    return build.BLOCK_RE.sub("", text)


def test_every_repo_path_named_in_the_docs_exists():
    missing = []
    for page in PAGES:
        for path in re.findall(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|md|yaml|png|jsonl))`", _prose(page.read_text("utf-8"))):
            if not (ROOT / path).exists() and "<" not in path and not path.startswith(("results/", "runs/", "my-data/")):
                missing.append(f"{page.name}: {path}")
        for link in re.findall(r"\]\(([\w./-]+\.(?:md|png))(?:#[\w-]+)?\)", page.read_text("utf-8")):
            if not (page.parent / link).exists():
                missing.append(f"{page.name}: link {link}")
    assert missing == []


def test_every_train_flag_named_in_the_docs_exists():
    # besides train.py's own: argparse's --help, pytest's --dist, `wandb login --host`, the form --key=value
    known = {f.name for f in fields(Config)} | {"help", "dist", "host", "key"}
    sources = "\n".join(p.read_text("utf-8", errors="replace") for p in ROOT.rglob("*.py") if ".venv" not in p.parts)
    unknown = []
    for page in PAGES:
        for flag in set(re.findall(r"(?<![\w-])--([a-z][a-z_]+)(?![\w-])", _prose(page.read_text("utf-8")))):
            if flag not in known and f'"--{flag}"' not in sources and f"'--{flag}'" not in sources:
                unknown.append(f"{page.name}: --{flag}")
    assert unknown == []


BENCH_PRINTOUT = """| one default run in a fresh process (python train.py, W&B offline) | seconds | share |
|---|---|---|
| whole process | 31.7 | 100% |

| goal (this run of the bench, this machine) | measured | goal | met |
|---|---|---|---|
| the main job from a fresh clone, installation included | 512 s (8.5 min) | <= 8 min | not met |
| the test suite (README's command, set-up excluded) | 233 s | <= 4 min | met |
"""


def test_the_readme_times_are_read_from_the_bench_block_and_follow_it(tmp_path):
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\nprose, and a table that is not the bench's:\n\n| whole process | 1.0 | 100% |\n",
                    encoding="utf-8")
    assert build.measured_times(page).startswith("Not measured at this version: `python bench/bench.py --goals")
    docpage.write(page, "bench", "python bench/bench.py --goals --write_docs", BENCH_PRINTOUT)
    line = build.measured_times(page)
    assert line.startswith("Measured by `python bench/bench.py --goals --write_docs` at commit ")
    assert "main job took 512 s (8.5 min)" in line and "the tests 233 s" in line and "run 31.7 s" in line
    # a bench printout without the goal rows (run without --goals) does not leave stale or invented times
    docpage.write(page, "bench", "python bench/bench.py", BENCH_PRINTOUT.split("\n\n")[0])
    assert build.measured_times(page).startswith("Not measured at this version")


def test_an_arguments_table_comes_from_the_docstring_and_refuses_one_that_drifted():
    class Documented:
        """A thing.

        Args:
            size: how many, across
                two lines.
            name: what it is called.
        """

        def __init__(self, size, name="x"):
            pass

    table = build.arguments_table(Documented)
    assert "| `size` | required | how many, across two lines. |" in table and "| `name` | `'x'` | what it is" in table

    class Drifted(Documented):
        def __init__(self, size, name="x", extra=1):
            pass

    Drifted.__doc__ = Documented.__doc__
    with pytest.raises(SystemExit, match=r"Drifted's docstring Args \(size, name\) do not name its parameters in "
                                         r"order \(size, name, extra\)"):
        build.arguments_table(Drifted)
