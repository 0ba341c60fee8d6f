"""Fault injection: kills, concurrent runners, damaged files, full disks, malformed data, bad flags.

Each test breaks something on purpose and asserts what the user gets: a one-line error naming the
file (and line) or the flag, never a traceback; a run that survives; nothing already written lost.
The slowest cases (repeated kills at random points) are marked `slow` and run with `-m slow`.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from nlu_collapse import train
from nlu_collapse.config import parse_config
from nlu_collapse.model.checkpoint import CheckpointError, load_checkpoint, load_resumable, save_checkpoint
from nlu_collapse.runfolder import RunFolder
from nlu_collapse.runner import planning
from nlu_collapse.safeio import FolderLock, LockedError, StorageError, atomic_write_text, read_json
from nlu_collapse.telemetry.record import RunRecord, read_history
from tests.datasets import write_generated
from tests.scripts import local

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """64/16/16 sentences: 2 optimizer steps an epoch, so a whole run takes a second or two."""
    return write_generated(tmp_path_factory.mktemp("tiny-data"), (64, 16, 16))


def tiny_args(data: Path, out: Path, run_id: str, epochs: int = 3) -> list[str]:
    return [f"--data={data}", f"--output_dir={out}", f"--run_id={run_id}", f"--epochs={epochs}", "--threads=1",
            "--wandb_mode=disabled", "--task_grad_every=0"]


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "random":  # 4 KiB of random bytes written into the middle
        middle = len(data) // 2
        path.write_bytes(data[:middle] + random.Random(0).randbytes(4096) + data[middle + 4096:])
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif how == "empty":
        path.write_bytes(b"")


def history_steps(path: Path) -> list[int]:
    return [row["step"] for row in read_history(path)]


# --- 5. malformed data: named cases, then generated ones --------------------------------------------

def _massive(tmp_path: Path, annot_utt, intent="set_alarm", scenario="alarm") -> Path:
    rows = [{"partition": p, "annot_utt": "wake me at [time : five am]", "intent": "set_alarm", "scenario": "alarm"}
            for p in ("train", "dev", "test")]
    rows.insert(1, {"partition": "train", "annot_utt": annot_utt, "intent": intent, "scenario": scenario})
    path = tmp_path / "vi-VN.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("annot_utt, message", [
    ("[platform : skype [action : gọi] video", "nested bracket"),
    ("gọi [platform : skype video", "unbalanced bracket"),
    ("gọi ] video", "unbalanced bracket"),
    ("gọi [skype] video", "is not '[name : value]'"),
    ("gọi [platform : ] video", "empty slot value"),
    (5, "annot_utt must be a string"),
    (None, "annot_utt must be a string"),
])
def test_massive_annotation_errors_name_file_and_line(tmp_path, annot_utt, message):
    from nlu_collapse.data.formats import DataError, read_massive

    path = _massive(tmp_path, annot_utt)
    with pytest.raises(DataError, match=rf"^{path}:2: .*{re.escape(message)}"):
        read_massive(path)


@pytest.mark.parametrize("field, value", [("intent", None), ("intent", 3), ("intent", ""), ("scenario", [1])])
def test_massive_label_types_are_checked(tmp_path, field, value):
    from nlu_collapse.data.formats import DataError, read_massive

    path = _massive(tmp_path, "wake me", **{field: value})
    with pytest.raises(DataError, match=rf"^{path}:2: {field} must be a non-empty string"):
        read_massive(path)


def _jsonl_folder(tmp_path: Path, bad_line: bytes, split: str = "train") -> Path:
    good = {"tokens": ["gọi", "mẹ"], "tags": ["O", "B-CONTACT"], "intent": "call", "command": "call.voice"}
    for name in ("train", "dev", "test"):
        lines = [json.dumps(good, ensure_ascii=False).encode()] * 2
        if name == split:
            lines.insert(1, bad_line)
        (tmp_path / f"{name}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return tmp_path


@pytest.mark.parametrize("bad_line, message", [
    (b'{"tokens": ["g\xff\xfei"], "tags": ["O"], "intent": "call"}', "not UTF-8 text"),
    (b'{"tokens": ["", "m"], "tags": ["O", "O"], "intent": "call", "command": "c"}', "token 1 is ''"),
    (b'{"tokens": ["a"], "tags": ["O"], "intent": "call", "command": null}', "command is missing or null"),
    (b'{"tokens": ["a"], "tags": ["O"], "intent": null, "command": "c"}', "intent must be a non-empty string"),
    (b'{"tokens": "a b", "tags": ["O"], "intent": "call", "command": "c"}', "tokens must be a list of strings"),
])
def test_jsonl_errors_name_file_and_line(tmp_path, bad_line, message):
    from nlu_collapse.data import load_dataset
    from nlu_collapse.data.formats import DataError

    folder = _jsonl_folder(tmp_path, bad_line)
    with pytest.raises(DataError, match=rf"^{folder}/train.jsonl:2: .*{message}"):
        load_dataset(str(folder), "jsonl")


def test_jointbert_non_utf8_names_file_and_line(tmp_path):
    from nlu_collapse.data.formats import DataError, Example, read_jointbert_split, write_jointbert_split

    write_jointbert_split(tmp_path, [Example(["a", "b"], ["O", "O"], "x")] * 3)
    (tmp_path / "seq.in").write_bytes(b"a b\na \xc3\nb\n")
    with pytest.raises(DataError, match=rf"^{tmp_path}/seq.in:2: not UTF-8 text \(byte 0xc3 at column 3\)"):
        read_jointbert_split(tmp_path)


# --- 6. flags -------------------------------------------------------------------------------------

BAD_FLAGS = ["--entity_loss_scale=-0.25", "--o_weight=-1", "--lambda_entity=-0.5", "--lambda_intent=-1", "--lambda_command=nan",
             "--weight_decay=-0.01", "--warmup_ratio=5", "--warmup_ratio=-0.1", "--gamma=inf", "--gamma=-1",
             "--max_length=0", "--max_length=1000", "--threads=-3", "--threads=0", "--dropout=1.0", "--lr=0",
             "--max_class_weight=0", "--grad_clip=-1", "--seed=-1", "--epochs=0", "--batch_size=0",
             "--entity_warmup=0.3,inf", "--run_id=../../x", "--run_id=a/b", "--run_id=.hidden"]


@pytest.mark.parametrize("flag", BAD_FLAGS)
def test_senseless_flags_are_refused_naming_the_flag(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config([flag])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert flag.split("=")[0] in message and "Traceback" not in message


def test_help_documents_every_range():
    from nlu_collapse.config import RANGES, build_parser

    text = build_parser().format_help()
    assert len(re.findall(r"range\s", text)) == len(RANGES) and re.search(r"range\s+\[0,\s+1\]", text)


def test_run_id_from_the_environment_cannot_escape_output_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_RUN_ID", "../../escaped")
    with pytest.raises(ValueError, match=r"\$WANDB_RUN_ID='\.\./\.\./escaped'"):
        train.resolve_run([f"--output_dir={tmp_path}"])


# --- 2. checkpoints -------------------------------------------------------------------------------

def _save(path: Path, step: int, model=None) -> torch.nn.Module:
    model = model or torch.nn.Linear(64, 64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    save_checkpoint(path, model, keep_previous=True, optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(), step=step)
    return model


@pytest.mark.parametrize("how", ["random", "truncated", "empty"])
def test_damaged_checkpoint_is_refused_naming_the_file(tmp_path, how):
    path = tmp_path / "last.pt"
    _save(path, step=1)
    damage(path, how)
    with pytest.raises(CheckpointError, match=rf"{path}: damaged file"):
        load_checkpoint(path)


def test_checkpoint_without_checksum_or_with_a_damaged_one_is_refused(tmp_path):
    path = tmp_path / "last.pt"
    _save(path, step=1)
    (tmp_path / "last.pt.sha256").write_text("{not json")
    with pytest.raises(CheckpointError, match="damaged checksum file"):
        load_checkpoint(path)
    (tmp_path / "last.pt.sha256").unlink()
    with pytest.raises(CheckpointError, match="no checksum file"):
        load_checkpoint(path)


def test_resume_falls_back_to_the_previous_intact_checkpoint(tmp_path):
    folder = RunFolder(tmp_path)
    _save(folder.last, step=2)
    _save(folder.last, step=4)
    assert load_resumable(folder)[0]["step"] == 4
    damage(folder.last, "random")
    checkpoint, used = load_resumable(folder)
    assert (checkpoint["step"], used.name) == (2, "last.prev.pt")
    damage(folder.last_previous, "truncated")
    with pytest.raises(CheckpointError, match=r"cannot resume: .*last\.pt: damaged.*last\.prev\.pt: damaged.*--fresh"):
        load_resumable(folder)


def test_a_kill_between_checksum_and_bytes_leaves_a_refused_file_not_a_loaded_one(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path)
    _save(folder.last, step=2)
    _save(folder.last, step=4)
    from nlu_collapse import safeio
    real = safeio.atomic_write

    def die_on_checkpoint_bytes(path, data):
        if Path(path).suffix == ".pt":
            raise KeyboardInterrupt("killed between the two renames")
        real(path, data)

    monkeypatch.setattr(safeio, "atomic_write", die_on_checkpoint_bytes)
    with pytest.raises(KeyboardInterrupt):
        _save(folder.last, step=6)
    monkeypatch.undo()
    checkpoint, used = load_resumable(folder)  # last.pt (step 4) no longer matches the step-6 checksum
    assert (checkpoint["step"], used.name) == (4, "last.prev.pt")
    assert not list(folder.checkpoints.glob(".*.tmp"))


# --- 4. full disk and read-only folders -------------------------------------------------------------

def test_a_write_failure_leaves_the_old_file_no_temp_file_and_a_clear_message(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    atomic_write_text(target, '{"status": "running"}')

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(StorageError) as err:
        atomic_write_text(target, '{"status": "finished"}')
    message = str(err.value)
    assert message.startswith(f"{target}: cannot write (No space left on device, ") and " free)" in message
    assert "Errno" not in message and target.read_text() == '{"status": "running"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_read_only_output_dir_is_one_line_naming_the_path(tmp_path, tiny_data):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions; the tiny filesystem test covers root")
    out = tmp_path / "ro"
    out.mkdir(mode=0o500)
    with pytest.raises(StorageError, match=str(out)):
        train.main(tiny_args(tiny_data, out, "ro"))


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 5 MiB tmpfs: a checkpoint of the tiny model (1.8 MB, twice over) does not fit."""
    mount_point = tmp_path / "tiny-fs"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'not root'})")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_read_only_filesystem_is_a_clear_error_naming_the_path(tiny_filesystem, tiny_data):
    if subprocess.run(["mount", "-o", "remount,ro", str(tiny_filesystem)], capture_output=True).returncode != 0:
        pytest.skip("cannot remount the tmpfs read-only")
    with pytest.raises(StorageError, match=rf"^{tiny_filesystem}/ro: cannot write \(Read-only file system, "):
        train.main(tiny_args(tiny_data, tiny_filesystem, "ro"))


def test_full_disk_ends_the_run_with_a_clear_error_and_status_crashed(tiny_filesystem, tiny_data):
    with pytest.raises(StorageError) as err:
        train.main(tiny_args(tiny_data, tiny_filesystem, "full"))
    message = str(err.value)
    assert message.startswith(f"{tiny_filesystem}/full/checkpoints/") and "No space left on device" in message
    assert " free)" in message and "\n" not in message
    summary = read_json(tiny_filesystem / "full" / "summary.json")
    assert summary["status"] == "crashed" and "No space left" in summary["error"]
    assert not [p for p in tiny_filesystem.rglob("*") if p.name.endswith(".tmp")]
    assert history_steps(tiny_filesystem / "full" / "history.jsonl")  # what was logged before stays


# --- 3. history -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("finished")
    summary = train.main(tiny_args(tiny_data, out, "done"))
    return out / "done", summary


def _copy_run(run_dir: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns(".lock"))
    return target


def test_a_garbage_history_line_is_reported_and_the_rows_after_it_are_read(finished_run, tmp_path, caplog):
    run_dir = _copy_run(finished_run[0], tmp_path / "run")
    path = run_dir / "history.jsonl"
    lines = path.read_text().splitlines()
    lines.insert(2, "{garbage")
    path.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        rows = read_history(path)
    assert len(rows) == len(lines) - 1
    assert f"{path}:3: skipped history line" in caplog.text


def test_resume_never_deletes_history_it_moves_the_unkept_lines_to_a_backup(finished_run, tmp_path, caplog):
    run_dir = _copy_run(finished_run[0], tmp_path / "run")
    path = run_dir / "history.jsonl"
    original = path.read_text().splitlines()
    path.write_text("\n".join(original[:1] + ["\x00\xff not json"] + original[1:]) + "\n")
    damage(run_dir / "checkpoints" / "last.pt", "random")  # resume falls back to the epoch before
    prev_step = load_checkpoint(run_dir / "checkpoints" / "last.prev.pt")["train_state"]["step"]
    with caplog.at_level(logging.WARNING):
        summary = train.main([f"--resume={run_dir}"])
    assert summary["status"] == "finished"
    assert "resuming from the previous intact checkpoint" in caplog.text and f"{path}:2:" in caplog.text
    backups = list(run_dir.glob("history.dropped-*.jsonl"))
    assert len(backups) == 1
    dropped = backups[0].read_text().splitlines()
    assert "\x00\xff not json" in dropped and len(dropped) == 1 + sum(
        json.loads(line)["step"] > prev_step for line in original)
    assert history_steps(path) == [json.loads(line)["step"] for line in original]  # redone, identical steps
    assert summary["test/entity_f1"] == finished_run[1]["test/entity_f1"]  # deterministic redo of the lost epoch


def test_resume_with_every_checkpoint_damaged_says_it_cannot(finished_run, tmp_path):
    run_dir = _copy_run(finished_run[0], tmp_path / "run")
    damage(run_dir / "checkpoints" / "last.pt", "empty")
    damage(run_dir / "checkpoints" / "last.prev.pt", "random")
    before = (run_dir / "history.jsonl").read_bytes()
    with pytest.raises(CheckpointError, match=rf"cannot resume: {run_dir}/checkpoints/last.pt: damaged"):
        train.main([f"--resume={run_dir}"])
    assert (run_dir / "history.jsonl").read_bytes() == before


def test_a_damaged_best_checkpoint_stops_resume_before_any_training(finished_run, tmp_path):
    run_dir = _copy_run(finished_run[0], tmp_path / "run")
    damage(run_dir / "checkpoints" / "best.pt", "truncated")
    with pytest.raises(CheckpointError, match=rf"cannot resume: {run_dir}/checkpoints/best.pt: damaged"):
        train.main([f"--resume={run_dir}"])
    assert RunFolder(run_dir).resume_problem().startswith(f"cannot resume: {run_dir}/checkpoints/best.pt: damaged")


# --- 7. damaged run records -------------------------------------------------------------------------

@pytest.mark.parametrize("garbage", [b"", b"{", b"[1, 2]", b'{"config": 3, "run_id": "x"}', b"\xff\xfe",
                                     b'{"config": {"gamma": "abc"}, "run_id": "x"}',
                                     b'{"config": {"no_such_flag": 1}, "run_id": "x"}'])
def test_damaged_config_json_on_resume_names_the_file(finished_run, tmp_path, garbage):
    run_dir = _copy_run(finished_run[0], tmp_path / "run")
    (run_dir / "config.json").write_bytes(garbage)
    with pytest.raises(ValueError, match=rf"^{run_dir}/config.json"):
        train.main([f"--resume={run_dir}"])


def test_damaged_summary_is_kept_aside_and_the_run_goes_on(finished_run, tmp_path):
    run_dir = _copy_run(finished_run[0], tmp_path / "run")
    (run_dir / "summary.json").write_bytes(b'{"status": "fini')
    assert train.main([f"--resume={run_dir}"])["status"] == "finished"
    assert [p.read_bytes() for p in run_dir.glob("summary.damaged-*.json")] == [b'{"status": "fini']


def test_damaged_tokenizer_names_the_folder(finished_run, tmp_path):
    run_dir = _copy_run(finished_run[0], tmp_path / "run")
    (run_dir / "tokenizer" / "tokenizer.json").write_text("{oops")
    with pytest.raises(ValueError, match=rf"{run_dir}/tokenizer: cannot load the saved tokenizer"):
        train.main([f"--resume={run_dir}"])


def test_report_names_a_damaged_sweep_json_and_lists_damaged_runs(finished_run, tmp_path, capsys, caplog):
    from nlu_collapse.analysis import report
    from nlu_collapse.analysis.records import load_local

    folder = tmp_path / "sweep"
    run_dir = _copy_run(finished_run[0], folder / "runs" / "done")
    _copy_run(finished_run[0], folder / "runs" / "other")
    (folder / "runs" / "other" / "summary.json").write_text("[]")
    with (run_dir / "history.jsonl").open("a") as history:
        history.write("{torn")
    with caplog.at_level(logging.WARNING):
        runs = {run.run_id: run for run in load_local(folder)}
        assert runs["done"].history and runs["other"].status == "unreadable"
    assert f"{run_dir}/history.jsonl:" in caplog.text and "expected a JSON dict, got list" in caplog.text
    (folder / "sweep.json").write_text('{"runs": 5}')
    with pytest.raises(SystemExit):
        report.main([str(folder), "--no_plots"])
    assert f"{folder}/sweep.json: runs must be a list" in capsys.readouterr().err


# --- 1. concurrent runners and runs ---------------------------------------------------------------

def test_a_second_writer_of_a_run_is_refused_naming_the_holder(tmp_path):
    first = RunRecord(tmp_path / "run")
    holder = rf"{tmp_path}/run: this run is in use by another process \(pid {os.getpid()}\)"
    with pytest.raises(LockedError, match=holder):
        RunRecord(tmp_path / "run")
    first.close()
    RunRecord(tmp_path / "run").close()  # released with its owner


def test_a_second_runner_on_a_folder_exits_at_once_naming_folder_and_pid(tmp_path, capsys):
    folder = tmp_path / "masking"
    with FolderLock(folder, ".runner.lock", what="sweep folder"):
        assert local.main([str(ROOT / "sweeps" / "masking.yaml"), f"--out={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert f"error: {folder}: this sweep folder is in use by another process (pid {os.getpid()})" in err
    assert not (folder / "runs").exists()  # nothing started


SLEEPER = textwrap.dedent("""
    import os, sys, time
    out = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--output_dir=")][0]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{os.getpid()}.pid"), "w") as f:
        f.write("started")
    time.sleep(float(os.environ.get("SLEEP_SECONDS", "120")))
""")


def _sleeper_sweep(tmp_path: Path) -> Path:
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    sweep = tmp_path / "sleepy.yaml"
    sweep.write_text(textwrap.dedent(f"""
        program: {tmp_path / 'sleeper.py'}
        method: grid
        metric: {{name: val/entity_f1, goal: maximize}}
        parameters:
          seed: {{values: [0]}}
        command:
          - ${{env}}
          - ${{interpreter}}
          - ${{program}}
          - ${{args}}
    """))
    return sweep


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")


def test_runs_die_with_a_killed_runner_and_a_second_runner_is_turned_away(tmp_path):
    sweep = _sleeper_sweep(tmp_path)
    command = [PYTHON, str(ROOT / "sweeps" / "local.py"), str(sweep), f"--out={tmp_path / 'out'}", "--workers=1"]
    runner = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = tmp_path / "out" / "sleepy" / "runs"
    try:
        pid_file = _wait_for(lambda: next(runs.glob("*.pid"), None) if runs.exists() else None, 60, "the run")
        child = int(pid_file.stem)
        second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert f"in use by another process (pid {runner.pid})" in second.stderr
        assert len(list(runs.glob("*.pid"))) == 1  # the second runner started nothing
        runner.kill()  # SIGKILL: no handler of ours runs
        runner.wait()
        _wait_for(lambda: not _alive(child), 10, "the orphaned run to die")
    finally:
        runner.kill()


def test_an_unresumable_run_is_failed_with_its_reason_until_fresh(tmp_path, monkeypatch, capsys):
    sweep = _sleeper_sweep(tmp_path)
    planned = planning.plan(sweep, tmp_path / "out")
    rid, folder = planned["runs"][0]["run_id"], Path(planned["folder"])
    checkpoints = folder / "runs" / rid / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.pt").write_bytes(random.Random(0).randbytes(4096))
    args = [str(sweep), f"--out={tmp_path / 'out'}", "--workers=1"]
    for _ in range(2):  # the same verdict on every rerun, and nothing launched
        assert local.main(args) == 1
        entry = read_json(folder / "sweep.json")["runs"][0]
        assert entry["status"] == "failed" and entry["reason"].startswith(f"cannot resume: {checkpoints}/last.pt: ")
        assert "--fresh" in entry["reason"] and not (folder / "logs" / f"{rid}.log").exists()
    assert f"run {rid}: cannot resume" in capsys.readouterr().err
    monkeypatch.setenv("SLEEP_SECONDS", "0")
    local.main(args + ["--fresh"])
    entry = read_json(folder / "sweep.json")["runs"][0]
    assert "reason" not in entry and "--resume" not in (folder / "logs" / f"{rid}.log").read_text()


# --- SIGINT / SIGKILL / SIGTERM of a real run at a random point, then resume ------------------------

def _default_sigint() -> None:
    """In the child: SIGINT as a terminal delivers it. A test runner started in the background by a
    non-interactive shell (a CI job, `cmd &`) ignores SIGINT, and a child would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "train.py", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=_default_sigint)


RUN_EPOCHS = 40  # 2 steps an epoch on tiny_data


def kill_and_resume(tiny_data, tmp_path, sig, rng: random.Random, reference: tuple[dict, list[int]]) -> None:
    """Start an 80-step run, send `sig` at a random logged step after the first checkpoint (row 3-20, so
    60 or more steps are still to come and the signal lands in training even on a loaded machine), resume it."""
    args = tiny_args(tiny_data, tmp_path, "victim", epochs=RUN_EPOCHS)
    run_dir = tmp_path / "victim"
    process = _start(args)
    at_step = rng.randint(3, 20)
    try:
        _wait_for(lambda: process.poll() is not None or ((run_dir / "checkpoints" / "last.pt").exists()
                                                         and len(history_steps(run_dir / "history.jsonl")) >= at_step),
                  180, f"step {at_step}")
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode != 0, "the run finished before the signal landed: nothing was tested"
    assert "Traceback" not in stderr, stderr[-2000:]
    status = read_json(run_dir / "summary.json")["status"]
    expected = {signal.SIGINT: "interrupted", signal.SIGTERM: "crashed", signal.SIGKILL: "running"}[sig]
    assert status == expected
    if sig == signal.SIGINT:
        last_line = stderr.strip().splitlines()[-1]
        assert last_line == f"interrupted: the run is marked interrupted; continue it with --resume={run_dir}"
    resumed = train.main([f"--resume={run_dir}"])
    assert resumed["status"] == "finished"
    summary, steps = reference
    assert history_steps(run_dir / "history.jsonl") == steps  # every step once, plus each epoch's val row
    for key in ("test/entity_f1", "test/intent_f1", "best/val/entity_f1", "steps"):
        assert resumed[key] == summary[key], key


@pytest.fixture(scope="module")
def reference_run(tiny_data, tmp_path_factory) -> tuple[dict, list[int]]:
    out = tmp_path_factory.mktemp("reference")
    summary = train.main(tiny_args(tiny_data, out, "victim", epochs=RUN_EPOCHS))
    return summary, history_steps(out / "victim" / "history.jsonl")


def test_sigint_gives_one_line_marks_the_run_interrupted_and_resume_matches(tiny_data, tmp_path, reference_run):
    kill_and_resume(tiny_data, tmp_path, signal.SIGINT, random.Random(1), reference_run)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
@pytest.mark.parametrize("seed", [2, 3, 4])
def test_kill_at_a_random_step_then_resume_matches_an_uninterrupted_run(tiny_data, tmp_path, reference_run, sig, seed):
    kill_and_resume(tiny_data, tmp_path, sig, random.Random(seed), reference_run)


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """In-process runs pass --threads=1 (identical numbers in every process); later tests keep their own."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _tiny_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(textwrap.dedent(f"""
        program: {ROOT / 'train.py'}
        method: grid
        metric: {{name: val/entity_f1, goal: maximize}}
        parameters:
          seed: {{values: [0, 1]}}
          epochs: {{value: 6}}
          threads: {{value: 1}}
          wandb_mode: {{value: disabled}}
          task_grad_every: {{value: 0}}
        command:
          - ${{env}}
          - ${{interpreter}}
          - ${{program}}
          - ${{args}}
    """))
    return sweep


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_runner_killed_at_a_random_point_then_rerun_trains_every_run_once(tiny_data, tmp_path, sig):
    sweep = _tiny_sweep(tmp_path)
    command = [PYTHON, str(ROOT / "sweeps" / "local.py"), str(sweep), f"--out={tmp_path / 'out'}",
               f"--data={tiny_data}", "--workers=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runner = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              preexec_fn=_default_sigint)
    runs = tmp_path / "out" / f"tiny-{tiny_data.name}" / "runs"
    _wait_for(lambda: list(runs.glob("*/history.jsonl")) if runs.exists() else None, 120, "a run to start")
    time.sleep(random.Random(sig).uniform(0, 4))
    runner.send_signal(sig)
    _, stderr = runner.communicate(timeout=60)
    assert "Traceback" not in stderr
    time.sleep(1)  # children got SIGTERM from the runner or the kernel; let them record it
    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    manifest = read_json(runs.parent / "sweep.json")
    assert [run["status"] for run in manifest["runs"]] == ["finished", "finished"]
    for history in runs.glob("*/history.jsonl"):
        train_steps = [row["step"] for row in read_history(history) if "loss/total" in row]
        assert train_steps == list(range(1, 13)), (history, train_steps)  # each step trained and logged once
