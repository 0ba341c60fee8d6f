"""Measured blocks (docpage.py): written by their command, kept in place, and a hand edit caught by --check."""
from nlu_collapse import docpage


def test_a_block_is_written_into_its_page_and_the_rest_kept(tmp_path):
    page = tmp_path / "perf.md"
    page.write_text("# Performance\n\nProse before.\n", encoding="utf-8")
    first = docpage.write(page, "bench", "python bench/bench.py --steps=3", "| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert first.startswith("# Performance\n\nProse before.\n\n<!-- measured: bench (python bench/bench.py --steps=3)")
    assert "Written by `python bench/bench.py --steps=3` at commit " in first
    assert docpage.problems(first, "perf.md") == []
    # prose after the block, then a second write: replaced in place, nothing else moves
    page.write_text(first + "\nProse after.\n", encoding="utf-8")
    second = docpage.write(page, "bench", "python bench/bench.py --steps=3", "| a | b |\n|---|---|\n| 7 | 8 |\n")
    assert second.count("<!-- measured: bench ") == 1 and "| 7 | 8 |" in second and "| 1 | 2 |" not in second
    assert second.startswith("# Performance\n\nProse before.\n\n") and second.endswith("\nProse after.\n")
    assert docpage.problems(second, "perf.md") == []


def test_two_blocks_on_one_page_are_independent(tmp_path):
    page = tmp_path / "p.md"
    docpage.write(page, "one", "cmd one", "first\n")
    text = docpage.write(page, "two", "cmd two", "second\n")
    text = docpage.write(page, "one", "cmd one", "first, again\n")
    assert "first, again" in text and "second" in text and text.count("<!-- /measured: ") == 2
    assert docpage.problems(text, "p.md") == []


def test_a_hand_edit_or_damaged_marker_is_named():
    text = docpage.provenance("python bench/bench.py")
    body = text + "\n| 1 | 2 |\n"
    good = f"<!-- measured: bench (python bench/bench.py) sha256={docpage.stamp(body)} -->\n{body}<!-- /measured: bench -->\n"
    assert docpage.problems(good, "docs/performance.md") == []
    edited = good.replace("| 1 | 2 |", "| 1 | 3 |")
    [problem] = docpage.problems(edited, "docs/performance.md")
    assert "docs/performance.md" in problem and "'bench'" in problem and "python bench/bench.py" in problem
    truncated = good[: good.index("<!-- /measured")]
    assert any("markers are damaged" in p for p in docpage.problems(truncated, "docs/performance.md"))
    renamed_end = good.replace("<!-- /measured: bench -->", "<!-- /measured: other -->")
    assert docpage.problems(renamed_end, "x.md")


def test_printed_into_shows_and_writes_what_was_printed_and_a_crash_keeps_the_old_block(tmp_path, capsys):
    """A bench's printout reaches the console and the block; a bench that fails half-way writes nothing, so the
    last whole measurement stays on the page."""
    import pytest

    page = tmp_path / "perf.md"
    with docpage.printed_into(page, "bench", "python bench/bench.py"):
        print("# Bench: 3 steps")
        print("| loop | steps/s |")
    shown = capsys.readouterr().out
    assert shown == "# Bench: 3 steps\n| loop | steps/s |\n"
    text = page.read_text(encoding="utf-8")
    assert "\nBench: 3 steps\n| loop | steps/s |\n<!-- /measured: bench -->" in text  # a comment, not a heading
    assert docpage.problems(text, "perf.md") == []
    with pytest.raises(RuntimeError):
        with docpage.printed_into(page, "bench", "python bench/bench.py"):
            print("| half a table")
            raise RuntimeError("killed half-way")
    assert page.read_text(encoding="utf-8") == text


def test_a_placeholder_places_the_first_block_and_only_that_block(tmp_path):
    """Prose puts `<!-- measured: NAME -->` where a block belongs before it was ever measured: the first write fills
    it there (not at the end), another block's placeholder is left alone, and a placeholder is not damage."""
    page = tmp_path / "results.md"
    page.write_text("# R\n\n## Held out\n\n<!-- measured: heldout -->\n\n## Later\n\n<!-- measured: other -->\n\nend\n",
                    encoding="utf-8")
    assert docpage.problems(page.read_text(encoding="utf-8"), "results.md") == []
    text = docpage.write(page, "heldout", "python analysis/heldout.py x --write_docs", "| a |\n|---|\n| 1 |\n")
    before, after = text.split("## Later")
    assert "<!-- measured: heldout (python analysis/heldout.py x --write_docs) sha256=" in before and "| 1 |" in before
    assert "<!-- measured: heldout -->" not in text and after == "\n\n<!-- measured: other -->\n\nend\n"
    assert docpage.problems(text, "results.md") == []
    again = docpage.write(page, "heldout", "python analysis/heldout.py x --write_docs", "| a |\n|---|\n| 2 |\n")
    assert again.count("<!-- measured: heldout") == 1 and "| 2 |" in again.split("## Later")[0]
