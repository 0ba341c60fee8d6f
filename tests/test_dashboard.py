from analysis.dashboard import GROUP_BY, SECTIONS, build_workspace


def test_workspace_builds_offline_with_the_collapse_panels():
    workspace = build_workspace("my-team", "nlu-collapse", sweep="abc123", group="ablation")
    titles = [section.name for section in workspace.sections]
    assert titles[:len(SECTIONS)] == list(SECTIONS)
    plotted = {key for section in workspace.sections for panel in section.panels for key in (getattr(panel, "y", None) or [])}
    assert {"loss/total", "grad/norm", "dist/entity/pred_non_O", "health/collapsed", "val/entity_f1"} <= plotted
    assert len(workspace.runset_settings.groupby) == len(GROUP_BY)
    model = workspace._to_model()  # the spec that save() would upload, built without the network
    assert model is not None
