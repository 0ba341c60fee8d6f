"""Name the fix, not only the cause: replay a collapsed run from its last ring checkpoint before the
collapse, once per candidate change (each alone), and rank the changes by what they did to the collapse.

    python analysis/fixes.py runs/<run_id>                              # the default candidates
    python analysis/fixes.py runs/<run_id> --try=lr=1e-4 --try=grad_clip=0.5   # and changes of your own
    python analysis/fixes.py runs/<run_id> --margin=200                 # replay further past the onset
    python analysis/fixes.py --write_docs                               # regenerate docs/fixes.md (~3 min)

The candidates: the mask value (-1e9), the loss form (gather), gamma 2, the new task weights with their
entity warm-up, the learning rate / 2 and / 10, gradient clipping (at 1.0, or a tenth of the run's
threshold), fp32 instead of fp16/bf16 (only for a run in reduced precision), skipping the batch of the
first non-finite step (only for a non-finite collapse), and every `--try`; a candidate the run already
has is left out. A "no change" control replays first: it must collapse where the run did, else the
table says the replay is not faithful. Each replay is judged by the run's own verdict rules
(replay.py), and the table is printed, written beside the run (fixes.json, fixes.txt) and logged to
the run's W&B run as a table (its id resumed; offline runs get it at `wandb sync`).
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from nlu_collapse import commandline, docpage
from nlu_collapse.config import Config, config_from_saved
from nlu_collapse.replay import CONTROL, Change, Replayed, Run, quiet, user_change
from nlu_collapse.runfolder import RunFolder
from nlu_collapse.safeio import atomic_write_text, json_text
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.health import COLLAPSED

ROOT = Path(__file__).resolve().parent.parent
PREVENTS, DELAYS, NO_EFFECT = "prevents the collapse", "delays it to step {}", "no effect"
COLUMNS = ["rank", "change", "outcome", "verdict at the window's end", "loss", "grad norm", "pred_non_O",
           "intent max share"]
SIGNALS = (keys.LOSS_TOTAL, keys.GRAD_NORM, keys.entity_dist(keys.PRED_NON_O), keys.max_share("intent"))
DEFAULT_MARGIN = 100
EXPLODING = ("loss_high", "grad_explode", "loss_nonfinite")  # health flags of a step already going wrong
WRITEUP = ["--mask_value=-inf", "--gamma=3", "--lambdas=old"]  # the write-up's collapsed configuration
LATE_EXPLOSION = ["--lr=1e3", "--grad_clip=0", "--mask_value=none", "--max_steps=40", "--warmup_ratio=0.15",
                  "--ring_every=2"]  # the late explosion tests/test_fixes.py replays


def candidates(cfg: Config, summary: dict) -> list[Change]:
    """The default changes for this run, each alone; those the run already has are left out."""
    found = []
    mask = "finfo_min" if cfg.precision == "fp16" else "-1e9"  # -1e9 does not fit in float16
    if cfg.mask_value != mask:
        found.append(Change(f"mask_value={mask}", {"mask_value": mask}))
    if cfg.loss_impl != "gather":
        found.append(Change("loss_impl=gather", {"loss_impl": "gather"}))
    if cfg.gamma != 2:
        found.append(Change("gamma=2", {"gamma": 2.0}))
    overrides = {"lambda_entity": None, "lambda_intent": None, "lambda_command": None, "entity_warmup": None}
    if cfg.lambdas != "new" or any(getattr(cfg, name) is not None for name in overrides):
        found.append(Change("lambdas=new (with its entity warm-up)", {"lambdas": "new", **overrides}))
    for divisor in (2, 10):
        found.append(Change(f"lr={cfg.lr / divisor:g} (lr / {divisor})", {"lr": cfg.lr / divisor}))
    clip = cfg.grad_clip / 10 if cfg.grad_clip else 1.0
    found.append(Change(f"grad_clip={clip:g}" + (" (a tenth of the run's)" if cfg.grad_clip else ""),
                        {"grad_clip": clip}))
    if cfg.precision != "fp32":
        found.append(Change("precision=fp32", {"precision": "fp32"}))
    first_nonfinite = summary.get(keys.FIRST_NONFINITE_STEP)
    if first_nonfinite is not None:
        found.append(Change(f"skip the batch of step {first_nonfinite}", skip_step=first_nonfinite))
    return found


def trouble_start(history: list[dict], onset: int) -> int:
    """The step the run's trouble began: the onset, or the first of the unbroken stretch of logged steps up
    to it whose loss or gradient norm was already exploding (health/loss_high, health/grad_explode) or
    non-finite. A late explosion is doomed before its first NaN: its last healthy state is before that."""
    start = onset
    for row in sorted((r for r in history if r[keys.STEP] < onset), key=lambda r: -r[keys.STEP]):
        if not any(row.get(keys.health(flag)) == 1.0 for flag in EXPLODING):
            break
        start = row[keys.STEP]
    return start


def judge(replayed: Replayed, onset: int) -> tuple[int, str]:
    """(rank group, outcome text) of a replay against the run's collapse onset."""
    step = replayed.collapse_step
    if step is None:
        return 0, PREVENTS
    if step > onset:
        return 1, DELAYS.format(step)
    return 2, NO_EFFECT


def verdict_text(replayed: Replayed) -> str:
    verdict = replayed.verdict
    if verdict[keys.OUTCOME] != COLLAPSED:
        return f"{verdict[keys.OUTCOME]} at step {replayed.end_step}"
    reason = (verdict[keys.COLLAPSE_REASONS] or [""])[0]
    return f"collapsed at step {replayed.collapse_step}: {reason[:70]}" + ("..." if len(reason) > 70 else "")


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "-"


def rows(replays: list[Replayed], onset: int) -> list[list]:
    """The table's rows, ranked: prevents, then delays (latest first), then no effect; by the final loss inside."""
    def order(replayed):
        group, _ = judge(replayed, onset)
        loss = replayed.last.get(keys.LOSS_TOTAL, math.nan)
        return group, -(replayed.collapse_step or 0), loss if math.isfinite(loss) else math.inf
    ranked = sorted(replays, key=order)
    return [[rank, r.change.name, judge(r, onset)[1], verdict_text(r), *(_number(r.last.get(k)) for k in SIGNALS)]
            for rank, r in enumerate(ranked, 1)]


def markdown(columns: list[str], table: list[list]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in table])


def faithful(control: Replayed, onset: int, first_nonfinite: int | None, recorded: dict[int, float]) -> tuple[bool, str]:
    """Whether the unchanged replay reproduced the run: the same collapse step, and the recorded losses."""
    compared = [step for step in control.losses if step in recorded]
    same = [step for step in compared if _same(control.losses[step], recorded[step])]
    numbers = (f"its losses match the record bit for bit ({len(compared)} of {len(compared)} recorded steps)" if len(same) == len(compared)
               else f"its losses differ from the record on {len(compared) - len(same)} of {len(compared)} recorded "
                    f"steps (first at step {next(s for s in compared if s not in same)})")
    if control.collapse_step == onset and control.verdict[keys.FIRST_NONFINITE_STEP] == first_nonfinite:
        return True, f"the unchanged replay collapses at step {onset}, as the run did; {numbers}"
    return False, (f"NOT FAITHFUL: the unchanged replay {verdict_text(control)}, the run collapsed at step {onset}; "
                   f"{numbers}. The table below cannot be trusted (another device, thread count or code version?)")


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def limits(start: int, end: int, onset: int, planned: int) -> str:
    return (f"What the replay cannot show: only steps {start + 1}-{end} are replayed (the collapse at step {onset} "
            f"plus the margin), not the rest of training ({planned} steps planned): a change that prevents the "
            "collapse here may still fail later or hurt the final scores, and one that delays it is judged on this "
            "window only. The verdict is the run's own, with the window's end taken as the end of training (a "
            "degenerate phase still open there counts only under the run's rules). Each change is tried alone, "
            "from the same state, on the same batches: combinations and other changes are not tested.")


def fixes(folder: RunFolder, margin: int = DEFAULT_MARGIN, tries: list[str] = (), wandb_mode: str | None = None) -> dict:
    """Replay and rank, print the table; returns what fixes.json holds (`collapsed: False` and no table for a
    run that did not collapse)."""
    started = time.perf_counter()
    cfg = config_from_saved(folder.read_config(), folder.config)  # not a run folder, a damaged config.json: named
    tried = [user_change(text, cfg) for text in tries]  # a bad --try is refused before any work
    summary = folder.read_summary()
    onset = summary.get(keys.COLLAPSE_STEP)
    if onset is None:
        text = (f"{folder.path}: did not collapse (outcome: {summary.get(keys.OUTCOME, 'unknown')}, status: "
                f"{summary.get(keys.STATUS, 'unknown')}): nothing to fix, no change tried")
        print(text)
        return {"run": str(folder.path), "collapsed": False, "text": text}
    with quiet():
        run = Run(folder)
        first_nonfinite = summary.get(keys.FIRST_NONFINITE_STEP)
        trouble = trouble_start(run.history(), onset)
        start, checkpoint = run.start(trouble)
        end = min(onset + margin, run.parts.total_steps)
        changes = [CONTROL, *candidates(run.cfg, summary), *tried]
        replays = []
        with tqdm(total=len(changes) * (end - start), unit="step", file=sys.stderr, disable=None,
                  mininterval=1.0) as bar:
            for change in changes:
                bar.set_description(change.name)
                replays.append(run.replay(change, start, checkpoint, end, lambda step: bar.update(1)))
                bar.update(end - replays[-1].end_step)  # a replay whose model died stopped there
    control, tried_replays = replays[0], replays[1:]
    ok, control_text = faithful(control, onset, first_nonfinite, run.recorded_losses())
    table = rows(tried_replays, onset)
    seconds = time.perf_counter() - started
    header = (f"{folder.path} ({run.record.get('run_name', folder.name)}): collapsed at step {onset} "
              f"({'; '.join(summary.get(keys.COLLAPSE_REASONS) or [])})"
              + (f"; exploding since step {trouble} (loss > 5 or gradient norm > 10 on every logged step since)"
                 if trouble < onset else "") + "\n"
              f"Replayed from {folder.ring_checkpoint(start).relative_to(folder.path)} (the state after step {start}"
              f"{', the initial state' if start == 0 else ''}) through step {end}, {len(tried_replays)} changes each "
              f"alone, in {seconds:.0f} s.\nControl: {control_text}.")
    text = "\n\n".join([header, markdown(COLUMNS, table), limits(start, end, onset, run.parts.total_steps)])
    result = {"run": str(folder.path), "collapsed": True, "onset": onset, "first_nonfinite_step": first_nonfinite,
              "trouble_step": trouble, "start_step": start, "end_step": end, "margin": margin, "faithful": ok, "control": control_text,
              "columns": COLUMNS, "rows": table, "seconds": seconds, "text": text}
    atomic_write_text(folder.fixes, json_text(result, indent=1) + "\n")
    atomic_write_text(folder.fixes_text, text + "\n")
    print(text)
    print(log_to_wandb(run, table, wandb_mode))
    return result


def log_to_wandb(run: Run, table: list[list], mode: str | None) -> str:
    """The table on the run's own W&B run (its id resumed), or why not."""
    from nlu_collapse.telemetry.tracking import resolve_mode

    mode = resolve_mode(mode or run.cfg.wandb_mode)
    wandb_id = run.summary.get(keys.WANDB_ID)
    if mode == "disabled" or not wandb_id:
        return ("W&B: not logged (the run was recorded without W&B)" if not wandb_id
                else "W&B: not logged (--wandb_mode=disabled)")
    import wandb

    wandb_run = wandb.init(id=wandb_id, resume="allow", project=run.cfg.wandb_project, entity=run.cfg.wandb_entity,
                           dir=str(run.folder.path.parent), mode=mode)
    wandb_run.log({keys.TABLE_FIXES: wandb.Table(columns=COLUMNS, data=table)})
    wandb_run.finish()
    where = "uploaded with `wandb sync` of the offline run" if mode == "offline" else "online"
    return f"W&B: table {keys.TABLE_FIXES} logged on run {wandb_id} ({where})"


def write_docs(path: Path = ROOT / "docs" / "fixes.md") -> str:
    """Train the write-up's configuration and a late explosion (default data), run the default candidates on
    each, and write both tables, with the commands and seconds, into docs/fixes.md's measured block
    (docpage.py: the rest of the page is kept, and docs/build.py --check catches a hand edit)."""
    from nlu_collapse import train

    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        for title, flags in (("The write-up's configuration", WRITEUP), ("A late explosion", LATE_EXPLOSION)):
            command = ["--wandb_mode=disabled", "--threads=2", *flags]
            summary = train.main([f"--output_dir={tmp}", *command])
            folder = RunFolder(Path(tmp) / summary[keys.RUN_ID])
            started = time.perf_counter()
            result = fixes(folder)
            shown = result["text"].replace(str(folder.path), "runs/<run_id>")
            sections.append(f"### {title}\n\n```bash\npython train.py {' '.join(command)}\n"
                            f"time python analysis/fixes.py runs/<run_id>    # {time.perf_counter() - started:.0f} s "
                            f"here, W&B disabled\n```\n\n{shown}\n")
    return docpage.write(path, "fixes", "python analysis/fixes.py --write_docs", "\n".join(sections))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", help="a run folder written by train.py (runs/<run_id>)")
    parser.add_argument("--margin", type=int, default=DEFAULT_MARGIN,
                        help="steps replayed past the collapse onset (capped at the run's planned steps)")
    parser.add_argument("--try", dest="tries", action="append", default=[], metavar="FLAG=VALUE",
                        help="one more change to try alone, a train.py flag (repeatable): --try=lr=1e-4")
    parser.add_argument("--wandb_mode", choices=["auto", "online", "offline", "disabled"],
                        help="where the table goes in W&B (default: the run's own mode)")
    parser.add_argument("--write_docs", action="store_true", help="regenerate docs/fixes.md")
    args = commandline.parse(parser, argv)
    if args.run is None and not args.write_docs or args.margin < 1:
        parser.error("give a run folder (and --margin >= 1)")
    try:
        if args.write_docs:
            write_docs()
        else:
            fixes(RunFolder(args.run), args.margin, args.tries, args.wandb_mode)
    except (ValueError, OSError) as err:  # not a run, no or a damaged ring checkpoint, a bad --try: one line
        sys.exit(f"error: {commandline.one_line(err)}")
    return 0


if __name__ == "__main__":
    commandline.run(main)
