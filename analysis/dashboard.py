"""The collapse dashboard as code: a W&B workspace built with `wandb-workspaces`.

    python analysis/dashboard.py --entity E --project P [--sweep ID] [--group G]

Sections: loss components, gradient norms (total, per module, per task), label-distribution
scalars (pred_non_O, intent/command max share, masked predictions), health flags and the
validation metrics; runs grouped by the ablation's factors (mask_value, gamma, lambdas).
The per-label histograms (`dist/*/pred`) appear in W&B's automatic panels. `build_workspace`
makes the object without touching the network; only `--save` (the default of the CLI) uploads it.
"""
from __future__ import annotations

import argparse

GROUP_BY = ("mask_value", "gamma", "lambdas")
SECTIONS = {
    "Loss components": [["loss/total"], ["loss/entity", "loss/intent", "loss/command"],
                        ["loss/weighted/entity", "loss/weighted/intent", "loss/weighted/command"],
                        ["lambda/entity", "lambda/intent", "lambda/command"]],
    "Gradients": [["grad/norm"], ["grad/norm/encoder", "grad/norm/entity", "grad/norm/intent", "grad/norm/command"],
                  ["grad/task/entity", "grad/task/intent", "grad/task/command"], ["grad/clip_rate"]],
    "Prediction distribution": [["dist/entity/pred_non_O", "dist/entity/gold_non_O"], ["dist/entity/n_labels_pred"],
                                ["dist/intent/max_share", "dist/command/max_share"], ["dist/entity/masked_pred"]],
    "Health": [["health/loss_nonfinite", "health/grad_explode", "health/collapsed"],
               ["health/pred_non_O_zero", "health/entity_single_label", "health/intent_dominant"],
               ["health/problems"]],
    "Validation": [["val/entity_f1"], ["val/intent_f1", "val/command_f1"], ["val/entity/pred_non_O"], ["val/loss"]],
}


def build_workspace(entity: str, project: str, sweep: str | None = None, group: str | None = None,
                    name: str = "NLU collapse ablation"):
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces import expr

    sections = [ws.Section(name=title, is_open=True,
                           panels=[wr.LinePlot(title=", ".join(keys), x="Step", y=keys) for keys in panels])
                for title, panels in SECTIONS.items()]
    sections.append(ws.Section(name="Final test metrics by cell", is_open=True, panels=[
        wr.BarPlot(title=metric, metrics=[metric], groupby_aggfunc="mean", groupby_rangefunc="stddev")
        for metric in ("test/entity_f1", "test/intent_f1", "test/command_f1", "health/collapsed")]))
    filters = []
    if sweep:
        filters.append(expr.Metric("Sweep") == sweep)
    if group:
        filters.append(expr.Metric("Group") == group)
    return ws.Workspace(entity=entity, project=project, name=name, sections=sections,
                        runset_settings=ws.RunsetSettings(groupby=[expr.Config(f) for f in GROUP_BY],
                                                          filters=expr.And(*filters) if filters else []))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entity", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--sweep", help="only this sweep's runs")
    parser.add_argument("--group", help="only this W&B group (sweeps/local.py uses the sweep folder's name)")
    parser.add_argument("--name", default="NLU collapse ablation")
    args = parser.parse_args(argv)
    workspace = build_workspace(args.entity, args.project, args.sweep, args.group, args.name)
    workspace.save()
    print(f"saved: {workspace.url}")


if __name__ == "__main__":
    main()
