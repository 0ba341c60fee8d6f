"""A one-screen diagnosis of one run: what happened, when, where the first NaN came from, how far it
spread, and the configuration values that matter for a collapse.

    python analysis/diagnose.py runs/<run_id>                  # a run directory written by train.py
    python analysis/diagnose.py results/ablation/runs/<run_id>
    python analysis/diagnose.py ENTITY/PROJECT/RUN_ID          # through wandb.Api()
    python analysis/diagnose.py wandb-artifact://ENTITY/PROJECT/model-<run_id>:best   # a --log_model artifact

Everything comes from the run's own record (config, history, summary, the origin train.py's
forensics recorded); nothing is recomputed. A prediction collapse without NaN (all `O`, one
intent) is explained from what was logged before it: which task's gradient dominated the shared
encoder (`grad/task/*`), the class weights and task weights at the time, and predicted against
gold label distributions.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nlu_collapse import commandline
from nlu_collapse.runfolder import RunFolder
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.artifacts import fetch_run, is_reference
from nlu_collapse.telemetry.health import NOT_LEARNED
from nlu_collapse.telemetry.record import read_history, read_json
from nlu_collapse.telemetry.tracking import require_credentials

# Flags that are raised in healthy runs too (pred_non_O is out of the 15-35% band in most steps of
# most runs) or that summarise other flags: not a "first flag".
QUIET_FLAGS = (keys.COLLAPSED, keys.PROBLEMS, keys.health("pred_non_O_out_of_band"), keys.health("intent_out_of_band"))
TASKS = keys.TASKS
HEALTH = keys.prefix("health")
TEST_RESULTS = (("entity F1", keys.split_metric("test", keys.ENTITY_F1)),
                *((f"{t} F1", keys.split_metric("test", keys.macro_f1(t))) for t in keys.SENTENCE_TASKS),
                ("pred_non_O", keys.split_metric("test", keys.entity_eval(keys.PRED_NON_O))),
                ("final loss", keys.final(keys.LOSS_TOTAL)))


@dataclass
class RunData:
    run_id: str
    name: str
    config: dict                                    # train.py's Config as a dict
    summary: dict
    history: list[dict]                             # training steps only (rows with loss/total)
    labels: dict = field(default_factory=dict)      # intents, tags, commands names (local records only)
    class_weights: list[float] | None = None        # entity class weights (local records only)
    identity: dict = field(default_factory=dict)    # the run's identity (config.json / W&B config `identity`)


def load_local(folder: Path) -> RunData:
    run = RunFolder(folder)
    if not run.is_run():
        raise ValueError(f"{folder}: no config.json (expected a run directory written by train.py, "
                         "e.g. runs/<run_id>, or ENTITY/PROJECT/RUN_ID)")
    meta = read_json(run.config)
    summary = run.read_summary()
    history = [row for row in read_history(run.history) if keys.LOSS_TOTAL in row]
    return RunData(meta.get("run_id", run.name), meta.get("run_name", run.name), meta.get("config", {}),
                   summary, history, meta.get("labels", {}), meta.get("class_weights"), meta.get("identity") or {})


def load_wandb(path: str, api=None) -> RunData:
    if api is None:
        import wandb

        api = wandb.Api()
    run = api.run(path)
    history = [{keys.STEP: row.get("_step"), **row} for row in run.scan_history() if keys.LOSS_TOTAL in row]
    config = dict(run.config)
    return RunData(run.id, run.name, config, _plain(run.summary), history,
                   identity=_plain(config.get("identity") or {}))


def _plain(value):
    """W&B summary sub-dicts as plain dicts."""
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _num(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def timeline(run: RunData) -> list[tuple[str, str]]:
    rows, summary = run.history, run.summary
    first_flag = next(((row[keys.STEP], [k[len(HEALTH):] for k, v in row.items() if k.startswith(HEALTH)
                        and k not in QUIET_FLAGS and v == 1.0]) for row in rows
                       if any(k.startswith(HEALTH) and k not in QUIET_FLAGS and v == 1.0 for k, v in row.items())),
                      None)
    nonfinite = summary.get(keys.FIRST_NONFINITE_STEP)
    if nonfinite is None:  # a record written before the gradient norm counted
        nonfinite = next((row[keys.STEP] for row in rows
                          if not _finite(row.get(keys.LOSS_TOTAL)) or not _finite(row.get(keys.GRAD_NORM))), None)
    onset = summary.get(keys.COLLAPSE_STEP)
    lines = [("first flag", f"step {first_flag[0]}: {', '.join(first_flag[1])}" if first_flag else "none"),
             ("first non-finite", f"step {nonfinite}" if nonfinite is not None else "none"),
             ("collapse onset", f"step {onset} ({'; '.join(summary.get(keys.COLLAPSE_REASONS) or [])})"
              if onset is not None else "none: healthy")]
    if onset is not None and summary.get(keys.STOPPED_DEAD):
        lines.append(("recovery", f"none: {summary.get(keys.DEAD_REASON)}, so no later step could change anything "
                                  f"(stopped there; {summary.get(keys.PLANNED_STEPS)} steps planned)"))
    elif onset is not None:
        lines.append(("recovery", recovery(rows, onset)))
    return lines


def _collapsed_row(row: dict) -> bool:
    """A step that shows the collapse: non-finite, or one class everywhere."""
    return (not _finite(row.get(keys.LOSS_TOTAL)) or not _finite(row.get(keys.GRAD_NORM))
            or row.get(keys.entity_dist(keys.PRED_NON_O)) == 0.0
            or any(row.get(keys.max_share(t)) == 1.0 for t in keys.SENTENCE_TASKS))


def recovery(rows: list[dict], onset: int) -> str:
    """The first step after the onset from which no later step shows the collapse."""
    after = [row for row in rows if row[keys.STEP] >= onset]
    if not after:
        return "unknown (no logged step after the onset)"
    if _collapsed_row(after[-1]):
        return f"none: still collapsed at the last step ({after[-1]['step']})"
    last_bad = max((i for i, row in enumerate(after) if _collapsed_row(row)), default=-1)
    return f"step {after[last_bad + 1]['step']} (healthy from then to the last step, {after[-1]['step']})"


def origin_lines(summary: dict) -> list[str]:
    origin = summary.get(keys.NAN_ORIGIN)
    if not origin:
        if summary.get(keys.FIRST_NONFINITE_STEP) is not None:
            return ["Origin: not recorded (the run was trained with --forensics=off or before forensics existed)"]
        return []
    lines = [f"Origin of the first non-finite value (step {origin.get('step')}):", f"  {origin.get('text')}"]
    components = origin.get("components") or {}
    lines.append("  loss components: " + ", ".join(f"{k} {_num(v)}" for k, v in components.items()))
    where = origin.get("source_detail") or origin.get("source")
    if origin.get("source") and origin.get("source") != where:
        where += f" (called from {origin['source']})"
    forward_module = origin.get("forward_module") or {}
    inside = origin.get("param") or forward_module.get("name")
    if origin.get("op"):
        lines.append(f"  phase {origin.get('phase')}; operation {origin.get('op')} at {where}; "
                     f"module {origin.get('module')}" + (f" ({inside})" if inside else ""))
    if origin.get("inf_origin"):
        inf = origin["inf_origin"]
        lines.append(f"  first infinity: {inf.get('kind')} from {inf.get('op')} at "
                     f"{inf.get('source_detail') or inf.get('source')}")
    spread = {k.rsplit("/", 1)[1]: v for k, v in summary.items()
              if k.startswith(keys.nan_spread("")) and k != keys.nan_spread("by")}
    if spread:
        shares = ", ".join(f"{name} {share:.0%}" for name, share in spread.items() if name != "all")
        if spread.get("all"):
            lines.append(f"Spread after that optimizer step: {spread['all']:.0%} of parameter tensors "
                         f"non-finite ({shares}); carried by {summary.get(keys.nan_spread('by'))}")
        else:
            lines.append("Spread after that optimizer step: none, every parameter tensor still finite")
    return lines


def identity_line(identity: dict) -> str:
    """Which configuration, data bytes and code made the run (its identity), one line."""
    if not identity.get("key"):
        return "Identity: not recorded (a run from before run identities)"
    code = identity.get("code") or {}
    made_with = (f"commit {str(code['git_commit'])[:12]}{' (uncommitted changes)' if code.get('git_dirty') else ''}"
                 if code.get("git_commit") else f"package version {code.get('package_version')}")
    resumed = len(identity.get("resumed_with") or [])
    return (f"Identity: {identity['key'][:12]} (attempt {identity.get('attempt', 1)}"
            + (f", resumed {resumed} time(s)" if resumed else "") + f"); data sha256 "
            f"{str((identity.get('data') or {}).get('sha256'))[:12]}; code {made_with}")


def config_lines(run: RunData) -> list[str]:
    cfg = run.config
    get = lambda key: cfg.get(key, "?")  # noqa: E731
    loss = f"{get('loss_impl')} focal (entity loss scale {get('entity_loss_scale')}, gamma {get('gamma')})"
    if cfg.get("loss_level"):
        loss += f", level {cfg['loss_level']}"
    overrides = ", ".join(f"{key} {cfg[key]}" for key in ("lambda_entity", "lambda_intent", "lambda_command",
                                                          "entity_warmup") if cfg.get(key) is not None)
    lines = [identity_line(run.identity),
             f"Configuration: mask {get('mask_value')}; loss {loss}; lambdas {get('lambdas')}"
             + (f" ({overrides})" if overrides else "") + f"; lr {get('lr')}; grad_clip {get('grad_clip')}; "
             f"precision {get('precision')}; seed {get('seed')}"]
    if run.class_weights:
        weights = dict(zip(run.labels.get("tags") or range(len(run.class_weights)), run.class_weights))
        top = sorted(weights.items(), key=lambda kv: -kv[1])[:3]
        lines.append(f"Entity class weights: O {weights.get('O', '?'):.3g}; highest "
                     + ", ".join(f"{k} {v:.3g}" for k, v in top)
                     + f"; masked tags: {', '.join(run.labels.get('invalid_tags') or []) or 'none'}")
    return lines


def _distribution(counts: list[float], names: list[str] | None, top: int = 3) -> str:
    total = sum(counts) or 1
    shares = sorted(((names[i] if names and i < len(names) else str(i), c / total) for i, c in enumerate(counts)),
                    key=lambda kv: -kv[1])
    return ", ".join(f"{name} {share:.0%}" for name, share in shares[:top] if share > 0)


def prediction_collapse_lines(run: RunData) -> list[str]:
    """Why the predictions became one class, from what was logged up to the collapse onset."""
    onset = run.summary.get(keys.COLLAPSE_STEP)
    before = [row for row in run.history if onset is not None and row[keys.STEP] <= onset]
    if not before:
        return []
    lines = [f"Prediction collapse without NaN (onset step {onset}):"]
    task_rows = [row for row in before if any(keys.task_grad_norm(t) in row for t in TASKS)]
    if task_rows:
        sums = {t: sum(row.get(keys.task_grad_norm(t), 0.0) for row in task_rows) for t in TASKS}
        total = sum(sums.values()) or 1.0
        leader = max(sums, key=sums.get)
        lines.append(f"  gradient on the shared encoder up to the onset ({len(task_rows)} measured steps): "
                     + ", ".join(f"{t} {sums[t] / total:.0%}" for t in TASKS if sums[t])
                     + f" -> {leader} dominated")
    else:
        lines.append("  gradient on the shared encoder: not measured before the onset (--task_grad_every)")
    at = before[-1]
    lambdas = ", ".join(f"{t} {at[keys.task_weight(t)]:.3g}" for t in TASKS if keys.task_weight(t) in at)
    if lambdas:
        lines.append(f"  task weights at step {at['step']}: {lambdas}")
    tags, intents = run.labels.get("tags"), run.labels.get("intents")
    if keys.pred_counts("entity") in at:
        lines.append(f"  entity predicted: {_distribution(at[keys.pred_counts('entity')], tags)}; "
                     f"gold: {_distribution(at[keys.gold_counts('entity')], tags)}")
    if keys.pred_counts("intent") in at:
        lines.append(f"  intent predicted: {_distribution(at[keys.pred_counts('intent')], intents)} "
                     f"(largest share {at.get(keys.max_share('intent'), math.nan):.0%}, "
                     f"gold {at.get(keys.gold_max_share('intent'), math.nan):.0%})")
    return lines


def render(run: RunData) -> str:
    summary = run.summary
    lines = [f"Run {run.run_id}: {run.name}", f"status {summary.get(keys.STATUS, 'unknown')}, "
             f"{summary.get(keys.STEPS, len(run.history))} steps"]
    if summary.get(keys.COLLAPSED):
        lines.append(f"Verdict: COLLAPSED at step {summary.get(keys.COLLAPSE_STEP)} "
                     f"({'; '.join(summary.get(keys.COLLAPSE_REASONS) or [])})")
    elif summary.get(keys.OUTCOME) == NOT_LEARNED:
        lines.append(f"Verdict: NOT LEARNED YET ({'; '.join(summary.get(keys.OUTCOME_EVIDENCE) or [])})")
    else:
        lines.append("Verdict: healthy" + ("" if summary.get(keys.STATUS) == "finished" else " so far"))
    lines += ["Timeline:"] + [f"  {label:<17} {text}" for label, text in timeline(run)]
    lines += origin_lines(summary)
    if summary.get(keys.COLLAPSED) and summary.get(keys.FIRST_NONFINITE_STEP) is None:
        lines += prediction_collapse_lines(run)
    lines += config_lines(run)
    results = [(label, summary.get(key)) for label, key in TEST_RESULTS]
    shown = [f"{label} {_num(v)}" for label, v in results if v is not None]
    if shown:
        lines.append("Test: " + ", ".join(shown))
    return "\n".join(lines)


def load(target: str, api=None) -> RunData:
    """A local run directory, a model artifact reference (downloaded, then read as a run directory), or
    ENTITY/PROJECT/RUN_ID through the W&B API."""
    if is_reference(target):
        return load_local(fetch_run(target, api))
    path = Path(target)
    if path.is_dir():
        return load_local(path)
    if path.exists() or target.count("/") != 2 or target.startswith(("/", ".", "~")):
        raise ValueError(f"{target}: not a run directory (expected runs/<run_id> with a config.json, "
                         "or ENTITY/PROJECT/RUN_ID)")
    if api is None:
        require_credentials(target)  # W&B would otherwise wait at a login prompt on a terminal
    try:
        return load_wandb(target, api)
    except Exception as err:  # wandb raises its own error types (no API key, no such run, no network)
        raise ValueError(f"{target}: W&B could not load the run: {str(err).splitlines()[0]}") from None


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run directory (runs/<run_id>), ENTITY/PROJECT/RUN_ID, or "
                                    "wandb-artifact://ENTITY/PROJECT/NAME:VERSION (a --log_model artifact)")
    args = commandline.parse(parser, argv)
    try:
        text = render(load(args.run))
    except (ValueError, OSError) as err:
        sys.exit(f"error: {err}")
    print(text)
    return text


if __name__ == "__main__":
    commandline.run(main)
