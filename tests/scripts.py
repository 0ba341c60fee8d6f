"""Scripts that are not importable modules, loaded by path (sweeps/ is a plain folder, not a package)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_script(relative: str, name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


local = load_script("sweeps/local.py", "sweeps_local")  # the sweep runner's command line
