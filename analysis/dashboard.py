"""The collapse dashboard as code: a W&B workspace built with `wandb-workspaces`.

    python analysis/dashboard.py --entity E --project nlu-collapse --sweep ID --sweep_file sweeps/ablation.yaml
    python analysis/dashboard.py --entity E --project nlu-collapse --group ablation --group_by mask_value,gamma
    python analysis/dashboard.py --entity E --project nlu-collapse --print --check runs/<run_id> > workspace.json

Sections: the collapse as finite signals first (W&B line plots skip NaN, so the loss panels of a
run whose loss is NaN from step 1 are empty: health flags, prediction shares and label counts stay
finite and show it), then loss components, gradient norms, prediction distribution, health flags,
validation metrics and final test metrics by cell. Runs are grouped by what the sweep varies
(`--sweep_file`, or the sweep's own config fetched with `--sweep`; `--group_by` overrides),
so the mechanism sweep groups by loss_impl too. The per-label tables (`dist/*/by_label`, label
names) appear in W&B's automatic panels, and so does a dead run's last state carried to its planned end
(`stopped/last_state`, a chart labelled "stopped: parameters non-finite at step N", since a run that
stopped dead logs no steps after its death); the "Stopped runs" section compares where runs died with
their budgets. `build_workspace` makes the object without touching the
network; the CLI saves (uploads) it, or with `--print` writes the JSON it would upload to stdout and with
`--check RUN` checks every panel's key against what a run recorded, both without a server.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlu_collapse import commandline
from nlu_collapse.runfolder import RunFolder
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.artifacts import fetch_run
from nlu_collapse.telemetry.record import read_history
from nlu_collapse.telemetry.tracking import require_credentials

GROUP_BY = ("mask_value", "gamma", "lambdas")  # the ablation's factors, when the sweep is not known
NOT_A_FACTOR = ("seed",)  # varied for replication, never a group
# Keys that stay finite in a run whose loss and weights are NaN (tests/test_agent.py checks it on a real one).
COLLAPSE_PANELS = [[keys.health("loss_nonfinite"), keys.COLLAPSED],
                   [keys.health("degenerate"), keys.health("intent_dominant"), keys.health("command_dominant")],
                   [keys.entity_dist(keys.PRED_NON_O), keys.entity_dist(keys.GOLD_NON_O)],
                   [keys.max_share("intent"), keys.gold_max_share("intent"), keys.max_share("command")],
                   [keys.N_LABELS_PRED, keys.entity_dist(keys.MASKED_PRED)],
                   [keys.PROBLEMS], [keys.GRAD_CLIP_RATE]]
SECTIONS = {
    "Collapse (finite signals)": COLLAPSE_PANELS,
    "Loss components": [[keys.LOSS_TOTAL], [keys.loss(t) for t in keys.TASKS], [keys.weighted_loss(t) for t in keys.TASKS],
                        [keys.task_weight(t) for t in keys.TASKS]],
    "Gradients": [[keys.GRAD_NORM], [keys.module_grad_norm(m) for m in keys.MODULES],
                  [keys.task_grad_norm(t) for t in keys.TASKS], [keys.GRAD_CLIP_RATE]],
    "Prediction distribution": [[keys.entity_dist(keys.PRED_NON_O), keys.entity_dist(keys.GOLD_NON_O)],
                                [keys.N_LABELS_PRED], [keys.max_share(t) for t in keys.SENTENCE_TASKS],
                                [keys.entity_dist(keys.MASKED_PRED)]],
    "Health": [[keys.health("loss_nonfinite"), keys.health("grad_explode"), keys.COLLAPSED],
               [keys.health("pred_non_O_zero"), keys.health("pred_non_O_off_gold"), keys.health("entity_single_label")],
               [keys.health("pred_non_O_out_of_band"), keys.health("intent_out_of_band")], [keys.PROBLEMS]],
    "Validation": [[keys.split_metric("dev", keys.ENTITY_F1)],
                   [keys.split_metric("dev", keys.macro_f1(t)) for t in keys.SENTENCE_TASKS],
                   [keys.split_metric("dev", keys.entity_eval(keys.PRED_NON_O))],
                   [keys.split_metric("dev", keys.EVAL_LOSS)]],
}
# Summary keys of the bar plots: test metrics and the verdict.
FINAL_METRICS = (keys.split_metric("test", keys.ENTITY_F1), *(keys.split_metric("test", keys.macro_f1(t))
                                                              for t in keys.SENTENCE_TASKS), keys.COLLAPSED)
STOPPED_METRICS = (keys.DEAD_AT_STEP, keys.STEPS, keys.PLANNED_STEPS)  # summary keys: where runs died, what they trained


def group_by(sweep_config: dict | None) -> list[str]:
    """The parameters a sweep varies (more than one value), seeds aside; the ablation's by default."""
    if not sweep_config:
        return list(GROUP_BY)
    varied = [name for name, spec in sweep_config.get("parameters", {}).items()
              if name not in NOT_A_FACTOR and (len(spec.get("values", [])) > 1 or "distribution" in spec)]
    return varied or list(GROUP_BY)


def history_keys() -> set[str]:
    """Every history key a line plot of the workspace reads."""
    return {key for panels in SECTIONS.values() for keys in panels for key in keys}


def build_workspace(entity: str, project: str, sweep: str | None = None, group: str | None = None,
                    name: str = "NLU collapse ablation", factors: list[str] | None = None):
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces import expr

    sections = [ws.Section(name=title, is_open=True,
                           panels=[wr.LinePlot(title=", ".join(keys), x="Step", y=keys) for keys in panels])
                for title, panels in SECTIONS.items()]
    sections.append(ws.Section(name="Final test metrics by cell", is_open=True, panels=[
        wr.BarPlot(title=metric, metrics=[metric], groupby_aggfunc="mean", groupby_rangefunc="stddev")
        for metric in FINAL_METRICS]))
    sections.append(ws.Section(name="Stopped runs", is_open=True, panels=[
        wr.BarPlot(title=metric, metrics=[metric], groupby_aggfunc="mean", groupby_rangefunc="minmax")
        for metric in STOPPED_METRICS]))
    filters = []
    if sweep:
        filters.append(expr.Metric("Sweep") == sweep)
    if group:
        filters.append(expr.Metric("Group") == group)
    return ws.Workspace(entity=entity, project=project, name=name, sections=sections,
                        runset_settings=ws.RunsetSettings(groupby=[expr.Config(f) for f in factors or GROUP_BY],
                                                          filters=expr.And(*filters) if filters else []))


def workspace_json(workspace) -> str:
    """The workspace as `save()` would upload it (wandb-workspaces' own model of it), without the network."""
    return workspace._to_model().model_dump_json(by_alias=True, exclude_none=True, indent=2)


def panel_keys(workspace) -> list[tuple[str, str, str]]:
    """(panel title, key, `history` or `summary`) of every panel: line plots read a history key, bar
    plots a summary key."""
    found = []
    for section in workspace.sections:
        for panel in section.panels:
            found += [(panel.title, key, "history") for key in getattr(panel, "y", None) or []]
            found += [(panel.title, key, "summary") for key in getattr(panel, "metrics", None) or []]
    return found


def unrecorded(workspace, run_dir: Path) -> list[str]:
    """A line per panel key that the run at `run_dir` never recorded (its history rows, its summary)."""
    folder = RunFolder(run_dir)
    recorded = {"history": {key for row in read_history(folder.history) for key in row},
                "summary": set(folder.read_summary())}
    return [f"panel {title!r}: {key} is not in the run's {kind}" for title, key, kind in panel_keys(workspace)
            if key not in recorded[kind]]


def _sweep_config(args, parser) -> dict | None:
    if args.sweep_file:
        import yaml

        try:
            config = yaml.safe_load(Path(args.sweep_file).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            parser.error(f"--sweep_file={args.sweep_file}: {type(err).__name__}: {err}".splitlines()[0])
        if not isinstance(config, dict):
            parser.error(f"--sweep_file={args.sweep_file}: expected a sweep YAML (a mapping with parameters)")
        return config
    if args.sweep and not args.print and not args.check:  # offline: the default grouping (say --group_by)
        import wandb

        return wandb.Api().sweep(f"{args.entity}/{args.project}/{args.sweep}").config
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entity", required=True)
    parser.add_argument("--project", required=True, help="the sweep YAMLs' project is nlu-collapse")
    parser.add_argument("--sweep", help="only this sweep's runs (its config gives the grouping)")
    parser.add_argument("--sweep_file", help="the sweep YAML whose varied parameters group the runs")
    parser.add_argument("--group_by", help="comma-separated config keys to group by (overrides the sweep's)")
    parser.add_argument("--group", help="only this W&B group (sweeps/local.py uses the sweep folder's name)")
    parser.add_argument("--name", default="NLU collapse ablation")
    parser.add_argument("--print", action="store_true", help="write the workspace's JSON to stdout, do not save it")
    parser.add_argument("--check", metavar="RUN", help="a run folder (or wandb-artifact:// reference): check "
                        "that it recorded every panel's key; exit 1 naming each one it did not; do not save")
    args = commandline.parse(parser, argv)
    from_file = _sweep_config(args, parser) if args.sweep_file and not args.group_by else None  # named first
    if not (args.print or args.check):
        require_credentials("analysis/dashboard.py (it saves the workspace to W&B)")  # before W&B would prompt
    if args.group_by:
        factors = args.group_by.split(",")
    else:
        factors = group_by(from_file if args.sweep_file else _sweep_config(args, parser))
    workspace = build_workspace(args.entity, args.project, args.sweep, args.group, args.name, factors)
    if args.print:
        print(workspace_json(workspace))
    if args.check:
        try:
            missing = unrecorded(workspace, fetch_run(args.check))
        except (ValueError, OSError) as err:
            sys.exit(f"error: --check={args.check}: {err}")
        for line in missing:
            print(line, file=sys.stderr)
        print(f"{len(panel_keys(workspace)) - len(missing)} of {len(panel_keys(workspace))} panel keys recorded by "
              f"{args.check}", file=sys.stderr)
        if missing:
            sys.exit(1)
    if args.print or args.check:
        return
    workspace.save()
    print(f"saved: {workspace.url} (runs grouped by {', '.join(factors)})")


if __name__ == "__main__":
    commandline.run(main)
