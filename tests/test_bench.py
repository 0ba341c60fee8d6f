"""The bench's own measurements: the bare loop does train.py's work, and peak memory is the run's own."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import bench
from bench.bench import bare_rate
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.record import read_history
from tests.datasets import write_imbalanced

ROOT = Path(__file__).resolve().parent.parent


def test_bare_loop_computes_what_train_py_computes(tmp_path):
    """The ceiling (bare loop / Trainer) is only a ceiling if the bare loop trains the same batches
    with the same model, loss and optimizer: its losses equal train.py's, step for step, bit for bit,
    here on imbalanced data whose 70 sentences make a short third batch before the second epoch."""
    from nlu_collapse import train
    data = write_imbalanced(tmp_path / "imbalanced", n_train=70, n_eval=40)
    flags = [f"--data={data}", "--threads=1"]
    losses: list[float] = []
    rate = bare_rate(6, 1, tmp_path / "bare", losses=losses, flags=flags)  # 32 + 32 + 6, then epoch 2
    summary = train.main(["--max_steps=6", "--epochs=100", f"--output_dir={tmp_path / 'train'}", "--run_id=r",
                          "--wandb_mode=disabled", *flags])
    logged = [row[keys.LOSS_TOTAL] for row in read_history(tmp_path / "train" / "r" / "history.jsonl")
              if keys.LOSS_TOTAL in row]
    assert rate > 0 and summary[keys.STATUS] == "finished"
    assert losses == logged[:6] and len(set(losses)) == 6


def test_peak_memory_is_the_command_s_own_not_the_parent_s(tmp_path):
    """A child forked from a large process reports that process's size as its peak (Linux keeps the
    high-water mark across exec): bench/peak_rss.py, started from a small interpreter, does not."""
    ballast = bytearray(400 * 1024 * 1024)  # 400 MiB, touched: resident in this (the parent) process
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    command = [sys.executable, "-c", "x = bytearray(50 * 1024 * 1024)"]
    direct = subprocess.Popen(command)
    _, _, usage = os.wait4(direct.pid, 0)
    measured = json.loads(subprocess.run([sys.executable, str(ROOT / "bench" / "peak_rss.py"), *command],
                                         capture_output=True, text=True, check=True).stdout)
    assert usage.ru_maxrss / 1024 > 400  # the artefact is real here: the parent's size
    assert measured["returncode"] == 0 and 50 < measured["peak_mib"] < 120
    del ballast


def test_peak_rss_says_what_is_wrong_without_a_traceback():
    for argv, expected in (([], "usage: python bench/peak_rss.py COMMAND"),
                           (["no-such-command-here"], "error: cannot start 'no-such-command-here'")):
        result = subprocess.run([sys.executable, str(ROOT / "bench" / "peak_rss.py"), *argv],
                                capture_output=True, text=True)
        assert result.returncode == 1 and expected in result.stderr and "Traceback" not in result.stderr


def test_the_goals_are_measured_on_the_readme_s_own_commands(capsys):
    main_job, tests = bench.readme_command("analysis/reproduce.py"), bench.readme_command("pytest")
    assert main_job.split(" && ")[-1] == ".venv/bin/python analysis/reproduce.py"
    assert (ROOT / ".ci" / "run").read_text().strip().endswith(tests.split(" && ")[-1])  # CI runs the same tests
    bench.print_goals([("a", "1.2", ">= 1.0", True), ("b", "9 min", "<= 8 min", False)])
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[-2:] == ["| a | 1.2 | >= 1.0 | met |", "| b | 9 min | <= 8 min | not met |"]


def _process_state() -> tuple:
    """What a script's main could leave changed for the next test in the same process."""
    import logging

    import torch

    loggers = ("train", "transformers", "nlu_collapse.telemetry.tracking")
    return (logging.root.manager.disable, torch.get_num_threads(),
            *(logging.getLogger(name).getEffectiveLevel() for name in loggers))


def test_a_measuring_script_writes_its_block_with_its_command_and_keeps_the_page(tmp_path, monkeypatch, capsys):
    """bench/outcomes.py --write_docs (the same docpage helper as every bench script): what it prints goes into
    its measured block on a page written by the test, the command as typed in the block's header, the page's
    prose kept; a second run replaces the block in place; a run that fails leaves the page as it was."""
    from bench import outcomes
    from nlu_collapse import docpage

    page = tmp_path / "verdict.md"
    page.write_text("# Verdict\n\nprose before\n", encoding="utf-8")
    monkeypatch.setattr(outcomes, "PAGE", page)
    before = _process_state()
    outcomes.main(["--steps", "2", "--seeds", "0", "--write_docs"])
    assert _process_state() == before
    printed = capsys.readouterr().out
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Verdict\n\nprose before\n\n<!-- measured: outcomes (python bench/outcomes.py --steps 2 "
                           "--seeds 0 --write_docs) sha256=")
    assert docpage.problems(text, "page") == []
    rows = [line for line in printed.splitlines() if line.startswith("| phone-assistant")]
    assert len(rows) == 2 and all(row in text for row in rows)
    page.write_text(text + "\nprose after\n", encoding="utf-8")
    outcomes.main(["--steps", "3", "--seeds", "1", "--write_docs"])
    again = page.read_text(encoding="utf-8")
    assert again.count("<!-- measured: outcomes") == 1 and again.endswith("\nprose after\n")
    assert "| 3 | 1 |" in again and "| 2 | 0 |" not in again

    def broken(*args, **kwargs):
        print("| half a table |")
        raise RuntimeError("killed half-way")

    monkeypatch.setattr(outcomes.train, "main", broken)
    with pytest.raises(RuntimeError, match="killed half-way"):
        outcomes.main(["--steps", "2", "--seeds", "0", "--write_docs"])
    assert page.read_text(encoding="utf-8") == again


@pytest.mark.parametrize("script, argv, page_name", [
    ("ring_cost", ["--rounds=1", "--flags=--max_steps=3 --threads=1"], "fixes.md"),
    ("toolkit_cost", ["--rounds=1", "--steps=2"], "toolkit.md"),
    ("segmenters", ["--n=30"], "predict.md"),
])
def test_every_measuring_script_writes_its_block_on_a_tiny_budget(script, argv, page_name, tmp_path, monkeypatch):
    """Each script's --write_docs path end to end, at the smallest budget: the block lands on the page its PAGE
    names, under its own name and with the command as typed, and carries what the script measured."""
    import importlib

    from nlu_collapse import docpage

    module = importlib.import_module(f"bench.{script}")
    assert module.PAGE.name == page_name and module.PAGE.exists()
    page = tmp_path / page_name
    page.write_text("# Page\n", encoding="utf-8")
    monkeypatch.setattr(module, "PAGE", page)
    # under pytest tests/datasets.py is importable as `datasets`: Trainer would take it for Hugging Face's
    monkeypatch.setattr("transformers.trainer.is_datasets_available", lambda: False)
    before = _process_state()
    module.main([*argv, "--write_docs"])
    assert _process_state() == before  # called as a function, it leaves logging and threads as they were
    text = page.read_text(encoding="utf-8")
    name = script.replace("_", "-")
    assert f"<!-- measured: {name} (python bench/{script}.py {' '.join(argv)} --write_docs) sha256=" in text
    assert docpage.problems(text, page_name) == []
    body = docpage.read(text, name)
    assert body.count("\n|") >= 3  # a header, its rule and at least one measured row
