"""Each of the write-up's three claims under each condition a sweep varies (issue 32): the paired effect of the
claim's factor with its 95% t-interval per condition, and a verdict line that names the conditions.

    python sweeps/local.py sweeps/claims.yaml --data=phone-assistant-wild --out=results --workers=2
    python analysis/conditions.py results/claims-phone-assistant-wild results/claims-phone-assistant \\
        --out docs/claims.md

A condition is one combination of the other factors and knobs the runs vary (e.g. warmup_ratio=0.1, or
warmup_ratio=0.1 epochs=3 on the full grid), per dataset; the effect is level - reference (new - old lambdas,
gamma 2 - 3, mask -1e9 - -inf) over runs paired by seed and equal in everything else (`report.paired_deltas`).
A claim is said to hold at a condition only where the interval excludes 0 with the claimed sign; where it
excludes 0 with the other sign it is "opposite"; otherwise "not detectable" (or too few pairs for an interval).
A claim whose factor a folder does not vary is listed with the sweep that tests it.
"""
from __future__ import annotations

import argparse
import itertools
import math
import shlex
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from nlu_collapse import commandline
from nlu_collapse.analysis.records import FACTORS, KNOBS, RecordedRun, load_local
from nlu_collapse.analysis.report import TEST_ENTITY_F1, TEST_INTENT_F1, _show, markdown_table, matches, paired_deltas
from nlu_collapse.analysis.stats import fmt_interval, paired_interval
from nlu_collapse.runfolder import SweepFolder, code_version
from nlu_collapse.safeio import atomic_write_text
from nlu_collapse.telemetry.record import read_json

METRICS = [("intent F1", TEST_INTENT_F1), ("entity F1", TEST_ENTITY_F1)]
HOLDS, OPPOSITE, NOT_DETECTABLE, TOO_FEW, NO_PAIRS = ("holds", "opposite", "not detectable",
                                                      "too few pairs for an interval", "no pairs")


@dataclass(frozen=True)
class Claim:
    name: str        # the write-up's claim, in words
    factor: str      # the factor it is about
    level: object    # the write-up's fix
    reference: object  # the write-up's original
    metric: str      # the label (METRICS) of the metric the claim is about
    sign: int        # +1: the fix raises that metric
    sweep: str       # the sweep that crosses it with its conditions

    @property
    def contrast(self) -> str:
        return f"{self.factor} {_show(self.level)} - {_show(self.reference)}"


CLAIMS = [
    Claim("the old entity weight 0.8 starved intent (new lambdas raise intent F1)", "lambdas", "new", "old",
          "intent F1", +1, "sweeps/claims.yaml (sweeps/claims-full.yaml: + entity warm-up, epochs)"),
    Claim("focal gamma 3 was too strong (gamma 2 raises entity F1)", "gamma", 2.0, 3.0,
          "entity F1", +1, "sweeps/claims-gamma.yaml (gamma x class weights)"),
    Claim("hard -inf masking caused the collapse (-1e9 raises entity F1)", "mask_value", "-1e9", "-inf",
          "entity F1", +1, "sweeps/mechanism.yaml (mask x loss form)"),
]


def classify(delta: tuple[float, float, float, int], sign: int) -> str:
    """holds / opposite / not detectable from a (mean, low, high, n) interval and the claimed sign."""
    mean, low, high, n = delta
    if n == 0:
        return NO_PAIRS
    if math.isnan(low) or math.isnan(high) or math.isnan(mean):
        return TOO_FEW
    if low > 0 or high < 0:
        return HOLDS if (1 if mean > 0 else -1) == sign else OPPOSITE
    return NOT_DETECTABLE


def condition_axes(runs: list[RecordedRun], factor: str) -> list[str]:
    """The factors and knobs other than `factor` (and the dataset) that take more than one value."""
    return [f for f in FACTORS + KNOBS
            if f not in (factor, "data") and len({r.factors.get(f) for r in runs}) > 1]


def condition_name(condition: dict) -> str:
    return " ".join(f"{k}={_show(v)}" for k, v in condition.items()) or "all runs"


def conditions_table(runs: list[RecordedRun], claim: Claim) -> list[dict]:
    """One row per condition: pairs and the level - reference interval of each metric, and the claim's verdict."""
    axes = condition_axes(runs, claim.factor)
    values = [sorted({r.factors.get(a) for r in runs}, key=lambda v: (str(type(v)), v)) for a in axes]
    rows = []
    for combo in itertools.product(*values):
        condition = dict(zip(axes, combo))
        scope = [r for r in runs if matches(r, condition)]
        if not {claim.level, claim.reference} <= {r.factors.get(claim.factor) for r in scope}:
            continue  # a condition this sweep has only one side of (e.g. class weights run with new lambdas)
        row = {"condition": condition_name(condition)}
        deltas = {label: paired_interval(paired_deltas(scope, claim.factor, claim.level, claim.reference, metric,
                                                       [claim.factor, *axes], within=condition))
                  for label, metric in METRICS}
        row["pairs"] = max(d[3] for d in deltas.values())
        for label, delta in deltas.items():
            row[f"{claim.contrast}: {label}"] = fmt_interval(*delta[:3]) if delta[3] else "-"
        row["_deltas"] = deltas
        row["verdict"] = classify(deltas[claim.metric], claim.sign)
        rows.append(row)
    return rows


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def verdict_line(claim: Claim, rows: list[dict]) -> str:
    """One line naming the conditions under which the claim holds, is opposite or is not detectable."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        groups.setdefault(row["verdict"], []).append(row["condition"])
    if not groups:
        return f"{claim.contrast}, {claim.metric}: no paired runs."
    words = {HOLDS: "holds at {} (intervals exclude 0, claimed sign)",
             OPPOSITE: "opposite at {} (intervals exclude 0, other sign)",
             NOT_DETECTABLE: "not detectable at {} (intervals include 0)",
             TOO_FEW: "too few pairs for an interval at {}", NO_PAIRS: "no pairs at {}"}
    parts = [words[v].format(_join(groups[v])) for v in (HOLDS, OPPOSITE, NOT_DETECTABLE, TOO_FEW, NO_PAIRS)
             if v in groups]
    return f"{claim.contrast}, {claim.metric}: " + "; ".join(parts) + "."


def public(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def build_page(sweeps: list[tuple[str, list[RecordedRun]]], header: str = "") -> str:
    """A section per sweep (its name, its runs) and dataset, a conditions table and verdict per claim it tests."""
    parts = [header]
    for name, runs in sweeps:
        finished = [r for r in runs if r.counted and r.status == "finished"]
        not_done = [r for r in runs if r.counted and r.status != "finished"]
        for dataset in sorted({r.factors["data"] for r in finished}):
            subset = [r for r in finished if r.factors["data"] == dataset]
            parts.append(f"\n## {name}: {dataset}\n\n{len(subset)} finished runs counted; {len(not_done)} planned "
                         "runs not finished (not averaged in).\n")
            for claim in CLAIMS:
                parts.append(f"\n### Claim: {claim.name}\n\n")
                levels = {r.factors.get(claim.factor) for r in subset}
                if not {claim.level, claim.reference} <= levels:
                    parts.append(f"Not tested by these runs ({claim.factor} takes "
                                 f"{_join(sorted(map(_show, levels)))}); its conditions sweep: {claim.sweep}.\n")
                    continue
                rows = conditions_table(subset, claim)
                parts += [f"Paired by seed, test set, mean [95% t-interval]; verdict on {claim.metric}, claimed "
                          f"sign {'+' if claim.sign > 0 else '-'}.\n\n", markdown_table([public(r) for r in rows]),
                          f"\n**Verdict**: {verdict_line(claim, rows)}\n"]
    return "".join(parts)


def header(argv: list[str], runs_folders: list[Path]) -> str:
    version = code_version()
    commit = version.get("git_commit") or f"package {version.get('package_version')}"
    dirty = " (with uncommitted changes)" if version.get("git_dirty") else ""
    lines = ["# The write-up's claims under each condition\n\n",
             "Generated by `analysis/conditions.py`; do not edit by hand. Made with:\n\n```\n"]
    for folder in runs_folders:
        try:
            plan = read_json(SweepFolder(folder).manifest, expect=dict)
            lines.append(f"python sweeps/local.py {plan['sweep']} --data={plan['data']} --out={folder.parent} "
                         f"--workers=2\n")
        except (OSError, ValueError, KeyError, TypeError):
            pass
    lines.append("python analysis/conditions.py " + " ".join(shlex.quote(a) for a in argv) + "\n```\n\n")
    lines.append(f"Commit {commit}{dirty}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n\n")
    return "".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="sweep folders written by sweeps/local.py")
    parser.add_argument("--out", type=Path, help="write the page here too (e.g. docs/claims.md)")
    args = commandline.parse(parser, argv)
    if args.out:
        commandline.writable_folder(args.out.parent, "--out")  # before reading: one line naming the flag
    sweeps = []
    for folder in args.folders:
        try:
            sweeps.append((folder.name, load_local(folder)))
        except (FileNotFoundError, ValueError) as err:
            parser.error(str(err))
    page = build_page(sweeps, header(sys.argv[1:] if argv is None else argv, args.folders))
    if args.out:
        atomic_write_text(args.out, page)
    print(page)
    return page


if __name__ == "__main__":
    commandline.run(main, "interrupted: no page written")
