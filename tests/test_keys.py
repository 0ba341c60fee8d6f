"""The metric vocabulary: spelled once (telemetry/keys.py), and every key a reader reads is written."""
import ast
import math
from pathlib import Path

import pytest

from nlu_collapse import train
from nlu_collapse.analysis import dashboard, plots, records, report
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.record import read_history

ROOT = Path(__file__).resolve().parent.parent
NAMESPACES = ("loss/", "lambda/", "grad/", "dist/", "health/", "val/", "test/", "final/", "best/", "perf/")


def _string_constants(tree: ast.AST):
    """String literals of a module, docstrings left out (they document keys, they do not spell them)."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


def test_no_module_but_keys_spells_a_metric_key():
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in ("tests", ".venv") or relative == Path("telemetry/keys.py"):
            continue
        for node in _string_constants(ast.parse(path.read_text(encoding="utf-8"))):
            if node.value.startswith(NAMESPACES):
                offenders.append(f"{relative}:{node.lineno}: {node.value!r}")
    assert offenders == []


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, small_data):
    out = tmp_path_factory.mktemp("keys-run")
    summary = train.main([f"--data={small_data}", f"--output_dir={out}", "--wandb_mode=disabled", "--threads=1",
                          "--epochs=1", "--max_steps=6", "--task_grad_every=1"])
    history = read_history(out / summary["run_id"] / "history.jsonl")
    return summary, {key for row in history for key in row}


def test_every_key_the_readers_read_is_written_by_a_real_run(short_run):
    summary, logged = short_run
    history_readers = {
        "dashboard": dashboard.history_keys(),
        "plots": {key for _, panel_keys, _, _ in plots.PANELS for key in panel_keys},
        "records (W&B history)": set(records.HISTORY_KEYS),
    }
    for reader, wanted in history_readers.items():
        assert wanted - logged == set(), reader
    summary_readers = {
        "dashboard": set(dashboard.FINAL_METRICS),
        "report": {key for _, key, _, _ in report.ROWS} | {key for _, key in report.EFFECT_METRICS}
        | {keys.FIRST_NONFINITE_STEP, keys.EPISODES},
    }
    for reader, wanted in summary_readers.items():
        assert wanted - set(summary) == set(), reader
    assert keys.entity_types_in(summary, "test")  # per-type rows the report's type deltas read


def test_one_name_per_quantity_train_batch_and_eval_split(short_run):
    summary, logged = short_run
    for leaf in (keys.PRED_NON_O, keys.MASKED_PRED):
        assert keys.entity_dist(leaf) in logged
        assert keys.split_metric("test", keys.entity_eval(leaf)) in summary
        assert keys.split_metric("dev", keys.entity_eval(leaf)) in logged
    assert math.isfinite(summary[keys.BEST_VAL_ENTITY_F1])
