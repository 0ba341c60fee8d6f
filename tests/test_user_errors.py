"""A user's mistake, an untrusted run folder, a command line that should work: what every command says.

Each case runs the real command (a process, or `main(argv)` in this one) and asserts its exit status, that
no traceback is printed, that the one-line message names the flag or file, and that nothing written before
is lost. Three classes, each fixed at one place (commandline.py, config.py, model/loading.py):
- tracebacks for user errors: W&B names W&B refuses, a run id too long for the W&B artifacts named after
  it, a damaged W&B id on resume, bytes that are not UTF-8, an output folder that cannot be written, W&B
  without a login, Ctrl-C pressed twice;
- untrusted run folders: a folder whose Hugging Face config names custom code is refused, and nothing in it
  runs, whether stdin says "y" or a terminal would have been asked;
- false refusals: options after the positional arguments, a negative value after a space.
"""
from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nlu_collapse import predict, train
from nlu_collapse.analysis import heldout, report
from nlu_collapse.runfolder import RunFolder
from nlu_collapse.telemetry.record import read_history, read_json

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# The longest run id whose W&B artifact names all fit W&B's 128 characters: a rerun's W&B id is
# `<id>-xxxx`, and its intent confusion table becomes `run-<id>-xxxx-testintent_confusion_table-<crc32>`.
LONGEST_RUN_ID = 128 - len("run-") - len("-xxxx") - len("-testintent_confusion_table") - len("-abcdef")


def tiny(data: Path, out: Path, run_id: str, *flags: str, epochs: int = 1, wandb: str = "disabled") -> list[str]:
    return [f"--data={data}", f"--output_dir={out}", f"--run_id={run_id}", f"--epochs={epochs}", "--threads=1",
            f"--wandb_mode={wandb}", "--task_grad_every=0", *flags]


@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory) -> Path:
    """One finished tiny run (one epoch, two steps)."""
    out = tmp_path_factory.mktemp("user-errors-run")
    train.main(tiny(tiny_data, out, "done"))
    return out / "done"


@pytest.fixture(scope="module")
def sweep(finished_run, tmp_path_factory) -> Path:
    """A sweep folder (what report, tune and heldout read) holding the finished run."""
    folder = tmp_path_factory.mktemp("user-errors-sweep") / "sweep"
    shutil.copytree(finished_run, RunFolder(folder / "runs" / "done").path)  # SweepFolder's runs/ layout
    return folder


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a test runner started in the background ignores SIGINT


def command(script: str, *args: str, stdin: bytes = b"", env: dict | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """`python <script> <args>` from the repository root, bytes in, text out."""
    done = subprocess.run([PYTHON, script, *args], cwd=ROOT, input=stdin, capture_output=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, preexec_fn=_default_sigint)
    done.stdout, done.stderr = (stream.decode("utf-8", "backslashreplace") for stream in (done.stdout, done.stderr))
    return done


def one_line_error(done: subprocess.CompletedProcess, status: int, *named: str) -> str:
    """The last stderr line of a command that failed with `status`, naming each of `named`, no traceback."""
    assert done.returncode == status, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    for name in named:
        assert name in last, (name, last)
    return last


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 1. tracebacks for user errors ------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--wandb_project=a/b", "--wandb_project=team:nlu", "--wandb_project=" + "p" * 129,
                                  "--wandb_entity=my-team/x"])
def test_a_wandb_name_wandb_refuses_is_an_error_before_anything_is_written(tiny_data, tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as exit_info:
        train.main(tiny(tiny_data, tmp_path / "out", "named", flag, wandb="offline"))
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and flag.split("=")[0] in last and "W&B expects" in last
    assert not (tmp_path / "out").exists()


def test_a_run_id_too_long_for_wandb_artifacts_is_refused_naming_the_limit(tiny_data, tmp_path, capsys):
    """Refused before anything is written; the longest allowed id trains and reruns with W&B offline."""
    with pytest.raises(SystemExit) as exit_info:
        train.main(tiny(tiny_data, tmp_path / "out", "a" * (LONGEST_RUN_ID + 1), wandb="offline"))
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and "allows 128" in last
    assert f"--run_id: {LONGEST_RUN_ID + 1} characters, at most {LONGEST_RUN_ID} with W&B on" in last
    assert not (tmp_path / "out").exists()
    from nlu_collapse.config import RUN_ID_MAX_WANDB, wandb_artifacts

    assert RUN_ID_MAX_WANDB == LONGEST_RUN_ID and max(map(len, wandb_artifacts("a" * LONGEST_RUN_ID))) == 128
    # the boundary against W&B itself: the rerun's W&B id (`<id>-xxxx`) makes the longest artifact names
    longest = tiny(tiny_data, tmp_path / "out", "c" * LONGEST_RUN_ID, "--log_model=True", wandb="offline")
    for _ in range(2):
        assert train.main(longest)["status"] == "finished"
    rerun = read_json(RunFolder(tmp_path / "out" / ("c" * LONGEST_RUN_ID)).summary)["wandb_id"]
    assert rerun.startswith("c" * LONGEST_RUN_ID + "-")
    train.main(tiny(tiny_data, tmp_path / "out", "a" * 120, "--max_steps=1"))  # without W&B: no such limit


def test_a_run_id_from_the_environment_too_long_for_wandb_is_one_line(tiny_data, tmp_path):
    args = tiny(tiny_data, tmp_path / "out", "x", wandb="offline")
    done = command("train.py", *[a for a in args if not a.startswith("--run_id")],
                   env={"WANDB_RUN_ID": "b" * (LONGEST_RUN_ID + 1)})
    one_line_error(done, 1, "$WANDB_RUN_ID", f"at most {LONGEST_RUN_ID}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damaged", [12345, "x/y:z", ""])
def test_a_damaged_wandb_id_on_resume_goes_on_in_a_new_wandb_run(tiny_data, tmp_path, crash_in_second_epoch,
                                                                damaged, caplog):
    with pytest.raises(KeyboardInterrupt):
        train.main(tiny(tiny_data, tmp_path, "cut", epochs=2, wandb="offline"))
    crash_in_second_epoch.restore()
    folder = RunFolder(tmp_path / "cut")
    summary = read_json(folder.summary)
    folder.summary.write_text(json.dumps({**summary, "wandb_id": damaged}), encoding="utf-8")
    kept = [row["step"] for row in read_history(folder.history)]
    resumed = train.main([f"--resume={folder.path}"])
    assert resumed["status"] == "finished" and resumed["wandb_id"].startswith("cut-")
    assert f"{folder.summary}: wandb_id={damaged!r} is not a W&B run id" in caplog.text
    assert [row["step"] for row in read_history(folder.history)][:len(kept)] == kept  # nothing lost


@pytest.mark.parametrize("env", [{}, {"PYTHONIOENCODING": "utf-8:strict"}, {"PYTHONIOENCODING": "latin-1"}],
                         ids=["locale", "strict", "latin-1"])
def test_predict_stdin_that_is_not_utf8_names_stdin_line_and_byte(finished_run, env):
    done = command("predict.py", str(finished_run), stdin="gọi mẹ\n".encode() + b"b\xe1t wifi\n", env=env)
    one_line_error(done, 1, "stdin:2: not UTF-8 text (byte 0xe1 at column 2)")


def test_a_predict_argument_that_is_not_utf8_is_named_with_its_byte_offset(finished_run):
    done = subprocess.run([PYTHON, "predict.py", str(finished_run), "gọi mẹ", b"b\xe1t wifi"], cwd=ROOT,
                          capture_output=True, timeout=120)
    stderr = done.stderr.decode("utf-8", "backslashreplace")
    assert done.returncode == 2 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].endswith(
        r"error: argument 3 'b\xe1t wifi': not UTF-8 text (byte 0xe1 at byte offset 1)")


@pytest.mark.parametrize("split", ["segment", "pretokenized"])
def test_the_segmenters_refuse_escaped_bytes_with_a_value_error(split):
    """A library caller's text with a lone surrogate: a ValueError, not pyvi's SystemError."""
    from nlu_collapse.data import segmentation

    with pytest.raises(ValueError, match=r"not UTF-8 text: '\\udce1' at character 1"):
        getattr(segmentation, split)("b\udce1t wifi")


def test_a_train_flag_that_is_not_utf8_is_refused_before_anything_is_written(tiny_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(tiny(tiny_data, tmp_path / "out", "bytes", "--run_name=m\udcffe"))
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and "--run_name: not UTF-8 text (byte 0xff at byte offset 1)" in last
    assert not (tmp_path / "out").exists()


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody may write into: a read-only tmpfs as root (root ignores permissions), else chmod."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("script, where", [
    ("analysis/report.py", "file"), ("analysis/report.py", "under a file"), ("analysis/report.py", "read-only"),
    ("analysis/tune.py", "file"), ("analysis/heldout.py", "under a file"), ("sweeps/local.py", "file"),
])
def test_an_output_folder_that_cannot_be_written_is_named_before_any_work(sweep, tmp_path, request, script, where):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me\n", encoding="utf-8")
    if where == "read-only":
        out = request.getfixturevalue("read_only_folder") / "report"
    else:
        out = existing if where == "file" else existing / "report"
    target = [str(ROOT / "sweeps" / "masking.yaml")] if script == "sweeps/local.py" else [str(sweep)]
    before = files_under(sweep)
    done = command(script, *target, f"--out={out}")
    last = one_line_error(done, 1, f"--out={out}")
    assert {"file": "a file is there", "under a file": "a parent of it is a file",
            "read-only": "cannot"}[where] in last
    assert existing.read_text(encoding="utf-8") == "keep me\n" and files_under(sweep) == before


def test_data_card_names_a_missing_dataset_in_one_line(tmp_path):
    one_line_error(command("data/card.py", f"--data={tmp_path / 'absent'}"), 1, str(tmp_path / "absent"))


@pytest.mark.parametrize("script, needs", [("train.py", "--wandb_mode=online"), ("analysis/report.py", "--wandb"),
                                           ("analysis/dashboard.py", "dashboard")])
def test_wandb_without_a_login_stops_at_once_saying_what_to_do(tiny_data, tmp_path, script, needs):
    args = {"train.py": tiny(tiny_data, tmp_path / "out", "online", wandb="online"),
            "analysis/report.py": ["--wandb", "team/nlu-collapse", f"--out={tmp_path / 'out'}"],
            "analysis/dashboard.py": ["--entity", "team", "--project", "nlu-collapse"]}[script]
    done = command(script, *args)
    one_line_error(done, 1, needs, "no W&B login", "wandb login")
    assert not (tmp_path / "out").exists()


def in_terminal(argv: list[str], typed: bytes, timeout: float, env: dict | None = None) -> tuple[int | None, str]:
    """Run `argv` with a pseudo-terminal as stdin, stdout and stderr (as at a prompt), `typed` already
    typed; (exit status, None if it had to be killed at `timeout`; everything it printed)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(argv, cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, preexec_fn=_default_sigint,
                               env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    os.close(slave)
    os.write(master, typed)
    output, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    else:
        process.kill()
    os.close(master)
    status = process.wait() if process.poll() is not None or time.monotonic() < deadline else None
    return status, output.decode("utf-8", "backslashreplace")


def test_wandb_online_without_a_login_at_a_terminal_is_an_error_not_a_login_prompt(tiny_data, tmp_path):
    status, printed = in_terminal([PYTHON, "train.py", *tiny(tiny_data, tmp_path / "out", "tty", wandb="online")],
                                  b"\n", timeout=60)
    assert status == 1 and "Traceback" not in printed, printed[-2000:]
    assert "--wandb_mode=online: no W&B login" in printed and not (tmp_path / "out").exists()


# Ctrl-C pressed twice: the commands run as `python <script>` does, with two real SIGINTs sent at chosen points.
HOOKED = """
import atexit, os, runpy, signal, sys
{patch}
sys.argv = [{script!r}, *{args!r}]
runpy.run_path({script!r}, run_name="__main__")
"""
CTRL_C_ON_CALL = """
import importlib
def ctrl_c_on_call(module, name, call):
    owner = importlib.import_module(module)
    real, calls = getattr(owner, name), []
    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)
    setattr(owner, name, wrapper)
"""
CTRL_C_AT_EXIT = "atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))  # runs last: while exiting\n"


def hooked(script: str, args: list[str], patch: str) -> subprocess.CompletedProcess:
    code = HOOKED.format(patch=textwrap.dedent(patch), script=str(ROOT / script), args=list(args))
    return command("-c", code)


def test_ctrl_c_again_while_the_run_is_marked_interrupted_keeps_the_record(tiny_data, tmp_path):
    """The first Ctrl-C lands in the second epoch's validation, the second one inside `fail`, while the
    run record is being marked interrupted."""
    patch = CTRL_C_ON_CALL + textwrap.dedent("""
        ctrl_c_on_call("nlu_collapse.model.prediction", "predict_encoded", 2)
        from nlu_collapse.telemetry.record import RunRecord
        real_update = RunRecord.update_summary
        def update_summary(self, values):
            if values.get("status") == "interrupted":
                os.kill(os.getpid(), signal.SIGINT)
            return real_update(self, values)
        RunRecord.update_summary = update_summary
    """)
    done = hooked("train.py", tiny(tiny_data, tmp_path, "twice", epochs=3, wandb="offline"), patch)
    run_dir = tmp_path / "twice"
    last = one_line_error(done, 130, f"--resume={run_dir}")
    assert last == f"interrupted: the run is marked interrupted; continue it with --resume={run_dir}"
    assert "interrupted again: closing the run record and W&B first" in done.stderr
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "interrupted" and summary["error"].startswith("KeyboardInterrupt")
    assert read_history(run_dir / "history.jsonl")
    assert train.main([f"--resume={run_dir}"])["status"] == "finished"  # the lock was released, the record whole


@pytest.mark.parametrize("script, first, message", [
    ("train.py", ("nlu_collapse.model.prediction", "predict_encoded", 2), "interrupted: the run is marked"),
    ("analysis/report.py", ("nlu_collapse.analysis.records", "load_local", 1), "interrupted: no report written"),
    ("analysis/tune.py", ("nlu_collapse.analysis.records", "load_local", 1), "interrupted: no report written"),
    ("analysis/heldout.py", ("nlu_collapse.evaluation.heldout", "score_run", 1), "interrupted: no report written"),
    ("sweeps/local.py", ("nlu_collapse.runner.planning", "plan", 1), "interrupted: nothing started yet"),
], ids=lambda value: value if isinstance(value, str) and value.endswith(".py") else None)
def test_ctrl_c_twice_prints_one_line_and_no_traceback(tiny_data, sweep, tmp_path, script, first, message):
    """The first Ctrl-C lands inside the command's work, the second while it exits (exit handlers)."""
    args = {"train.py": tiny(tiny_data, tmp_path, "twice", epochs=2, wandb="offline"),
            "sweeps/local.py": [str(ROOT / "sweeps" / "masking.yaml"), f"--out={tmp_path / 'results'}"],
            }.get(script, [str(sweep), f"--out={tmp_path / 'report'}"])
    done = hooked(script, args, CTRL_C_ON_CALL + f"ctrl_c_on_call(*{first!r})\n" + CTRL_C_AT_EXIT)
    assert one_line_error(done, 130).startswith(message)
    if script == "train.py":
        assert read_json(tmp_path / "twice" / "summary.json")["status"] == "interrupted"


# --- 2. untrusted run folders -------------------------------------------------------------------------------

EVIL = """
import pathlib
pathlib.Path({marker!r}).write_text("code from the run folder ran")
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast
class EvilConfig(BertConfig):
    model_type = "evilbert"
class EvilModel(BertModel):
    config_class = EvilConfig
class EvilTokenizer(PreTrainedTokenizerFast):
    pass
"""


def plant(run_dir: Path, part: str, marker: Path) -> Path:
    """Make `part` (encoder or tokenizer) of a copied run folder name custom code, with the code beside it:
    importing it would write `marker`. Returns the config file that names it."""
    folder = RunFolder(run_dir)
    target = folder.encoder if part == "encoder" else folder.tokenizer
    (target / "evil.py").write_text(EVIL.format(marker=str(marker)), encoding="utf-8")
    if part == "encoder":
        path = folder.encoder_config
        config = {**read_json(path), "model_type": "evilbert",
                  "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}}
    else:
        path = next(target.glob("tokenizer_config*"))
        config = {**read_json(path), "tokenizer_class": "EvilTokenizer",
                  "auto_map": {"AutoTokenizer": [None, "evil.EvilTokenizer"]}}
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.mark.parametrize("part", ["encoder", "tokenizer"])
def test_a_run_folder_naming_custom_code_is_refused_and_nothing_in_it_runs(finished_run, tmp_path, part):
    """stdin says "y": transformers' own question (run the custom code?) would read it."""
    run_dir, marker = tmp_path / "planted", tmp_path / "ran.txt"
    shutil.copytree(finished_run, run_dir)
    named = plant(run_dir, part, marker)
    done = command("predict.py", str(run_dir), "gọi mẹ", stdin=b"y\ny\n", env={"HF_HOME": str(tmp_path / "hf")})
    one_line_error(done, 1, str(named), "names custom code to run (auto_map", "never run")
    assert not marker.exists()


def test_a_run_folder_naming_custom_code_at_a_terminal_asks_nothing_and_runs_nothing(finished_run, tmp_path):
    run_dir, marker = tmp_path / "planted", tmp_path / "ran.txt"
    shutil.copytree(finished_run, run_dir)
    named = plant(run_dir, "encoder", marker)
    status, printed = in_terminal([PYTHON, "predict.py", str(run_dir), "gọi mẹ"], b"y\n", timeout=120,
                                  env={"HF_HOME": str(tmp_path / "hf")})
    assert status == 1 and f"error: {named}: names custom code" in printed, printed[-2000:]
    assert "Do you wish to run the custom code" not in printed and not marker.exists()


def test_resume_refuses_a_run_folder_whose_tokenizer_names_custom_code(tiny_data, tmp_path, crash_in_second_epoch):
    with pytest.raises(KeyboardInterrupt):
        train.main(tiny(tiny_data, tmp_path, "cut", epochs=2))
    crash_in_second_epoch.restore()
    folder, marker = RunFolder(tmp_path / "cut"), tmp_path / "ran.txt"
    named = plant(folder.path, "tokenizer", marker)
    before = files_under(folder.path)
    with pytest.raises(ValueError, match=rf"^{named}: names custom code to run"):
        train.main([f"--resume={folder.path}"])
    assert not marker.exists() and files_under(folder.path) == before


def test_an_encoder_whose_config_names_custom_code_trains_into_a_folder_that_loads(tiny_data, tmp_path, capsys):
    """No false refusal: a hub-style BERT folder with an `auto_map` trains with transformers' own classes,
    and its run folder records the architecture without the entry, so predict.py loads it."""
    from transformers import BertConfig, BertModel

    from nlu_collapse.data import load_dataset
    from nlu_collapse.model import build_tiny_tokenizer

    source = tmp_path / "hub-like"
    tokenizer = build_tiny_tokenizer(load_dataset(str(tiny_data)).splits["train"])
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(source)
    tokenizer.save_pretrained(source)
    config = source / "config.json"
    config.write_text(json.dumps({**read_json(config), "auto_map": {"AutoModel": "custom.Model"}}), encoding="utf-8")
    train.main(tiny(tiny_data, tmp_path, "hub", f"--encoder={source}", "--max_steps=1"))
    assert "auto_map" not in read_json(RunFolder(tmp_path / "hub").encoder_config)
    capsys.readouterr()
    assert predict.main([str(tmp_path / "hub"), "bật wifi", "--json"]) == 0


# --- 3. false refusals ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["RUN", "--pretokenized", "đặt báo_thức lúc 6h30", "bật wifi"],   # the README's own example
    ["RUN", "--json", "đặt báo_thức lúc 6h30", "bật wifi"],
    ["RUN", "đặt báo_thức lúc 6h30", "--top_k", "2", "bật wifi", "--json"],
], ids=["pretokenized", "json", "between-sentences"])
def test_predict_options_work_before_between_and_after_the_sentences(finished_run, capsys, argv):
    assert predict.main([str(finished_run) if arg == "RUN" else arg for arg in argv]) == 0
    out = capsys.readouterr().out
    if "--json" in argv:
        results = [json.loads(line) for line in out.splitlines()]
        assert [r["text"] for r in results] == ["đặt báo_thức lúc 6h30", "bật wifi"]
        assert len(results[0]["intent"]["top"]) == (2 if "--top_k" in argv else 3)
    else:
        assert "> đặt báo_thức lúc 6h30" in out and "tokens    đặt/" in out and "báo_thức/" in out


@pytest.mark.parametrize("cli", ["report", "heldout"])
def test_analysis_options_work_between_the_folders(sweep, tmp_path, capsys, cli):
    second = tmp_path / "second"
    shutil.copytree(sweep, second)
    if cli == "report":
        text = report.main([str(sweep), "--no_plots", str(second), f"--out={tmp_path / 'out'}"])
        assert "Sweep sweep + second" in text
    else:
        result = heldout.main([str(sweep), "--checkpoint=last", str(second), f"--out={tmp_path / 'out'}"])
        assert len(result.runs) == 1 and "same identity" in json.dumps(result.left_out)
    assert (tmp_path / "out").is_dir()


@pytest.mark.parametrize("value", ["-inf", "-1e9"])
def test_a_negative_flag_value_after_a_space_is_taken(tiny_data, tmp_path, value):
    summary = train.main([*tiny(tiny_data, tmp_path, "neg"), "--max_steps=1", "--mask_value", value])
    assert summary["status"] == "finished"
    assert read_json(RunFolder(tmp_path / "neg").config)["config"]["mask_value"] == value
