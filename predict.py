"""What a trained run says about raw Vietnamese sentences: intent, command, entity spans.

    python predict.py runs/<run_id> "gọi cho mẹ lúc 7 giờ sáng mai"
    python predict.py runs/<run_id> --input=sentences.txt --json > predictions.jsonl
    echo "dat bao thuc 6h30 sang mai" | python predict.py runs/<run_id> --checkpoint=last
    python predict.py runs/<run_id> --pretokenized "đặt báo_thức lúc 6h30"
    python predict.py wandb-artifact://ENTITY/PROJECT/model-<run_id>:best "gọi cho mẹ"   # a --log_model artifact

Everything comes from the run directory train.py wrote: config, labels, invalid-label mask,
tokenizer and weights (`checkpoints/best.pt` by default); a W&B model artifact reference is downloaded
first (telemetry/artifacts.py; the network is used only then). Raw text is NFC-normalised and
word-segmented like the training data (pyvi; see data/segmentation.py). The run's collapse
verdict (summary.json) is printed first: a collapsed run's predictions are shown as they are.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from nlu_collapse import commandline
from nlu_collapse.safeio import decode_utf8, json_text
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.artifacts import fetch_run
from nlu_collapse.telemetry.health import NOT_LEARNED

log = logging.getLogger("predict")

EMPTY_LINES_LISTED = 5


class InputError(ValueError):
    """Sentences that cannot be read; the message names the file (and line)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="predict.py", allow_abbrev=False,
                                     description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a run directory written by train.py (<output_dir>/<run_id>)")
    parser.add_argument("text", nargs="*", help="sentences to predict (default: --input, else stdin)")
    parser.add_argument("--input", help="a UTF-8 file, one sentence a line ('-' for stdin)")
    parser.add_argument("--checkpoint", default="best", help="best (best val entity F1, default) or last")
    parser.add_argument("--json", action="store_true", help="one JSON object per sentence and line")
    parser.add_argument("--pretokenized", action="store_true",
                        help="input is already word-segmented (syllables joined by _): split on whitespace only")
    parser.add_argument("--batch_size", type=int, default=64, help="sentences per forward pass (default: 64)")
    parser.add_argument("--top_k", type=int, default=3, help="intents and commands listed (default: 3)")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"), help="default: cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    return parser


def read_lines(path: str) -> list[tuple[str, int, str]]:
    """(source, line number, text) for each line of a file or stdin. Both are read as bytes and decoded
    here, so bytes that are not UTF-8 are named by source, line and column, whatever the locale."""
    source = "stdin" if path == "-" else path
    try:
        raw = (getattr(sys.stdin, "buffer", None) or sys.stdin).read() if path == "-" else Path(path).read_bytes()
    except OSError as err:
        raise InputError(f"--input={path}: {err.strerror}") from None
    try:
        text = decode_utf8(raw, source) if isinstance(raw, bytes) else raw
    except ValueError as err:
        raise InputError(str(err)) from None
    return [(source, n, line) for n, line in enumerate(text.splitlines(), 1)]


def collect_inputs(args) -> list[tuple[str, int, str]]:
    if args.text and args.input:
        raise InputError("give sentences as arguments or with --input, not both")
    if args.text:
        return [("argument", n, text) for n, text in enumerate(args.text, 1)]
    if args.input:
        return read_lines(args.input)
    if sys.stdin.isatty():
        raise InputError("no sentences: give them as arguments, with --input=FILE, or on stdin")
    return read_lines("-")


def tokenize_inputs(inputs: list[tuple[str, int, str]], pretokenized: bool):
    """(kept inputs, their tokens); empty lines are skipped with one warning per source."""
    from nlu_collapse.data.segmentation import pretokenized as split_words
    from nlu_collapse.data.segmentation import segment

    split = split_words if pretokenized else segment
    kept, tokens, empty = [], [], {}
    for source, line, text in inputs:
        words = split(text)
        if words:
            kept.append((source, line, text))
            tokens.append(words)
        else:
            empty.setdefault(source, []).append(line)
    for source, lines in empty.items():
        listed = ", ".join(map(str, lines[:EMPTY_LINES_LISTED])) + (", ..." if len(lines) > EMPTY_LINES_LISTED else "")
        what = "sentence" if source == "argument" else "line"
        log.warning("%s: %d empty %s%s skipped (%s %s)", source, len(lines), what, "s" if len(lines) > 1 else "",
                    what, listed)
    if not kept:
        raise InputError("no sentence to predict: every input is empty")
    return kept, tokens


def verdict(run) -> str:
    """The run's own collapse verdict (summary.json), one line."""
    summary = run.summary
    head = f"run {run.record.get('run_id', run.run_dir.name)} ({run.record.get('run_name', '')}), " \
           f"{run.checkpoint}.pt at step {run.step}: "
    reasons = summary.get(keys.COLLAPSE_REASONS) or []
    reasons = "; ".join(reasons) if isinstance(reasons, list) else str(reasons)
    if summary.get(keys.COLLAPSED):
        return (head + f"COLLAPSED at step {summary.get(keys.COLLAPSE_STEP)} ({reasons}); "
                "its predictions below are what it learned")
    if summary.get(keys.OUTCOME) == NOT_LEARNED:
        evidence = "; ".join(summary.get(keys.OUTCOME_EVIDENCE) or [])
        return head + f"NOT LEARNED YET ({evidence}); its predictions below are what it learned so far"
    if summary.get(keys.STATUS) != "finished":
        return head + f"no final verdict (summary.json status: {summary.get(keys.STATUS, 'missing')})"
    f1 = {task: keys.split_metric("test", keys.ENTITY_F1 if task == "entity" else keys.macro_f1(task))
          for task in keys.TASKS}
    scores = ", ".join(f"{task} F1 {summary[key]:.3f}" for task, key in f1.items() if key in summary)
    return head + f"healthy ({scores} on test)"


def _ranked(result: dict) -> str:
    if result["prob"] is None:
        return f"{result['label']} (probabilities NaN: argmax falls on the first label)"
    return " | ".join(f"{r['label']} {r['prob']:.3f}" for r in result["top"])


def _dropped(words: list[dict]) -> str:
    """The words the run's tokenizer turns into no subword, by position (from 1) and code points: they are
    invisible in the tokens line, yet the model never saw them."""
    listed = "; ".join(f"word {w['index'] + 1} {w['code_points']}" for w in words)
    many = len(words) > 1
    return f"  ({len(words)} word{'s' * many} produce{'s' * (not many)} no subword with the run's tokenizer: " \
           f"not seen, tagged O: {listed})"


def format_text(text: str, result: dict) -> str:
    lines = [f"> {text}", f"  intent    {_ranked(result['intent'])}"]
    if result["command"] is not None:
        lines.append(f"  command   {_ranked(result['command'])}")
    lines.append("  tokens    " + " ".join(f"{t}/{tag}" for t, tag in zip(result["tokens"], result["tags"])))
    if result["truncated_words"]:
        lines.append(f"  ({result['truncated_words']} words past the run's --max_length: not seen, tagged O)")
    if result["dropped_words"]:
        lines.append(_dropped(result["dropped_words"]))
    spans = [f"{e['type']} \"{e['text']}\" [{e['start']}:{e['end']}]" for e in result["entities"]]
    lines.append("  entities  " + ("; ".join(spans) if spans else "none"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = commandline.parse(build_parser(), argv)  # options before or after the sentences
    for flag in ("batch_size", "top_k"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag}={getattr(args, flag)}: expected a positive integer")
    inputs = collect_inputs(args)  # before loading the model: bad input fails fast

    import torch

    from nlu_collapse.model.inference import predict_sentences
    from nlu_collapse.model.loading import load_run

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device=cuda: no CUDA device is available (use --device=cpu)")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    run = load_run(fetch_run(args.run_dir), args.checkpoint, device)
    kept, tokens = tokenize_inputs(inputs, args.pretokenized)
    print(verdict(run), file=sys.stderr if args.json else sys.stdout, flush=True)
    results = predict_sentences(run, tokens, args.batch_size, args.top_k)
    for (source, line, text), result in zip(kept, results):
        if args.json:
            print(json_text({"source": source, "line": line, "text": text, **result}))
        else:
            print(format_text(text, result))
    return 0


def cli() -> None:
    commandline.run(main)  # InputError, model.loading.RunError: one line naming the file or flag; `| head` is fine


if __name__ == "__main__":
    cli()
