"""What `pip install` gets is what the code imports: every third-party module the source imports is
declared in pyproject.toml (run time in `dependencies`, test tools in the `test` extra), and
requirements.txt pins each run-time dependency within its declared bounds, and nothing else."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
SKIP = {".venv", "results", "runs", "wandb", "build"}
OURS = {"nlu_collapse", "tests", "bench", "__future__"}  # bench/: the benchmark's own scripts, not installed


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _declared(requirements: list[str]) -> dict[str, str]:
    return {_name(r): r[len(_name(r)):].strip() for r in requirements}


RUNTIME = _declared(PROJECT["dependencies"])
TEST = _declared(PROJECT["optional-dependencies"]["test"])


def third_party(paths) -> dict[str, set[str]]:
    """Distribution (lower-case, '-') -> files importing it; a module no installed distribution
    provides keeps its own name (an optional bench dependency that is not installed)."""
    providers = packages_distributions()
    found: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in OURS or (ROOT / f"{top}.py").exists():
                    continue
                for dist in providers.get(top, [top]):
                    found.setdefault(dist.lower().replace("_", "-"), set()).add(str(path.relative_to(ROOT)))
    return found


def _sources(*folders: str, exclude: tuple[str, ...] = ()) -> list[Path]:
    roots = [ROOT / folder for folder in folders] if folders else [ROOT]
    return sorted(p for root in roots for p in root.rglob("*.py")
                  if not (SKIP | set(exclude)) & set(p.relative_to(ROOT).parts))


def test_every_module_the_code_imports_is_a_declared_dependency():
    imported = third_party(_sources(exclude=("tests", "bench")))
    missing = {dist: sorted(files) for dist, files in imported.items() if dist not in RUNTIME}
    assert not missing, f"imported but not in pyproject.toml's dependencies: {missing}"


def test_the_tests_need_only_the_declared_dependencies_and_the_test_extra():
    imported = third_party(_sources("tests"))
    missing = {dist: sorted(files) for dist, files in imported.items() if dist not in RUNTIME | TEST}
    assert not missing, f"imported by tests but neither a dependency nor in the test extra: {missing}"


def test_the_bench_needs_only_the_dependencies_and_its_own_requirements():
    extra = {_name(line) for line in (ROOT / "bench" / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    imported = third_party(_sources("bench"))
    missing = {dist: sorted(files) for dist, files in imported.items() if dist not in set(RUNTIME) | extra}
    assert not missing, f"imported by bench/ but in neither list: {missing}"


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.match(r"\d+(\.\d+)*", version).group().split("."))


def _satisfies(version: str, bounds: str) -> bool:
    """`version` within `bounds` written as pyproject.toml writes them: `==x`, or `>=x,<y`."""
    checks = {"==": lambda a, b: a == b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b}
    parts = [re.fullmatch(r"(==|>=|<)\s*([\d.]+)", part.strip()) for part in bounds.split(",")]
    assert all(parts), f"bounds {bounds!r}: write them as ==x or >=x,<y"
    return all(checks[op](_release(version), _release(bound)) for op, bound in (p.groups() for p in parts))


def test_requirements_pin_every_runtime_dependency_within_its_bounds():
    pins = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.txt: {line!r} is not an exact pin"
            pins[_name(name)] = version.strip()
    assert set(pins) == set(RUNTIME)  # no test tool among the run-time pins, no dependency left unpinned
    outside = {name: (pins[name], bounds) for name, bounds in RUNTIME.items() if not _satisfies(pins[name], bounds)}
    assert not outside, f"pinned outside pyproject.toml's bounds: {outside}"


def test_the_bounds_check_can_refuse():
    assert _satisfies("2.13.0", ">=2.13,<3") and not _satisfies("3.0", ">=2.13,<3")
    assert not _satisfies("0.31.0", ">=0.30,<0.31") and _satisfies("0.1.1", "==0.1.1")
