from pathlib import Path

import pytest
import yaml

from nlu_collapse.analysis.dashboard import COLLAPSE_PANELS, GROUP_BY, SECTIONS, build_workspace, group_by, main

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
