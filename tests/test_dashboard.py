import json
import shutil
from pathlib import Path

import pytest
import yaml

from nlu_collapse.analysis.dashboard import (
    COLLAPSE_PANELS,
    GROUP_BY,
    SECTIONS,
    build_workspace,
    group_by,
    history_keys,
    main,
    panel_keys,
)
from nlu_collapse.runfolder import RunFolder
from nlu_collapse.safeio import json_text
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.record import read_history
from tests.strictjson import parse_strict

ROOT = Path(__file__).resolve().parent.parent


def test_workspace_builds_offline_with_the_collapse_panels():
    workspace = build_workspace("my-team", "nlu-collapse", sweep="abc123", group="ablation")
    titles = [section.name for section in workspace.sections]
    assert titles[:len(SECTIONS)] == list(SECTIONS) and titles[0] == "Collapse (finite signals)"
    plotted = {key for section in workspace.sections for panel in section.panels for key in (getattr(panel, "y", None) or [])}
    assert {"loss/total", "grad/norm", "dist/entity/pred_non_O", "health/collapsed", "val/entity_f1"} <= plotted
    assert {key for keys in COLLAPSE_PANELS for key in keys} <= plotted
    assert len(workspace.runset_settings.groupby) == len(GROUP_BY)
    model = workspace._to_model()  # the spec that save() would upload, built without the network
    assert model is not None


@pytest.mark.parametrize("name, factors", [("ablation", ["mask_value", "gamma", "lambdas"]),
                                           ("mechanism", ["loss_impl", "mask_value"]),
                                           ("baseline", ["loss_level"]), ("gamma", ["gamma"])])
def test_runs_are_grouped_by_what_the_sweep_varies(name, factors):
    config = yaml.safe_load((ROOT / "sweeps" / f"{name}.yaml").read_text(encoding="utf-8"))
    assert group_by(config) == factors
    workspace = build_workspace("my-team", "nlu-collapse", factors=group_by(config))
    assert len(workspace.runset_settings.groupby) == len(factors)
    assert group_by(None) == list(GROUP_BY)


def test_a_missing_sweep_file_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--entity=e", "--project=p", f"--sweep_file={tmp_path / 'absent.yaml'}"])
    assert exit_info.value.code == 2
    assert "--sweep_file=" in capsys.readouterr().err


def test_print_writes_the_workspace_json_without_a_server(monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise AssertionError("--print must not reach W&B")

    monkeypatch.setattr("wandb.Api", no_network)
    monkeypatch.setattr("wandb_workspaces.workspaces.Workspace.save", no_network)
    main(["--entity=my-team", "--project=nlu-collapse", "--sweep=abc123xy", "--print"])
    printed = parse_strict(capsys.readouterr().out)
    assert (printed["entity"], printed["project"]) == ("my-team", "nlu-collapse")
    text = json.dumps(printed)
    assert all(json.dumps(key) in text for key in history_keys())  # every panel's key is in the spec


def test_check_names_each_panel_key_a_run_did_not_record(nan_run, tmp_path, capsys):
    """On a run whose loss is NaN from step 1, every panel's key is recorded; a run without one is named."""
    main(["--entity=e", "--project=p", f"--check={nan_run}"])
    panels = len(panel_keys(build_workspace("e", "p")))
    assert f"{panels} of {panels} panel keys recorded" in capsys.readouterr().err
    folder, copy = RunFolder(nan_run), RunFolder(tmp_path / "copy")
    copy.path.mkdir()
    shutil.copy(folder.summary, copy.summary)
    dropped = keys.health("degenerate")
    copy.history.write_text("".join(json_text({k: v for k, v in row.items() if k != dropped}) + "\n"
                                    for row in read_history(folder.history)), encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["--entity=e", "--project=p", f"--check={copy.path}"])
    assert exit_info.value.code == 1
    assert f"{dropped} is not in the run's history" in capsys.readouterr().err
