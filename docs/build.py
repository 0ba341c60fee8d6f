"""Every generated block of README.md and docs/*.md, each from its one source.

    python docs/build.py            # rewrite every generated block
    python docs/build.py --check    # exit 1 naming each block that differs from what its source makes (CI)

A page is prose written by hand around blocks marked

    <!-- generated: NAME (python docs/build.py) -->
    ...
    <!-- /generated: NAME -->

whose content this script makes and nobody edits: the flag reference from `config.Config` (its field
comments are the one place a flag is documented), the collapse verdict from `telemetry/health.py`'s
docstring, the metric keys from `telemetry/keys.py`, the run-folder layout from `runfolder.py`, the fault
table from the fault tests (`tests/faults_table.py`), the dataset cards from `data/card.py`, and every
results table from the sweep evidence in `docs/evidence/` (`analysis/evidence.py` writes it from the run
folders; `analysis/report.py`, `analysis/tune.py` and `analysis/conditions.py` turn it into tables).
Each results block names the command that made its runs, the code version the runs recorded and the
evidence file, so every number traces to one run of one configuration on one version of the data.
Measurements CI cannot repeat (the bench, the fix-finder's timed replays) are measured blocks, written by
their own command (`docpage.py`); `--check` fails when one was edited by hand since.
"""
from __future__ import annotations

import argparse
import inspect
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path

from nlu_collapse import docpage

ROOT = Path(__file__).resolve().parent.parent
EVIDENCE = ROOT / "docs" / "evidence"
BLOCK_RE = re.compile(r"<!-- generated: ([\w-]+) \(python docs/build\.py\) -->\n(.*?)<!-- /generated: \1 -->",
                      re.DOTALL)
BLOCKS: dict[str, Callable[[], str]] = {}


def block(name: str):
    def register(make: Callable[[], str]) -> Callable[[], str]:
        BLOCKS[name] = make
        return make
    return register


def _docstring(module) -> str:
    return inspect.getdoc(module).strip() + "\n"


# --- reference pages
@block("flags")
def flags() -> str:
    from nlu_collapse.config import RANGES, Config, _field_type, describe_range, field_docs

    docs = field_docs()
    rows = ["| flag | type | default | accepts | meaning |", "|---|---|---|---|---|"]
    for field in fields(Config):
        base, optional, allowed = _field_type(field.type)
        kind = " / ".join(allowed) if allowed else base.__name__ + (" or None" if optional else "")
        accepts = describe_range(field.name) if field.name in RANGES else ("one of the type's values" if allowed
                                                                            else "")
        default = "" if field.default is MISSING else f"`{field.default}`"
        rows.append(f"| `--{field.name}` | {kind} | {default} | {accepts} | {docs.get(field.name, '')} |")
    return "\n".join(rows) + "\n"


@block("verdict")
def verdict() -> str:
    from nlu_collapse.telemetry import health

    return _docstring(health)


@block("metrics")
def metrics() -> str:
    from nlu_collapse.telemetry import keys

    return _docstring(keys)


@block("run-folder")
def run_folder() -> str:
    from nlu_collapse import runfolder

    return _docstring(runfolder)


@block("faults")
def faults() -> str:
    sys.path.insert(0, str(ROOT))
    from tests import faults_table

    counts = faults_table.collected()
    missing = faults_table.unassigned(counts)
    if missing:
        raise SystemExit(f"tests/faults_table.py: fault tests in no family (or named twice, or gone): {', '.join(missing)}")
    return faults_table.table(counts)


@block("datasets")
def datasets() -> str:
    from nlu_collapse.data import EMBEDDED, load_dataset, materialize_embedded
    from nlu_collapse.data.card import card
    from nlu_collapse.data.novelty import recorded_held_out

    parts = []
    for name in EMBEDDED:
        parts += [f"`python -m nlu_collapse.data.card --data={name}`:\n\n```\n",
                  card(load_dataset(name), recorded_held_out(materialize_embedded(name))), "\n```\n\n"]
    return "".join(parts)


@block("sweeps")
def sweeps() -> str:
    """Each sweep YAML: its question (the header comment's first sentence) and how many runs it plans."""
    import math

    import yaml

    rows = ["| file | question | runs |", "|---|---|---|"]
    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        header = " ".join(line.lstrip("# ").strip() for line in path.read_text(encoding="utf-8").splitlines()
                          if line.startswith("#"))
        header = re.sub(r"^Question(?: \(issue \d+\))?: ", "", header)
        question = re.match(r"(.+?[?.])(\s|$)", header).group(1)
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        values = [len(p["values"]) if "values" in p else 1 for p in spec["parameters"].values()]
        runs = spec.get("run_cap") if spec.get("method") == "random" else math.prod(values)
        rows.append(f"| `sweeps/{path.name}` | {question} | {runs} |")
    return "\n".join(rows) + "\n"


FORENSICS_RUN = ["train.py", "--mask_value=-inf", "--gamma=3", "--lambdas=old", "--run_id=docs-inf",
                 "--threads=1", "--wandb_mode=disabled"]


@block("forensics-example")
def forensics_example() -> str:
    """The write-up's configuration trained and diagnosed, as a user types it (the record under runs/)."""
    import subprocess

    with tempfile.TemporaryDirectory() as out:
        run = subprocess.run([sys.executable, *FORENSICS_RUN, f"--output_dir={out}"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()[-1]
        shown = subprocess.run([sys.executable, "analysis/diagnose.py", f"{out}/docs-inf"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        text = f"{run}\n```\n\n```bash\n.venv/bin/python analysis/diagnose.py runs/docs-inf\n```\n```\n{shown}"
        text = text.replace(out, "runs")
    text = re.sub(r"code commit \w+( \(uncommitted changes\))?", "code commit <the commit that trained it>", text)
    return f"```bash\n.venv/bin/python {' '.join(FORENSICS_RUN)}\n```\n```\n{text}\n```\n"


def quickstart_commands() -> list[str]:
    """The train.py lines of the README's quick-start block, as written there."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1]
    code = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in code.splitlines() if line.startswith(".venv/bin/python train.py")]


@block("quickstart")
def quickstart() -> str:
    """Each quick-start run as a user types it (in a fresh folder: its records go to runs/ there); its verdict line."""
    import shlex
    import subprocess

    lines = []
    with tempfile.TemporaryDirectory() as cwd:
        for command in quickstart_commands():
            argv = shlex.split(command)
            argv = [sys.executable, str(ROOT / "train.py"), *argv[2:]]
            out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=True).stdout
            verdict = out.strip().splitlines()[-1]
            run_id = re.match(r"\[([^\]]+)\]", verdict).group(1)
            lines.append(verdict.replace(run_id, "<run_id>"))
    return "```\n" + "\n".join(lines) + "\n```\n"


@block("toolkit-arguments")
def toolkit_arguments() -> str:
    from nlu_collapse.toolkit.monitor import CollapseMonitor

    return arguments_table(CollapseMonitor)


def arguments_table(cls: type) -> str:
    """A class's arguments: meanings from its docstring's Args, defaults from its signature."""
    doc = inspect.getdoc(cls) or ""
    args = doc.split("Args:\n", 1)[1] if "Args:\n" in doc else ""
    entries = re.findall(r"^    (\w+): (.*?)(?=^    \w+: |\Z)", args, flags=re.MULTILINE | re.DOTALL)
    parameters = inspect.signature(cls.__init__).parameters
    if [name for name, _ in entries] != [name for name in parameters if name != "self"]:
        raise SystemExit(f"{inspect.getsourcefile(cls)}: {cls.__name__}'s docstring Args "
                         f"({', '.join(name for name, _ in entries) or 'none'}) do not name its parameters in order "
                         f"({', '.join(name for name in parameters if name != 'self')})")
    rows = [f"| argument of `{cls.__name__}` | default | meaning |", "|---|---|---|"]
    for name, text in entries:
        default = parameters[name].default
        shown = "required" if default is inspect.Parameter.empty else f"`{default!r}`"
        rows.append(f"| `{name}` | {shown} | {' '.join(text.split())} |")
    return "\n".join(rows) + "\n"


@block("measured-times")
def measured_times(page: Path = ROOT / "docs" / "performance.md") -> str:
    """The README commands' times, read from the bench's measured block on docs/performance.md."""
    body = docpage.read(page.read_text(encoding="utf-8"), "bench") or ""

    def cell(label: str) -> str | None:
        found = re.search(rf"^\| {re.escape(label)}[^|]* \| ([^|]+) \|", body, flags=re.MULTILINE)
        return found.group(1).strip() if found else None

    main_job, tests, one_run = cell("the main job from a fresh clone"), cell("the test suite"), cell("whole process")
    if None in (main_job, tests, one_run):
        return ("Not measured at this version: `python bench/bench.py --goals --write_docs`, then "
                "`python docs/build.py`.\n")
    written = body.splitlines()[0].replace("Written by", "Measured by", 1)
    return (f"{written} The main job took {main_job} from a fresh clone, installation included; the tests "
            f"{tests}, set-up excluded; one default `train.py` run {one_run} s in a fresh process. The machine and "
            "the rest: [docs/performance.md](docs/performance.md).\n")


# --- results, from the sweep evidence
def _evidence(*names: str):
    """(headers, runs) of the named evidence files, or the names of the missing ones."""
    from nlu_collapse.analysis.evidence import load

    headers, runs, missing = [], [], []
    for name in names:
        path = EVIDENCE / f"{name}.jsonl"
        if not path.exists():
            missing.append(name)
            continue
        header, some = load(path)
        headers.append(header)
        runs += some
    return headers, runs, missing


def _provenance(headers: list[dict], missing: list[str], analysis: str) -> str:
    lines = ["Made with:\n\n```bash\n"]
    lines += [f"{h['command']} --out=results\n" for h in headers]
    lines.append(f"python analysis/evidence.py {' '.join('results/' + h['name'] for h in headers)}\n")
    lines.append(f"{analysis}\n```\n\n")
    versions = sorted({v for h in headers for v in h["code_versions"]})
    files = ", ".join(f"`docs/evidence/{h['name']}.jsonl`" for h in headers)
    lines.append(f"The runs recorded code version {', '.join(versions) or 'unknown'}; the evidence: {files}.\n")
    if missing:
        lines.append("\nNot recorded yet (no evidence file): " + ", ".join(f"`{m}`" for m in missing) + ".\n")
    return "".join(lines)


def _report(names: tuple[str, ...], title: str) -> str:
    from nlu_collapse.analysis.report import build_report

    headers, runs, missing = _evidence(*names)
    if not runs:
        return _provenance(headers, missing, "python docs/build.py")
    with tempfile.TemporaryDirectory() as out:
        text = build_report(runs, title, Path(out), plots=False)
    return _provenance(headers, missing, "python docs/build.py") + "\n" + docpage.demoted(text)


SWEEPS = {"ablation": "the 24-run ablation (mask x gamma x lambdas, 3 seeds)",
          "mechanism": "the loss form x the mask value (gamma 2, new lambdas, 3 seeds)",
          "baseline": "the entity loss: plain CE, class-weighted CE, focal gamma 2 and 3 (3 seeds)"}
DATASETS = ("phone-assistant-wild", "phone-assistant")


def _register_sweep(sweep: str, title: str) -> None:
    BLOCKS[f"results-{sweep}"] = lambda: _report(tuple(f"{sweep}-{d}" for d in DATASETS), title)


for _sweep, _title in SWEEPS.items():
    _register_sweep(_sweep, _title)


def _tune(name: str) -> str:
    from nlu_collapse.analysis.tune import build_tune_report

    headers, runs, missing = _evidence(name)
    if not runs:
        return _provenance(headers, missing, "python docs/build.py")
    with tempfile.TemporaryDirectory() as out:
        text = build_tune_report(runs, name, Path(out))
    return _provenance(headers, missing, "python docs/build.py") + "\n" + docpage.demoted(text)


for _name in ("tune-phone-assistant-wild", "tune-phone-assistant", "tune-confirm-phone-assistant-wild"):
    BLOCKS[f"results-{_name}"] = lambda name=_name: _tune(name)


# --- the same sweeps with a real pretrained encoder (all-MiniLM-L6-v2), on the default dataset only
PRETRAINED = "pretrained-{}-" + DATASETS[0]
BLOCKS["results-pretrained-tune"] = lambda: _tune("pretrained-tune")
for _sweep, _title in SWEEPS.items():
    BLOCKS[f"results-pretrained-{_sweep}"] = lambda sweep=_sweep, title=_title: _report(
        (PRETRAINED.format(sweep),), f"{title}, pretrained encoder all-MiniLM-L6-v2")


@block("results-pretrained-compare")
def pretrained_compare() -> str:
    """Each sweep's cells from scratch and with the pretrained encoder side by side, and each claim's verdict
    line on either encoder's ablation: the same analysis, the same dataset, one table per sweep."""
    from nlu_collapse.analysis.conditions import CLAIMS, conditions_table, verdict_line
    from nlu_collapse.analysis.report import markdown_table, side_by_side, varied

    names, parts = [], []
    for sweep in SWEEPS:
        pair = {"from scratch": f"{sweep}-{DATASETS[0]}", "pretrained": PRETRAINED.format(sweep)}
        names += pair.values()
        runs = {label: [r for r in _evidence(name)[1] if r.counted and r.status == "finished"]
                for label, name in pair.items()}
        if not all(runs.values()):
            continue
        factors = varied(runs["from scratch"] + runs["pretrained"])
        parts.append(f"\n### {sweep}: {SWEEPS[sweep]}\n\nTest set, mean ± std over finished runs.\n\n"
                     + markdown_table(side_by_side(runs, factors)))
        if sweep == "ablation":
            parts.append("\nThe write-up's claims on either encoder's ablation (paired by seed, test set, 95% "
                         "t-interval per condition):\n\n")
            parts += [f"- {claim.name}:\n  - from scratch: {verdict_line(claim, conditions_table(runs['from scratch'], claim))}\n"
                      f"  - pretrained: {verdict_line(claim, conditions_table(runs['pretrained'], claim))}\n"
                      for claim in CLAIMS]
    headers, _, missing = _evidence(*names)
    return _provenance(headers, missing, "python docs/build.py") + "".join(parts)


@block("results-pretrained-claims")
def pretrained_claims() -> str:
    """The write-up's claims on the pretrained encoder's ablation and mechanism sweeps."""
    from nlu_collapse.analysis.conditions import build_page

    headers, _, missing = _evidence(*(PRETRAINED.format(s) for s in ("ablation", "mechanism")))
    sweeps = [(h["name"], _evidence(h["name"])[1]) for h in headers]
    return _provenance(headers, missing, "python docs/build.py") + docpage.demoted(build_page(sweeps), levels=1)


@block("results-claims")
def claims() -> str:
    from nlu_collapse.analysis.conditions import build_page

    names = [f"{s}-{d}" for s in ("claims", "claims-gamma", "mechanism") for d in DATASETS]
    headers, _, missing = _evidence(*names)
    sweeps = [(h["name"], _evidence(h["name"])[1]) for h in headers]
    return _provenance(headers, missing, "python docs/build.py") + docpage.demoted(build_page(sweeps), levels=1)


@block("readme-headline")
def readme_headline() -> str:
    """The README's before/after table over both datasets, and each factor's effect with its verdict."""
    from nlu_collapse.analysis.report import before_after, factor_effects, markdown_table

    columns, effects = {}, []
    for data in DATASETS:
        headers, runs, missing = _evidence(f"ablation-{data}")
        finished = [r for r in runs if r.counted and r.status == "finished"]
        if missing or not finished:
            return f"No evidence for `ablation-{data}` yet: run the main job, then `python docs/build.py`.\n"
        columns[data] = before_after(finished, [r for r in runs if r.counted])
        effects += [{"data": data, **row} for row in factor_effects(finished, ["mask_value", "gamma", "lambdas"])
                    if (row["factor"] == "mask_value") == (row["among"] == "all runs") and "-inf" not in row["among"]]
    first = columns[DATASETS[0]]
    rows = []
    for i, row in enumerate(first):
        merged = {"metric": row["metric"]}
        for data in DATASETS:
            merged[f"{data}: before"] = columns[data][i]["before"]
            merged[f"{data}: after"] = columns[data][i]["after"]
        merged |= {"write-up before": row["write-up before"], "write-up expected after": row["write-up expected after"]}
        rows.append(merged)
    shown = [{"data": e["data"], "change": f"{e['factor']} {e['vs']} -> {e['level']}", "among": e["among"],
              "pairs": e["pairs"], "delta entity F1": e["delta entity F1"], "delta intent F1": e["delta intent F1"],
              "delta command F1": e["delta command F1"], "verdict": e["verdict"]} for e in effects]
    return (markdown_table(rows) + "\nEach factor, paired by seed with the other factors fixed (the mask among all runs, gamma and the "
            "task weights among the runs that do not collapse; test set, mean [95% t-interval]):\n\n" + markdown_table(shown))


# --- writing and checking
def _traced(text: str, where: str) -> list[str]:
    """A measured block that names evidence runs (the held-out tables) still matches the evidence."""
    from nlu_collapse.analysis.heldout import stale_traces

    block = docpage.read(text, "heldout")
    return [f"{where}: measured block 'heldout': {problem} (rerun the block's command)"
            for problem in (stale_traces(block, EVIDENCE) if block else [])]


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def render(text: str, made: dict[str, str]) -> str:
    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in BLOCKS:
            raise SystemExit(f"unknown generated block {name!r} (docs/build.py knows {', '.join(sorted(BLOCKS))})")
        if name not in made:
            made[name] = BLOCKS[name]()
        return f"<!-- generated: {name} (python docs/build.py) -->\n{made[name]}<!-- /generated: {name} -->"
    return BLOCK_RE.sub(fill, text)


def build(check: bool) -> list[str]:
    """Rewrite (or, with `check`, compare) every page; returns the problems found."""
    made, problems, used = {}, [], set()
    for page in pages():
        text = page.read_text(encoding="utf-8")
        used |= {m.group(1) for m in BLOCK_RE.finditer(text)}
        problems += docpage.problems(text, str(page.relative_to(ROOT)))
        problems += _traced(text, str(page.relative_to(ROOT)))
        new = render(text, made)
        if new != text:
            if check:
                stale = [m.group(1) for m, n in zip(BLOCK_RE.finditer(text), BLOCK_RE.finditer(new)) if m.group(0) != n.group(0)]
                problems.append(f"{page.relative_to(ROOT)}: stale generated block(s) {', '.join(stale)}")
            else:
                page.write_text(new, encoding="utf-8")
    problems += [f"generated block {name!r} appears on no page" for name in sorted(set(BLOCKS) - used)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare, write nothing; exit 1 if anything is stale")
    args = parser.parse_args(argv)
    problems = build(args.check)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems and args.check:
        print("run: python docs/build.py", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
