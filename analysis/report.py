"""Turn a sweep's runs into the before/after table, the full grid, factor effects and plots.

    python analysis/report.py results/ablation-phone-assistant-wild     # a folder from sweeps/local.py
    python analysis/report.py results/ablation-phone-assistant-wild results/ablation-phone-assistant
    python analysis/report.py --wandb ENTITY/PROJECT --sweep ID --out report/   # through wandb.Api

Writes `report.md` (also printed), `before_after.csv`, `grid.csv`, `effects.csv` and
`plots/*.png` into `<first folder>/report/` (or `--out`). Every verdict sentence is computed from the
numbers beside it; runs that are missing, crashed or still running are listed, never dropped.
One table per dataset, plus a cross-dataset summary of each factor's effect.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from nlu_collapse import commandline
from nlu_collapse.analysis.records import KNOBS, RecordedRun, load_local, load_wandb
from nlu_collapse.analysis.stats import fmt_interval, fmt_mean_std, mean_std, paired_interval
from nlu_collapse.runfolder import SweepFolder
from nlu_collapse.safeio import atomic_write_text
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.health import NOT_LEARNED
from nlu_collapse.telemetry.tracking import require_credentials

# The write-up's two configurations and its own expectations (guesses, not measurements).
BEFORE = {"mask_value": "-inf", "gamma": 3.0, "lambdas": "old"}
AFTER = {"mask_value": "-1e9", "gamma": 2.0, "lambdas": "new"}
TEST_ENTITY_F1 = keys.split_metric("test", keys.ENTITY_F1)
TEST_INTENT_F1, TEST_COMMAND_F1 = (keys.split_metric("test", keys.macro_f1(t)) for t in keys.SENTENCE_TASKS)
TEST_PRED_NON_O = keys.split_metric("test", keys.entity_eval(keys.PRED_NON_O))
FINAL_LOSS = keys.final(keys.LOSS_TOTAL)
ROWS = [  # (label, summary key, write-up before, write-up expected after)
    ("Entity F1", TEST_ENTITY_F1, "0.0", "0.2-0.4"),
    ("pred_non_O", TEST_PRED_NON_O, "0%", "20-30%"),
    ("Final train loss", FINAL_LOSS, "NaN", "stable, 0.8-2.0"),
    ("Masked-label predictions (I-PHONE etc.)", keys.split_metric("test", keys.entity_eval(keys.MASKED_PRED)),
     "0 (collapsed)", "0 (masked)"),
    ("Intent F1", TEST_INTENT_F1, "0.0", "0.3-0.5"),
    ("Command F1", TEST_COMMAND_F1, "collapsed", "-"),
    ("Collapse rate", keys.COLLAPSED, "(collapsed)", "(healthy)"),
]
# Reference level of each factor: the write-up's "before" value (or plain CE for the baselines).
REFERENCE = {"mask_value": "-inf", "gamma": 3.0, "lambdas": "old", "loss_impl": "dense", "loss_level": "plain_ce"}
EFFECT_METRICS = [("entity F1", TEST_ENTITY_F1), ("intent F1", TEST_INTENT_F1), ("command F1", TEST_COMMAND_F1)]
GROUPING = ("loss_impl", "mask_value", "gamma", "lambdas", "loss_level")


def value(run: RecordedRun, key: str) -> float:
    raw = run.summary.get(key)
    if isinstance(raw, bool):
        return float(raw)
    return math.nan if raw is None else float(raw)


PRIORITY = ("loss_level", "loss_impl", "mask_value", "gamma", "lambdas")  # who names a cell when two factors move together


def determines(runs: list[RecordedRun], given: str, other: str) -> bool:
    """True when each value of `given` comes with exactly one value of `other` (e.g. loss_level -> gamma)."""
    seen = {}
    return all(seen.setdefault(r.factors[given], r.factors[other]) == r.factors[other] for r in runs)


def varied(runs: list[RecordedRun]) -> list[str]:
    """The report's grouping axes: factors that take more than one value, minus those that are a
    function of another axis (the baseline's gamma follows from its loss level)."""
    kept = []
    for factor in PRIORITY:
        if len({r.factors[factor] for r in runs}) > 1 and not any(determines(runs, k, factor) for k in kept):
            kept.append(factor)
    return [f for f in GROUPING if f in kept]


def cell_name(run: RecordedRun, factors: list[str]) -> str:
    return " ".join(f"{'mask' if f == 'mask_value' else f}={_show(run.factors[f])}" for f in factors)


def _show(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def matches(run: RecordedRun, wanted: dict) -> bool:
    return all(run.factors.get(k) == v for k, v in wanted.items())


def summarize(runs: list[RecordedRun], key: str) -> tuple[float, float, int]:
    """Over the runs that logged `key` (a NaN it logged counts; a head the data lacks does not)."""
    return mean_std([value(r, key) for r in runs if key in r.summary])


def found_of_planned(found: list[RecordedRun], planned: list[RecordedRun]) -> str:
    """"found/planned": the finished runs a cell averages, of the runs the plan has for it."""
    return f"{len(found)}/{len(planned)}"


def before_after(runs: list[RecordedRun], planned: list[RecordedRun]) -> list[dict] | None:
    pick = lambda wanted, pool: [r for r in pool if matches(r, wanted) and r.factors["loss_impl"] == "dense"]  # noqa: E731
    before, after = pick(BEFORE, runs), pick(AFTER, runs)
    if not before or not after:
        return None
    rows = []
    for label, key, expected_before, expected_after in ROWS:
        show = collapse_rate if key == keys.COLLAPSED else lambda runs: fmt_mean_std(*summarize(runs, key))
        rows.append({"metric": label, "before": show(before), "after": show(after),
                     "write-up before": expected_before, "write-up expected after": expected_after})
    rows.append({"metric": "Seeds (found/planned)", "before": found_of_planned(before, pick(BEFORE, planned)),
                 "after": found_of_planned(after, pick(AFTER, planned)),
                 "write-up before": "-", "write-up expected after": "-"})
    return rows


def collapse_rate(runs: list[RecordedRun]) -> str:
    return f"{sum(bool(r.summary.get(keys.COLLAPSED)) for r in runs)}/{len(runs)}"


def not_learned_rate(runs: list[RecordedRun]) -> str:
    """Runs that ended inside their initial degenerate phase with the loss still falling (a budget too
    short, not a collapse: telemetry/health.py)."""
    return f"{sum(r.summary.get(keys.OUTCOME) == NOT_LEARNED for r in runs)}/{len(runs)}"


def first_nonfinite(runs: list[RecordedRun]) -> str:
    steps = sorted({r.summary.get(keys.FIRST_NONFINITE_STEP) for r in runs} - {None})
    return ", ".join(map(str, steps)) or "never"


def transient_episodes(runs: list[RecordedRun]) -> str:
    """Degenerate-prediction episodes that recovered (an early majority-class phase, say): how many
    runs had one, and the median onset step and length over those episodes. Episodes that lasted to the
    end of a run are part of its collapse, not counted here."""
    recovered = [[e for e in r.summary.get(keys.EPISODES) or [] if e.get("recovered")] for r in runs]
    episodes = [e for run_episodes in recovered for e in run_episodes]
    if not episodes:
        return "none"
    onset = statistics.median(e["first_step"] for e in episodes)
    length = statistics.median(e["last_step"] - e["first_step"] + 1 for e in episodes)
    return f"{sum(bool(r) for r in recovered)}/{len(runs)} runs, onset {onset:g}, length {length:g} (median)"


def nan_origin(runs: list[RecordedRun]) -> str:
    """Where each cell's first NaN came from (train.py's forensics), e.g. 'losses/focal.py:52 MulBackward0, 3/3 runs'."""
    origins = Counter()
    for run in runs:
        origin = run.summary.get(keys.NAN_ORIGIN)
        if origin:
            origins[f"{origin.get('source') or origin.get('source_detail')} {origin.get('op')}"] += 1
    return "; ".join(f"{where}, {n}/{len(runs)} runs" for where, n in origins.most_common()) or "none"


def grid(runs: list[RecordedRun], factors: list[str], planned: list[RecordedRun]) -> list[dict]:
    cells, plan = defaultdict(list), defaultdict(list)
    for run in runs:
        cells[tuple(run.factors[f] for f in factors)].append(run)
    for run in planned:
        plan[tuple(run.factors[f] for f in factors)].append(run)
    rows = []
    for key in sorted(cells, key=lambda k: tuple(map(str, k))):
        members = cells[key]
        row = {("mask" if f == "mask_value" else f): _show(v) for f, v in zip(factors, key)}
        row["seeds (found/planned)"] = found_of_planned(members, plan[key])
        for label, metric in [*EFFECT_METRICS, ("pred_non_O", TEST_PRED_NON_O), ("final loss", FINAL_LOSS)]:
            row[label] = fmt_mean_std(*summarize(members, metric))
        row["collapsed"] = collapse_rate(members)
        row["not learned yet"] = not_learned_rate(members)
        row["transient episodes"] = transient_episodes(members)
        row["first non-finite step"] = first_nonfinite(members)
        row["origin of the first NaN"] = nan_origin(members)
        rows.append(row)
    return rows


def side_by_side(groups: dict[str, list[RecordedRun]], factors: list[str]) -> list[dict]:
    """One row per cell of `factors`, and for each group (e.g. "from scratch", "pretrained": runs of the same
    sweep on other encoders) its finished runs' count, collapses and test F1s in that cell. Cells a group
    lacks show "-"."""
    cells: dict[tuple, dict[str, list[RecordedRun]]] = defaultdict(lambda: defaultdict(list))
    for label, runs in groups.items():
        for run in runs:
            cells[tuple(run.factors[f] for f in factors)][label].append(run)
    rows = []
    for key in sorted(cells, key=lambda k: tuple(map(str, k))):
        row = {("mask" if f == "mask_value" else f): _show(v) for f, v in zip(factors, key)}
        for label in groups:
            members = cells[key].get(label, [])
            row[f"{label}: runs"] = len(members)
            row[f"{label}: collapsed"] = collapse_rate(members) if members else "-"
            for name, metric in EFFECT_METRICS[:2]:
                row[f"{label}: {name}"] = fmt_mean_std(*summarize(members, metric)) if members else "-"
        rows.append(row)
    return rows


def paired_deltas(runs: list[RecordedRun], factor: str, level, reference, metric: str, axes: list[str],
                  within: dict | None = None):
    """value(level) - value(reference) over runs equal in every other axis, the dataset, the seed and the
    knobs (KNOBS: a sweep that varies warm-up never pairs across it) that the factor does not set itself
    (a loss level sets unit_class_weights)."""
    others = [f for f in axes if f != factor] + ["data"]
    for knob in KNOBS:
        seen = {}
        if knob not in axes and not all(seen.setdefault(r.factors[factor], r.factors.get(knob)) == r.factors.get(knob)
                                        for r in runs):
            others.append(knob)
    index = {}
    for run in runs:
        if within and not matches(run, within):
            continue
        index[(run.factors[factor], run.seed, tuple(run.factors.get(f) for f in others))] = run
    deltas = []
    for (lvl, seed, rest), run in index.items():
        partner = index.get((reference, seed, rest))
        if lvl == level and partner is not None and metric in run.summary and metric in partner.summary:
            deltas.append(value(run, metric) - value(partner, metric))
    return deltas


def effect_verdict(factor: str, level, reference, runs_level: list[RecordedRun], runs_ref: list[RecordedRun], delta) -> str:
    name = "mask" if factor == "mask_value" else factor
    c_level = sum(bool(r.summary.get(keys.COLLAPSED)) for r in runs_level)
    c_ref = sum(bool(r.summary.get(keys.COLLAPSED)) for r in runs_ref)
    text = (f"{name}={_show(reference)} collapsed {c_ref} of {len(runs_ref)} runs, "
            f"{name}={_show(level)} {c_level} of {len(runs_level)}. ")
    mean, low, high, n = delta
    if n == 0:
        return text + "No paired runs to compare."
    shown = fmt_interval(mean, low, high)
    if math.isnan(mean):
        return text + f"Entity F1 delta is NaN over {n} pairs."
    if math.isnan(low):
        return text + f"Entity F1 delta = {shown} from {n} pair(s): too few for an interval."
    if low > 0 or high < 0:
        direction = "raises" if mean > 0 else "lowers"
        return text + f"{name}={_show(level)} {direction} entity F1: delta = {shown} (95% CI, {n} pairs)."
    return text + f"No detectable effect on entity F1: delta = {shown} (95% CI, {n} pairs)."


def factor_effects(runs: list[RecordedRun], factors: list[str]) -> list[dict]:
    rows = []
    contexts = [None]
    if "mask_value" in factors:
        contexts += [{"mask_value": m} for m in sorted({r.factors["mask_value"] for r in runs})]
    for factor in factors:
        levels = sorted({r.factors[factor] for r in runs}, key=str)
        reference = REFERENCE.get(factor) if REFERENCE.get(factor) in levels else levels[0]
        for level in [lv for lv in levels if lv != reference]:
            for context in contexts:
                if context and factor in context:
                    continue
                scope = [r for r in runs if not context or matches(r, context)]
                row = {"factor": factor, "level": _show(level), "vs": _show(reference),
                       "among": "all runs" if not context else cell_name(scope[0], list(context))}
                deltas = {label: paired_interval(paired_deltas(scope, factor, level, reference, metric, factors))
                          for label, metric in EFFECT_METRICS}
                row["pairs"] = deltas["entity F1"][3]
                row.update({f"delta {label}": fmt_interval(*delta[:3]) if delta[3] else "-"
                            for label, delta in deltas.items()})
                row["verdict"] = effect_verdict(factor, level, reference,
                                                [r for r in scope if r.factors[factor] == level],
                                                [r for r in scope if r.factors[factor] == reference],
                                                deltas["entity F1"])
                rows.append(row)
    return rows


def type_deltas(runs: list[RecordedRun], factors: list[str], top: int = 5) -> list[dict]:
    """For each factor level against its reference, the entity types whose test F1 moves most."""
    types = sorted({t for r in runs for t in keys.entity_types_in(r.summary, "test")})
    rows = []
    for factor in factors:
        levels = sorted({r.factors[factor] for r in runs}, key=str)
        reference = REFERENCE.get(factor) if REFERENCE.get(factor) in levels else levels[0]
        for level in [lv for lv in levels if lv != reference]:
            moves = []
            for entity_type in types:
                deltas = paired_deltas(runs, factor, level, reference, keys.entity_type_metric("test", entity_type, "f1"), factors)
                if deltas:
                    moves.append((entity_type, paired_interval(deltas)))
            moves.sort(key=lambda m: -abs(m[1][0]) if not math.isnan(m[1][0]) else 0)
            rows += [{"factor": factor, "level": _show(level), "vs": _show(reference), "type": entity_type,
                      "delta F1": fmt_interval(*delta[:3]), "pairs": delta[3]} for entity_type, delta in moves[:top]]
    return rows


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(none)\n"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: list[dict]) -> None:
    """Written whole or not at all (a Ctrl-C mid-write leaves the previous file)."""
    if not rows:
        return
    columns = list(dict.fromkeys(c for row in rows for c in row))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


def not_finished(runs: list[RecordedRun]) -> list[dict]:
    return [{"run": r.run_id, "status": r.status, "factors": cell_name(r, list(GROUPING)) + f" seed={r.seed}",
             "error": r.summary.get(keys.ERROR, "")} for r in runs if r.counted and r.status != "finished"]


def not_counted(runs: list[RecordedRun]) -> list[dict]:
    return [{"run": r.run_id, "status": r.status, "factors": cell_name(r, list(GROUPING)) + f" seed={r.seed}",
             "why": r.why} for r in runs if not r.counted]


def build_report(runs: list[RecordedRun], title: str, out: Path, plots: bool = True) -> str:
    out.mkdir(parents=True, exist_ok=True)
    planned = [r for r in runs if r.counted]
    finished = [r for r in planned if r.status == "finished"]
    datasets = sorted({r.factors["data"] for r in planned})
    parts = [f"# {title}\n", f"{len(planned)} runs: {len(finished)} finished, {len(planned) - len(finished)} not.\n"]
    stale = [r for r in runs if not r.counted]
    if stale:
        kinds = Counter(r.status for r in stale)
        parts.append(f"Not counted: {', '.join(f'{n} {kind}' for kind, n in sorted(kinds.items()))} "
                     "(listed at the end; never averaged in).\n")
    all_grid, all_effects, all_before_after = [], [], []
    for dataset in datasets:
        subset = [r for r in finished if r.factors["data"] == dataset]
        factors = varied(subset) or ["mask_value"]
        heading = f"\n## Dataset: {dataset}\n" if len(datasets) > 1 else ""
        parts.append(heading)
        if not subset:
            parts.append("\nNo finished run yet.\n")
            continue
        in_plan = [r for r in planned if r.factors["data"] == dataset]
        table = before_after(subset, in_plan)
        if table:
            parts += ["\n### Before / after (the write-up's two configurations, mean ± std over seeds)\n\n",
                      markdown_table(table)]
            all_before_after += [{"data": dataset, **row} for row in table]
        grid_rows = grid(subset, factors, in_plan)
        parts += ["\n### Every cell (mean ± std over seeds)\n\n", markdown_table(grid_rows)]
        effects = factor_effects(subset, [f for f in factors if f in GROUPING])
        parts += ["\n### Factor effects (paired by seed, other factors fixed; test-set deltas, 95% t-interval)\n\n",
                  markdown_table([{k: v for k, v in row.items() if k != "verdict"} for row in effects]), "\n"]
        parts += [f"- **{row['factor']}={row['level']} vs {row['vs']}** ({row['among']}): {row['verdict']}\n"
                  for row in effects]
        if "loss_level" in factors:
            parts += ["\n### Does the focal term help here? (each loss level against plain cross-entropy)\n\n"]
            parts += [f"- {row['level']}: {row['verdict']}\n" for row in effects if row["factor"] == "loss_level"]
        type_rows = type_deltas(subset, [f for f in factors if f in GROUPING])
        if type_rows:
            parts += ["\n### Per-type F1 deltas (the types that move most, paired as above)\n\n",
                      markdown_table(type_rows)]
        all_grid += [{"data": dataset, **row} for row in grid_rows]
        all_effects += [{"data": dataset, **row} for row in effects]
        if plots and subset:
            from nlu_collapse.analysis.plots import cell_figures, overview_figure

            groups = defaultdict(list)
            for run in subset:
                groups[cell_name(run, factors)].append(run)
            suffix = f"-{dataset}" if len(datasets) > 1 else ""
            overview_figure(groups, out / "plots" / f"overview{suffix}.png", title=f"{title} ({dataset})")
            cell_figures(groups, out / "plots", suffix)
            parts.append(f"\nPlots: `{out / 'plots'}` (overview{suffix}.png and one figure per cell).\n")
    if len(datasets) > 1:
        summary = [{k: row[k] for k in ("data", "factor", "level", "vs", "among", "delta entity F1", "pairs")}
                   for row in all_effects]
        parts += ["\n## Across datasets: each factor's effect on entity F1\n\n", markdown_table(summary)]
    parts += ["\n## Runs not finished (missing, failed, crashed or still running)\n\n", markdown_table(not_finished(runs))]
    if stale:
        parts += ["\n## Runs not counted (stale: not of this plan; duplicate: a second record of a counted run)\n\n",
                  markdown_table(not_counted(runs))]
    report = "".join(parts)
    atomic_write_text(out / "report.md", report)
    write_csv(out / "before_after.csv", all_before_after)
    write_csv(out / "grid.csv", all_grid)
    write_csv(out / "effects.csv", all_effects)
    return report


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="*", type=Path,
                        help="sweep folders written by sweeps/local.py (several: one report, a table per dataset)")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs through the W&B API instead")
    parser.add_argument("--sweep", help="with --wandb: only this sweep's runs")
    parser.add_argument("--out", type=Path, help="output folder (default: <folder>/report)")
    parser.add_argument("--no_plots", action="store_true", help="tables only")
    args = commandline.parse(parser, argv)  # options before or after the folders
    if args.wandb:
        require_credentials(f"--wandb={args.wandb}")  # before W&B would prompt for a login or fail
        out = commandline.writable_folder(args.out or Path("report"), "--out")
        runs, title = load_wandb(args.wandb, args.sweep), f"W&B {args.wandb} {args.sweep or ''}".strip()
    elif args.folders:
        runs = []
        for folder in args.folders:
            try:
                runs += load_local(folder)
            except (FileNotFoundError, ValueError) as err:  # no sweep folder, or a damaged sweep.json: one line
                parser.error(str(err))
        title = "Sweep " + " + ".join(folder.name for folder in args.folders)
        out = commandline.writable_folder(args.out or SweepFolder(args.folders[0]).report, "--out")
    else:
        parser.error("give a sweep folder or --wandb ENTITY/PROJECT")
    report = build_report(runs, title, out, plots=not args.no_plots)
    print(report)
    print(f"written to {out}")
    return report


if __name__ == "__main__":
    commandline.run(main, "interrupted: no report written")
