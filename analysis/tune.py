"""A hyperparameter search (sweeps/tune.yaml for the tiny encoder, sweeps/pretrained-tune.yaml for a pretrained one) as tables, and the pick.

One command runs the search and reports it:

    python sweeps/local.py sweeps/tune.yaml --data=phone-assistant-wild && python analysis/tune.py results/tune-phone-assistant-wild
    python analysis/tune.py results/tune-phone-assistant-wild --budget_seconds=120   # also the best within 2 min

Writes `tune.md` (also printed), `tune_runs.csv` and `tune_marginals.csv` into `<folder>/report/`
(or `--out`): every run sorted by dev entity F1, the mean dev entity F1 per value of each
parameter (which values help, averaged over everything else the random search varied), and the
best run overall and within `--budget_seconds` of training.

Choosing reads the dev split alone (`val/...`), never test, so the test split stays an unbiased
estimate for the configuration chosen here. Each run is scored at the epoch whose checkpoint it
kept (its best dev entity F1, the `val/` row of `history.jsonl`), which is the model it would ship.
A collapsed run is listed but never picked: a default must not collapse. The search samples one
seed per configuration, so confirm a pick with more seeds before it becomes a default.
Train seconds are `perf/train_seconds` (the training loop, without evaluation; a resumed run's
last attempt only), measured with the parallelism the sweep ran with: compare them within a sweep.
"""
from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

from nlu_collapse import commandline
from nlu_collapse.analysis.records import RecordedRun, load_local
from nlu_collapse.analysis.report import markdown_table, not_counted, write_csv
from nlu_collapse.analysis.stats import fmt_mean_std, mean_std
from nlu_collapse.config import TINY_FLAGS, Config
from nlu_collapse.runfolder import SweepFolder
from nlu_collapse.safeio import atomic_write_text
from nlu_collapse.telemetry import keys

# Table column -> the train.py flag the search varies.
PARAMS = {"lr": "lr", "warmup": "warmup_ratio", "epochs": "epochs", "layers": "tiny_layers", "hidden": "tiny_hidden",
          "heads": "tiny_heads", "vocab min count": "tiny_vocab_min_count", "seed": "seed"}
DEV_ENTITY_F1 = keys.split_metric("dev", keys.ENTITY_F1)
DEV_METRICS = {"dev entity F1": DEV_ENTITY_F1,
               "dev intent acc": keys.split_metric("dev", keys.accuracy("intent")),
               "dev intent F1": keys.split_metric("dev", keys.macro_f1("intent")),
               "dev command F1": keys.split_metric("dev", keys.macro_f1("command"))}
SECONDS = "train s"


def setting(run: RecordedRun, flag: str):
    """The value a run trained with; a flag its record does not name had train.py's default."""
    return run.config.get(flag, getattr(Config, flag))


def dev_scores(run: RecordedRun) -> dict:
    """The dev metrics of the epoch whose checkpoint the run kept: the first epoch with the highest
    dev entity F1, as train.py keeps it. {} when the run logged no dev evaluation."""
    rows = [row for row in run.history if DEV_ENTITY_F1 in row]
    if not rows:
        return {}
    kept = max(rows, key=lambda row: _rank(row[DEV_ENTITY_F1]))
    return {key: kept[key] for key in DEV_METRICS.values() if key in kept}


def _rank(score) -> float:
    """A score to sort by: NaN (or missing) sorts below every number."""
    return -math.inf if score is None or math.isnan(score) else score


def scored_runs(runs: list[RecordedRun]) -> list[tuple[RecordedRun, dict]]:
    """Finished runs with their dev scores, best dev entity F1 first (ties by run id: a stable order)."""
    pairs = [(run, dev_scores(run)) for run in runs if run.status == "finished"]
    return sorted(pairs, key=lambda pair: (-_rank(pair[1].get(DEV_ENTITY_F1)), pair[0].run_id))


def train_seconds(run: RecordedRun) -> float:
    seconds = run.summary.get(keys.PERF_TRAIN_SECONDS)
    return math.nan if seconds is None else float(seconds)


def collapsed(run: RecordedRun) -> bool:
    return bool(run.summary.get(keys.COLLAPSED))


def searched(runs: list[RecordedRun]) -> dict[str, str]:
    """The PARAMS columns these runs vary: a flag with one value says nothing about which value helps, and a
    tiny_* flag means nothing with a pretrained encoder (a pretrained-encoder sweep varies lr and epochs)."""
    pretrained = any(setting(run, "encoder") != "tiny" for run in runs)
    return {column: flag for column, flag in PARAMS.items()
            if len({repr(setting(run, flag)) for run in runs}) > 1 and not (pretrained and flag in TINY_FLAGS)}


def run_row(run: RecordedRun, dev: dict, params: dict[str, str]) -> dict:
    """One run as raw values (the CSV); `shown` formats it for Markdown."""
    row = {"run": run.run_id, **{column: setting(run, flag) for column, flag in params.items()}}
    row.update({column: dev.get(key, math.nan) for column, key in DEV_METRICS.items()})
    row[SECONDS] = train_seconds(run)
    row["collapsed"] = "yes" if collapsed(run) else "no"
    return row


def shown(row: dict) -> dict:
    def cell(column, value):
        if column in DEV_METRICS:
            return f"{value:.3f}"
        if column == SECONDS:
            return "-" if math.isnan(value) else f"{value:.0f}"
        return f"{value:g}" if isinstance(value, float) else str(value)
    return {column: cell(column, value) for column, value in row.items()}


def marginals(pairs: list[tuple[RecordedRun, dict]], params: dict[str, str] | None = None) -> list[dict]:
    """Mean dev entity F1 per value of each parameter the runs vary, over the runs that had that value. In a
    random search every other parameter varies underneath, so a gap between values is a hint to
    confirm with a paired run, not an effect size."""
    rows = []
    for column, flag in (searched([run for run, _ in pairs]) if params is None else params).items():
        groups = defaultdict(list)
        for run, dev in pairs:
            groups[setting(run, flag)].append((run, dev.get(DEV_ENTITY_F1, math.nan)))
        for value in sorted(groups, key=_value_order):
            scores = [score for _, score in groups[value]]
            mean, sd, n = mean_std(scores)
            rows.append({"parameter": column, "value": value, "runs": n, "mean dev entity F1": mean, "std": sd,
                         "best dev entity F1": max(scores, key=_rank),
                         "collapsed": sum(collapsed(run) for run, _ in groups[value])})
    return rows


def configurations(pairs: list[tuple[RecordedRun, dict]]) -> list[dict]:
    """Mean ± std of the dev metrics per configuration (every searched flag but the seed), best mean dev
    entity F1 first: the paired view once a configuration has run with several seeds
    (sweeps/tune-confirm.yaml). A configuration with a collapsed seed ranks below every healthy one."""
    groups = defaultdict(list)
    for run, dev in pairs:
        groups[flags(run, PARAMS)].append((run, dev))
    rows = []
    for config, members in groups.items():
        row = {"configuration": config, "seeds": len(members),
               "collapsed": sum(collapsed(run) for run, _ in members)}
        for column, key in DEV_METRICS.items():
            row[column], row[column + " std"], _ = mean_std([dev.get(key, math.nan) for _, dev in members])
        row[SECONDS] = mean_std([train_seconds(run) for run, _ in members])[0]
        rows.append(row)
    return sorted(rows, key=lambda r: (r["collapsed"] > 0, -_rank(r["dev entity F1"]), r["configuration"]))


def shown_configuration(row: dict) -> dict:
    cells = {"configuration": f"`{row['configuration']}`", "seeds": row["seeds"]}
    cells.update({column: fmt_mean_std(row[column], row[column + " std"], row["seeds"]) for column in DEV_METRICS})
    cells.update({"mean train s": f"{row[SECONDS]:.0f}", "collapsed": f"{row['collapsed']}/{row['seeds']}"})
    return cells


def _value_order(value) -> tuple:
    """Numbers in numeric order, anything else (a hand-edited config) after them as text."""
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, str(value))


def shown_marginal(row: dict) -> dict:
    value = row["value"]
    return {"parameter": row["parameter"], "value": f"{value:g}" if isinstance(value, float) else str(value),
            "runs": row["runs"], "mean dev entity F1": fmt_mean_std(row["mean dev entity F1"], row["std"], row["runs"]),
            "best dev entity F1": f"{row['best dev entity F1']:.3f}", "collapsed": f"{row['collapsed']}/{row['runs']}"}


def pick(pairs: list[tuple[RecordedRun, dict]], budget_seconds: float | None = None) -> tuple[RecordedRun, dict] | None:
    """The run with the best dev entity F1 among those that did not collapse (and, with a budget,
    trained within it); None when no run qualifies."""
    eligible = [(run, dev) for run, dev in pairs if not collapsed(run) and DEV_ENTITY_F1 in dev
                and (budget_seconds is None or train_seconds(run) <= budget_seconds)]
    return eligible[0] if eligible else None  # `pairs` is sorted best first


def flags(run: RecordedRun, params: dict[str, str]) -> str:
    """The searched flags of a run as train.py arguments, seed left out, with the encoder and the data when
    not the defaults: the configuration to confirm (a tiny_* flag only with the tiny encoder)."""
    encoder, data = setting(run, "encoder"), setting(run, "data")
    chosen = [f"--{flag}={setting(run, flag)}" for flag in params.values()
              if flag != "seed" and (encoder == "tiny" or flag not in TINY_FLAGS)]
    return " ".join(([f"--encoder={encoder}"] if encoder != Config.encoder else []) + chosen
                    + ([f"--data={data}"] if data != Config.data else []))


def pick_line(label: str, chosen: tuple[RecordedRun, dict] | None, why_none: str) -> str:
    """The pick and the train.py command of its configuration (every searched flag, the seed left out)."""
    if chosen is None:
        return f"- **{label}**: {why_none}\n"
    run, dev = chosen
    return (f"- **{label}**: `{run.run_id}`, dev entity F1 {dev[DEV_ENTITY_F1]:.3f}, {train_seconds(run):.0f} s "
            f"of training: `python train.py {flags(run, PARAMS)}`\n")


def unfinished(runs: list[RecordedRun]) -> list[dict]:
    params = searched([run for run in runs if run.counted])
    return [{"run": run.run_id, "status": run.status, **{c: setting(run, f) for c, f in params.items()},
             "error": run.summary.get(keys.ERROR, "")} for run in runs if run.counted and run.status != "finished"]


def build_tune_report(runs: list[RecordedRun], title: str, out: Path, budget_seconds: float | None = None) -> str:
    """The Markdown report (also written to `out/tune.md`) and its two CSV tables."""
    out.mkdir(parents=True, exist_ok=True)
    pairs = scored_runs(runs)
    params = searched([run for run, _ in pairs])
    table = [run_row(run, dev, params) for run, dev in pairs]
    margins = marginals(pairs, params)
    n_collapsed = sum(collapsed(run) for run, _ in pairs)
    counted = [run for run in runs if run.counted]
    parts = [f"# {title}\n\n", f"{len(counted)} runs: {len(pairs)} finished, {len(counted) - len(pairs)} not. "
             "Scores are on dev (`val/`, the kept epoch); test is not read.\n",
             "\n## The pick (dev entity F1, collapsed runs excluded)\n\n",
             pick_line("Best run", pick(pairs), f"none of {len(pairs)} finished runs qualifies "
                       f"({n_collapsed} collapsed)")]
    if budget_seconds is not None:
        parts.append(pick_line(f"Best within {budget_seconds:g} s of training", pick(pairs, budget_seconds),
                               f"no finished, healthy run trained within {budget_seconds:g} s"))
    grouped = configurations(pairs)
    if any(row["seeds"] > 1 for row in grouped):
        parts += ["\n## Configurations over seeds: mean ± std of the dev metrics, best mean first\n\n",
                  markdown_table([shown_configuration(r) for r in grouped])]
    else:
        parts.append("\nOne seed per configuration: rerun the pick with other seeds before it becomes a default.\n")
    parts += ["\n## Every finished run, best dev entity F1 first\n\n", markdown_table([shown(r) for r in table]),
              "\n## Which values help: mean ± std dev entity F1 per value (other parameters vary underneath)\n\n",
              markdown_table([shown_marginal(r) for r in margins]),
              "\n## Runs not finished (missing, failed, crashed or still running)\n\n",
              markdown_table(unfinished(runs))]
    if len(counted) < len(runs):
        parts += ["\n## Runs not counted (stale: not of this plan; duplicate: a second record of a counted run)\n\n",
                  markdown_table(not_counted(runs))]
    report = "".join(parts)
    atomic_write_text(out / "tune.md", report)
    write_csv(out / "tune_runs.csv", table)
    write_csv(out / "tune_marginals.csv", margins)
    return report


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a tune sweep folder written by sweeps/local.py, e.g. results/tune")
    parser.add_argument("--budget_seconds", type=float, default=None,
                        help="also name the best run whose perf/train_seconds is at most this")
    parser.add_argument("--out", type=Path, help="output folder (default: <folder>/report)")
    args = commandline.parse(parser, argv)
    if args.budget_seconds is not None and not (math.isfinite(args.budget_seconds) and args.budget_seconds > 0):
        parser.error(f"--budget_seconds={args.budget_seconds:g}: expected a positive number of seconds")
    try:
        runs = load_local(args.folder)
    except (FileNotFoundError, ValueError) as err:  # no sweep folder, or a damaged sweep.json: one line
        parser.error(str(err))
    out = commandline.writable_folder(args.out or SweepFolder(args.folder).report, "--out")  # before any work
    report = build_tune_report(runs, f"Tuning search {args.folder.name}", out, args.budget_seconds)
    print(report)
    print(f"written to {out}")
    return report


if __name__ == "__main__":
    commandline.run(main, "interrupted: no report written")
