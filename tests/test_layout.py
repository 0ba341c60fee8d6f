"""The house's structure, checked from the source: one owner of a run folder's layout, and an
import graph whose folders form no loop and whose floors are never climbed back up."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for p in ROOT.rglob("*.py") if p.name != "__init__.py" or p.parent != ROOT
                 if not {".venv", "tests", "results", "runs", "wandb", "build"} & set(p.relative_to(ROOT).parts))
# Names of a run or sweep folder's files: spelled in runfolder.py and nowhere else (docstrings aside).
# File names count wherever they stand; folder names (ordinary words) where a path is joined with them.
FILE_NAMES = ("config.json", "history.jsonl", "summary.json", "forensics.jsonl", "sweep.json", "best.pt", "last.pt",
              "last.prev.pt", ".lock", ".runner.lock", "fixes.json", "fixes.txt")
FOLDER_NAMES = ("checkpoints", "tokenizer", "encoder", "previous", "tables", "runs", "logs", "report", "ring")
# Floors, bottom first: a module may import its own floor and those below, never one above.
FLOORS = [{"config", "safeio", "runfolder", "commandline", "rng", "docpage", "telemetry.keys"}, {"data"}, {"model", "losses"},
          {"evaluation"}, {"telemetry"}, {"toolkit"}, {"train", "predict", "runner", "replay"},
          {"analysis", "sweeps", "bench", "scripts", "examples", "docs"}]
FIRST_PARTY = set().union(*FLOORS)
PACKAGE = "nlu_collapse"  # the installed name of this folder (pyproject.toml)
GENERIC = ("config", "train", "predict", "runfolder", "safeio", "data", "model", "losses", "evaluation", "telemetry",
           "runner", "analysis")


def test_no_folder_loop():
    """The folder graph (unit -> units it imports) has no cycle."""
    graph = {}
    for path in SOURCES:
        graph.setdefault(_unit(path), set()).update(_imports(ast.parse(path.read_text(encoding="utf-8"))))
    for unit in graph:
        graph[unit].discard(unit)
    seen, stack = set(), []

    def visit(unit):
        assert unit not in stack, f"import loop: {' -> '.join(stack[stack.index(unit):] + [unit])}"
        if unit in seen:
            return
        stack.append(unit)
        for other in graph.get(unit, ()):
            visit(other)
        stack.pop()
        seen.add(unit)

    for unit in graph:
        visit(unit)


def _unit(path: Path) -> str:
    """The top-level module or folder a file belongs to."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return "telemetry.keys" if parts[:2] == ("telemetry", "keys") else parts[0]


def _named(module: str) -> str:
    """The unit of an imported module: its name under nlu_collapse (`telemetry.keys` is a unit of its own)."""
    inside = module.removeprefix(f"{PACKAGE}.")
    if inside == module:
        return module.split(".")[0]  # not ours
    return "telemetry.keys" if inside == "telemetry.keys" else inside.split(".")[0]


def _floor(unit: str) -> int:
    return next(i for i, floor in enumerate(FLOORS) if unit in floor)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _imports(tree: ast.AST) -> set[str]:
    """First-party units imported; `telemetry.keys` (the metric-key vocabulary) is a unit of its own,
    since telemetry/__init__ imports no submodule."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {_named(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [f"{node.module}.{alias.name}" for alias in node.names] \
                if node.module in (PACKAGE, f"{PACKAGE}.telemetry") else [node.module]
            names |= {_named(module) for module in modules}
    return (names & FIRST_PARTY) - {"sweeps"}  # `import sweeps` is W&B's engine; the sweeps/ folder is no package


def test_every_first_party_unit_has_a_floor():
    units = {_unit(path) for path in SOURCES}
    assert units <= FIRST_PARTY, f"new top-level modules need a floor in tests/test_layout.py: {units - FIRST_PARTY}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_climbs_a_floor(path):
    unit = _unit(path)
    above = {name for name in _imports(ast.parse(path.read_text(encoding="utf-8"))) if _floor(name) > _floor(unit)}
    assert not above, f"{path.relative_to(ROOT)} ({unit}, floor {_floor(unit)}) imports {sorted(above)} from above"


def test_model_imports_neither_telemetry_nor_evaluation():
    for path in (ROOT / "model").glob("*.py"):
        assert not _imports(ast.parse(path.read_text(encoding="utf-8"))) & {"telemetry", "evaluation"}, path


def test_analysis_loads_no_model():
    for path in (ROOT / "analysis").glob("*.py"):
        assert "model" not in _imports(ast.parse(path.read_text(encoding="utf-8"))), path


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name != "runfolder.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_run_folder_names_are_spelled_only_in_runfolder(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    joined = {id(node.right) for node in ast.walk(tree) if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)}
    spelled = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            text = node.value
            spelled += [(node.lineno, name) for name in FILE_NAMES
                        if text == name or text.endswith("/" + name) or text.startswith(name + "/")]
            spelled += [(node.lineno, text) for name in FOLDER_NAMES if id(node) in joined and text == name]
    assert not spelled, f"{path.relative_to(ROOT)} spells run-folder names itself (use runfolder): {spelled}"


def test_no_generic_top_level_import():
    """Code imports its own modules under the one installed name, never as `config`, `data`, ..."""
    for path in SOURCES + sorted((ROOT / "tests").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            bare = [n for n in names if n.split(".")[0] in FIRST_PARTY - {"sweeps", "bench", "telemetry.keys"}]
            assert not bare, f"{path.relative_to(ROOT)}:{node.lineno} imports {bare} (use {PACKAGE}.<module>)"


def test_the_installed_package_adds_no_generic_name(tmp_path):
    """Outside the checkout, the install offers one name, nlu_collapse (this folder), and none of the
    generic ones its modules have here."""
    probe = ("import importlib.util as u, json; import nlu_collapse.config as c; "
             "print(json.dumps([c.__file__, [n for n in %r if u.find_spec(n)]]))" % (GENERIC,))
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    origin, found = json.loads(done.stdout)
    assert Path(origin) == ROOT / "config.py" and found == []
