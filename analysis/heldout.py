"""Scores on dev and test split by phrasing: sentences phrased as in train against held-out ones.

    python analysis/heldout.py results/baseline-phone-assistant-wild                 # a sweep folder
    python analysis/heldout.py results/baseline-phone-assistant-wild results/gamma --checkpoint=last
    python analysis/heldout.py runs/3f2a9c01 runs/77b0e4d2 --out=report/heldout      # run directories
    python analysis/heldout.py results/baseline-phone-assistant-wild --write_docs    # and into docs/results.md

Each argument is a sweep folder (`<folder>/sweep.json`, `<folder>/runs/<run_id>/`, as sweeps/local.py
writes it) or one run directory (train.py's record). Every finished run is rebuilt from its record
(`model.loading.load_run`, `best` checkpoint unless `--checkpoint=last`), predicts its dataset's dev
and test splits once, and each split is scored twice with `evaluation.compute_metrics`: on the
sentences phrased as in train (in-template) and on the held-out ones. Which sentences are held out:
the generator's own `held_out_phrasing` field when the JSONL records it (`phone-assistant-wild`),
otherwise a data-derived stand-in, `data.novelty.new_ngram_flags` (a skeleton trigram train never
has; it also counts typos and other noise as new). The report names which one each dataset used.

Runs are grouped by configuration: the whole saved config except the seed and the fields that only
name, place or log a run. Each metric gets a table, one row per configuration, mean ± std over seeds,
and a paired column `test held-out - dev in-template` (95% t-interval over seeds): an interval below
zero says the held-out test sentences are measurably harder than the in-template dev ones. With the
`best` checkpoint, dev chose the weights, so dev scores lean optimistic; test is untouched.

Writes `heldout.md` (also printed), `heldout.csv` (one row per configuration, metric and subset) and
`heldout_runs.csv` (one row per run and subset) into `<first folder>/report/` (or `--out`). Runs that
are not finished, or cannot be scored (a damaged checkpoint, data changed since training), are listed
with the reason; no finished run at all is an error.

`--write_docs` also writes the tables into docs/results.md's measured block `heldout` (docpage.py), with
the command that made the runs and each scored run against the committed evidence (docs/evidence): the
evidence run with the same identity (configuration and data bytes), and whether its recorded test entity
F1 is the same, so the held-out numbers trace to the runs behind the page's other tables.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from nlu_collapse import commandline, docpage
from nlu_collapse.analysis import evidence
from nlu_collapse.analysis.records import load_local
from nlu_collapse.analysis.report import markdown_table, write_csv
from nlu_collapse.analysis.stats import fmt_interval, fmt_mean_std, mean_std, paired_interval
from nlu_collapse.evaluation.heldout import (
    HELD_OUT,
    IN_TEMPLATE,
    SUBSETS,
    DataCache,
    HeldoutError,
    ScoredRun,
    score_run,
)
from nlu_collapse.runfolder import CHECKPOINTS, RunFolder, SweepFolder
from nlu_collapse.safeio import atomic_write_text
from nlu_collapse.telemetry import keys

log = logging.getLogger("heldout")
ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "results.md"
TEST_ENTITY_F1 = keys.split_metric("test", keys.ENTITY_F1)

METRICS = (("entity F1", keys.ENTITY_F1), ("intent accuracy", keys.accuracy("intent")),
           ("intent macro F1", keys.macro_f1("intent")), ("command macro F1", keys.macro_f1("command")))
# The paired gap the issue asks about: is held-out test harder than in-template dev?
HARDER, EASIER = ("test", HELD_OUT), ("dev", IN_TEMPLATE)
FINISHED = "finished"


# --- which runs
def _run_status(run_dir: Path) -> str:
    try:
        return str(RunFolder(run_dir).read_summary().get(keys.STATUS, "running"))
    except ValueError as err:
        raise HeldoutError(str(err)) from None


def find_runs(paths: list[Path]) -> tuple[list[Path], list[dict]]:
    """(finished run directories, [{run, reason}] for the others), from sweep folders and run directories."""
    finished, skipped = [], []
    for path in paths:
        if RunFolder(path).is_run():
            status = _run_status(path)
            found = [(path, path.name, status)]
        elif path.is_dir():
            try:
                runs = load_local(path)
            except (FileNotFoundError, ValueError) as err:
                raise HeldoutError(str(err)) from None
            found = [(SweepFolder(path).run(run.run_id).path, run.run_id, run.status) for run in runs]
        else:
            raise HeldoutError(f"{path}: no such directory (expected a sweep folder or a run directory)")
        for run_dir, run_id, status in found:
            if status == FINISHED:
                finished.append(run_dir)
            else:
                skipped.append({"run": str(run_dir), "reason": f"status {status}"})
    return finished, skipped


# --- grouping and tables
def group(runs: list[ScoredRun]) -> dict[str, list[ScoredRun]]:
    """Runs by configuration, each under a label: the run name without its seed (the differing config
    fields appended where two configurations share a name, e.g. an lr that run names do not show)."""
    by_key: dict[str, list[ScoredRun]] = {}
    for run in runs:
        by_key.setdefault(run.configuration, []).append(run)
    names = Counter(members[0].name for members in by_key.values())
    groups = {}
    for key, members in by_key.items():
        name = members[0].name
        if names[name] > 1:
            name = f"{name} {_differing(key, [k for k, m in by_key.items() if m[0].name == name])}"
        groups[name] = members
    return groups


def _differing(key: str, keys_alike: list[str]) -> str:
    configs = [json.loads(k) for k in keys_alike]
    mine = json.loads(key)
    return " ".join(f"{f}={mine.get(f)}" for f in mine if len({json.dumps(c.get(f)) for c in configs}) > 1)


def _values(members: list[ScoredRun], subset: tuple[str, str], metric: str) -> list[float]:
    return [r.scores[subset][metric] for r in members if r.scores.get(subset) and metric in r.scores[subset]]


def _gaps(members: list[ScoredRun], metric: str) -> list[float]:
    """Per run: test held-out minus dev in-template (paired: the same model on both)."""
    pairs = [(r.scores.get(HARDER), r.scores.get(EASIER)) for r in members]
    return [hard[metric] - easy[metric] for hard, easy in pairs if hard and easy and metric in hard and metric in easy]


def _subset_name(subset: tuple[str, str]) -> str:
    return f"{subset[0]} {subset[1]}"


def metric_rows(groups: dict[str, list[ScoredRun]], metric: str) -> list[dict]:
    """One row per configuration: mean ± std over seeds per subset, and the paired gap."""
    rows = []
    for name, members in groups.items():
        row = {"configuration": name, "data": members[0].data, "seeds": len(members)}
        for subset in SUBSETS:
            mean, sd, n = mean_std(_values(members, subset, metric))
            row[_subset_name(subset)] = fmt_mean_std(mean, sd, n) + (f" (n={n})" if n and n != len(members) else "")
        gap = paired_interval(_gaps(members, metric))
        row[f"{_subset_name(HARDER)} - {_subset_name(EASIER)}"] = fmt_interval(*gap[:3]) if gap[3] else "-"
        rows.append(row)
    return rows


def size_rows(runs: list[ScoredRun]) -> list[dict]:
    """Sentences per subset, once per dataset (every run of a dataset has the same flags)."""
    rows = {}
    for run in runs:
        rows.setdefault(run.data, {"data": run.data, "held out by": run.flags.source,
                                   **{_subset_name(s): run.sizes[s] for s in SUBSETS}})
    return list(rows.values())


def csv_rows(groups: dict[str, list[ScoredRun]]) -> list[dict]:
    rows = []
    for name, members in groups.items():
        for label, metric in METRICS:
            for subset in SUBSETS:
                mean, sd, n = mean_std(_values(members, subset, metric))
                rows.append({"configuration": name, "data": members[0].data, "held out by": members[0].flags.source,
                             "metric": label, "split": subset[0], "subset": subset[1],
                             "sentences": members[0].sizes[subset], "mean": mean, "std": sd, "n": n})
    return rows


def run_rows(runs: list[ScoredRun]) -> list[dict]:
    return [{"run": str(r.run_dir), "configuration": r.name, "seed": r.seed, "data": r.data,
             "held out by": r.flags.source, "checkpoint": r.checkpoint, "step": r.step, "split": subset[0],
             "subset": subset[1], "sentences": r.sizes[subset],
             **{label: (r.scores[subset] or {}).get(metric, "") for label, metric in METRICS}}
            for r in runs for subset in SUBSETS]


def render(runs: list[ScoredRun], groups: dict[str, list[ScoredRun]], left_out: list[dict], checkpoint: str) -> str:
    parts = [f"# Held-out phrasings: in-template vs held-out sentences ({checkpoint} checkpoint)\n\n",
             f"{len(runs)} runs scored in {len(groups)} configuration(s); mean ± std over seeds.\n",
             "\n## Sentences per subset\n\n", markdown_table(size_rows(runs))]
    for label, metric in METRICS:
        parts += [f"\n## {label}\n\n", markdown_table(metric_rows(groups, metric))]
    parts += [f"\nThe last column is {_subset_name(HARDER)} minus {_subset_name(EASIER)} per run, mean and 95% "
              "t-interval over seeds: an interval below zero means the held-out test sentences are measurably harder "
              "for this configuration. It holds the sentences fixed: it measures seed-to-seed spread, not the "
              "sampling error of a few hundred sentences.\n",
              "\n## Runs left out\n\n", markdown_table(left_out)]
    return "".join(parts)


# --- the docs' block: the runs scored, traced to the committed evidence
def traced_rows(runs: list[ScoredRun], evidence_dir: Path) -> list[dict]:
    """Each scored run beside the evidence run with its identity (the configuration and the data bytes), and
    whether training ended at the same recorded test entity F1 there and here."""
    recorded = {}
    for path in sorted(evidence_dir.glob("*.jsonl")):
        try:
            _, evidence_runs = evidence.load(path)
        except ValueError as err:
            raise HeldoutError(str(err)) from None
        for run in evidence_runs:
            if run.identity and run.status == FINISHED:
                recorded.setdefault(run.identity, (path.name, run))
    rows = []
    for run in runs:
        here = RunFolder(run.run_dir).read_summary().get(TEST_ENTITY_F1)
        found = recorded.get(run.identity) if run.identity else None
        row = {"configuration": run.name, "seed": run.seed, "run": run.run_dir.name,
               "recorded test entity F1": _fmt(here)}
        if found is None:
            row |= {"evidence run (same identity)": "none", "same recorded test entity F1": "-"}
        else:
            name, theirs = found
            there = theirs.summary.get(TEST_ENTITY_F1)
            same = isinstance(here, float) and isinstance(there, float) and (
                abs(here - there) <= 1e-9 or math.isnan(here) and math.isnan(there))  # a collapsed run's NaN too
            row |= {"evidence run (same identity)": f"{theirs.run_id} in {name}",
                    "same recorded test entity F1": "yes" if same else f"no ({_fmt(there)} there)"}
        rows.append(row)
    return rows


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-"


TRACED_HEADER = ("| configuration | seed | run | recorded test entity F1 | evidence run (same identity) | "
                 "same recorded test entity F1 |")


def stale_traces(block: str, evidence_dir: Path) -> list[str]:
    """What a written block says is traced but the evidence no longer backs: each run it calls the same as an
    evidence run must still be that file's finished run, at the same recorded test entity F1. `docs/build.py
    --check` runs it, so re-exporting the evidence cannot silently detach the held-out tables from it."""
    problems, loaded = [], {}
    rows = block.split(TRACED_HEADER, 1)[1].splitlines()[2:] if TRACED_HEADER in block else []
    for row in (r for r in rows if r.startswith("| ")):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if len(cells) != 6 or cells[5] != "yes":
            continue
        run_id, _, name = cells[4].partition(" in ")
        if name not in loaded:
            try:
                loaded[name] = {run.run_id: run for run in evidence.load(evidence_dir / name)[1]}
            except (OSError, ValueError):
                loaded[name] = {}
        run = loaded[name].get(run_id)
        there = _fmt(run.summary.get(TEST_ENTITY_F1)) if run is not None and run.status == FINISHED else None
        if there != cells[3]:
            problems.append(f"run {run_id}: the block traces it to docs/evidence/{name} at test entity F1 {cells[3]}, "
                            f"but the evidence has {there or 'no finished run of that id'}")
    return problems


def docs_block(markdown: str, runs: list[ScoredRun], paths: list[Path], evidence_dir: Path) -> str:
    """The report as a part of docs/results.md (its headings under the page's section), with where the runs
    came from and how they trace to the evidence."""
    made = sorted({evidence.sweep_command(SweepFolder(path)) for path in paths if SweepFolder(path).manifest.exists()})
    body = docpage.demoted(markdown, 2).rstrip("\n")
    rows = traced_rows(runs, evidence_dir)
    traced = sum(row["same recorded test entity F1"] == "yes" for row in rows)
    table = markdown_table(rows)  # its header is TRACED_HEADER, which stale_traces reads back
    return (f"Runs made by {', '.join(f'`{c}`' for c in made) or 'train.py'}.\n\n{body}\n\n"
            f"#### The runs scored, against docs/evidence\n\n{traced} of {len(rows)} runs are an evidence run "
            "(same identity) that ended at the same recorded test entity F1.\n\n" + table)


# --- entry point
def analyse(paths: list[Path], checkpoint: str, device: torch.device) -> tuple[list[ScoredRun], list[dict]]:
    """Score every finished run; the others, and the ones that cannot be scored, with the reason."""
    finished, left_out = find_runs(paths)
    cache, runs, seen = DataCache(), [], {}
    for run_dir in finished:
        try:
            scored = score_run(run_dir, checkpoint, device, cache)
        except HeldoutError as err:
            log.warning("left out: %s", err)
            left_out.append({"run": str(run_dir), "reason": str(err)})
            continue
        if scored.identity is not None and scored.identity in seen:  # a copy of a run, not another seed
            left_out.append({"run": str(run_dir), "reason": f"the same run as {seen[scored.identity]} (same identity), "
                                                            "not counted"})
            continue
        seen[scored.identity] = run_dir
        runs.append(scored)
    if not runs:
        reasons = "; ".join(f"{row['run']}: {row['reason']}" for row in left_out) or "no runs at all"
        raise HeldoutError(f"{', '.join(map(str, paths))}: no finished run could be scored "
                           f"(expected runs with status finished and a checkpoint; {reasons})")
    return runs, left_out


@dataclass
class Report:
    runs: list[ScoredRun]
    groups: dict[str, list[ScoredRun]]
    left_out: list[dict]
    markdown: str
    out: Path


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="sweep folders (sweeps/local.py) or run directories")
    parser.add_argument("--checkpoint", default="best", choices=CHECKPOINTS, help="which weights to score")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to predict")
    parser.add_argument("--out", type=Path, help="output folder (default: <first path>/report)")
    docpage.add_write_docs(parser, PAGE, "heldout")
    args = commandline.parse(parser, argv)  # options before or after the paths
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device=cuda: no CUDA device is available (use --device=cpu)")
    if not args.paths[0].is_dir():
        parser.error(f"{args.paths[0]}: no such directory (expected a sweep folder or a run directory)")
    out = commandline.writable_folder(args.out or SweepFolder(args.paths[0]).report, "--out")  # before scoring
    try:
        runs, left_out = analyse(args.paths, args.checkpoint, torch.device(args.device))
    except HeldoutError as err:
        parser.error(str(err))
    groups = group(runs)
    markdown = render(runs, groups, left_out, args.checkpoint)
    atomic_write_text(out / "heldout.md", markdown)
    write_csv(out / "heldout.csv", csv_rows(groups))
    write_csv(out / "heldout_runs.csv", run_rows(runs))
    print(markdown)
    print(f"written to {out}")
    if args.write_docs:
        try:
            block = docs_block(markdown, runs, args.paths, evidence.EVIDENCE)
        except HeldoutError as err:
            parser.error(str(err))
        docpage.write(PAGE, "heldout", docpage.command_line("analysis/heldout.py", argv), block)
        print(f"written to {PAGE} (measured block heldout)")
    return Report(runs, groups, left_out, markdown, out)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    commandline.run(main, "interrupted: no report written")
