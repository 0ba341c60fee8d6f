"""The README and the sweeps page are the contract users read: their commands must match the code
(the generated blocks and the named paths and flags: tests/test_docs.py)."""
import re
from dataclasses import fields
from pathlib import Path

from nlu_collapse.config import Config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SWEEPS_PAGE = (ROOT / "docs" / "sweeps.md").read_text(encoding="utf-8")


def test_ci_runs_exactly_the_readme_test_command():
    test_command = next(line for line in README.splitlines() if line.startswith("python3 -m venv") and "pytest" in line)
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_no_unfilled_placeholders():
    assert "PLACEHOLDER" not in README


def online_block() -> list[str]:
    block = SWEEPS_PAGE.split("With W&B, on as many machines as you like", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_online_commands_activate_the_venv_before_the_agent_and_name_the_project():
    lines = online_block()
    order = [next(i for i, line in enumerate(lines) if line.startswith(prefix)) for prefix in
             ("python3 -m venv .venv", "source .venv/bin/activate", "wandb login", "wandb sweep", "wandb agent",
              "python analysis/report.py", "python analysis/dashboard.py")]
    assert order == sorted(order)
    sweep = next(line for line in lines if line.startswith("wandb sweep")).split()
    yaml_file = ROOT / sweep[-1]
    assert sweep[2:4] == ["--project", "nlu-collapse"] and f"project: {sweep[3]}" in yaml_file.read_text()
    assert next(line for line in lines if line.startswith("wandb agent")).split()[-1].split("/")[1] == sweep[3]
    assert "wandb sync --sync-all" not in README + SWEEPS_PAGE  # removed in wandb 0.31: `wandb sync DIR`


def test_online_dashboard_command_runs_as_written(monkeypatch, capsys):
    from nlu_collapse.analysis import dashboard

    line = next(line for line in online_block() if line.startswith("python analysis/dashboard.py"))
    argv = line.replace("$ENTITY", "my-team").replace("$SWEEP_ID", "abc123xy").split()[2:]
    saved = []
    monkeypatch.setattr(dashboard, "require_credentials", lambda what: None)  # the block runs `wandb login` first
    monkeypatch.setattr(dashboard, "build_workspace", lambda *args: saved.append(args) or
                        type("W", (), {"save": lambda self: None, "url": "https://example"})())
    dashboard.main(argv)
    entity, project, sweep, _, _, factors = saved[0]
    assert (entity, project, sweep, factors) == ("my-team", "nlu-collapse", "abc123xy", ["mask_value", "gamma", "lambdas"])
