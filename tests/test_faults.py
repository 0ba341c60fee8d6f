"""Fault injection: kills, concurrent runners, damaged files, full disks, malformed data, bad flags.

Each test breaks something on purpose and asserts what the user gets: a one-line error naming the
file (and line) or the flag, never a traceback; a run that survives; nothing already written lost.
The slowest cases (repeated kills at random points) are marked `slow` and run with `-m slow`.
"""
from __future__ import annotations

import errno
import hashlib
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
from nlu_collapse.safeio import FolderLock, LockedError, StorageError, atomic_write_text, read_json, sidecar
from nlu_collapse.telemetry import keys
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
    # a pattern ending in `$` also matches before a trailing newline: each of these was once a new tag class
    (b'{"tokens": ["a", "b"], "tags": ["O\\n", "O"], "intent": "call", "command": "c"}', "malformed tag 'O\\n'"),
    (b'{"tokens": ["a"], "tags": ["B-TIME\\n"], "intent": "call", "command": "c"}', "malformed tag 'B-TIME\\n'"),
    (b'{"tokens": ["a"], "tags": ["I-TIME\\r"], "intent": "call", "command": "c"}', "malformed tag 'I-TIME\\r'"),
    (b'{"tokens": ["a"], "tags": [" O"], "intent": "call", "command": "c"}', "malformed tag ' O'"),
    (b'{"tokens": ["a"], "tags": ["B-"], "intent": "call", "command": "c"}', "malformed tag 'B-'"),
])
def test_jsonl_errors_name_file_and_line(tmp_path, bad_line, message):
    from nlu_collapse.data import load_dataset
    from nlu_collapse.data.formats import DataError

    folder = _jsonl_folder(tmp_path, bad_line)
    with pytest.raises(DataError, match=rf"^{folder}/train.jsonl:2: .*{re.escape(message)}"):
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
             "--entity_warmup=0.3,inf", "--run_id=../../x", "--run_id=a/b", "--run_id=.hidden",
             "--run_id=abc\n", "--run_id=abc\r", "--run_id=a b", "--run_id=" + "x" * 129]


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


@pytest.mark.parametrize("run_id", ["../../escaped", "abc\n", "abc\n\n", "tab\there"])
def test_run_id_from_the_environment_cannot_escape_output_dir(monkeypatch, tmp_path, run_id):
    monkeypatch.setenv("WANDB_RUN_ID", run_id)
    with pytest.raises(ValueError, match=re.escape(f"$WANDB_RUN_ID={run_id!r}")):
        train.resolve_run([f"--output_dir={tmp_path}"])
    assert list(tmp_path.iterdir()) == []  # no folder made for it


# --- 2. checkpoints -------------------------------------------------------------------------------

def _save(path: Path, step: int, model=None) -> torch.nn.Module:
    model = model or torch.nn.Linear(64, 64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    save_checkpoint(path, model, optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(), step=step)
    return model


@pytest.mark.parametrize("how", ["random", "truncated", "empty"])
def test_damaged_checkpoint_is_refused_naming_the_file(tmp_path, how):
    path = tmp_path / "last.pt"
    _save(path, step=1)
    damage(path, how)
    with pytest.raises(CheckpointError, match=rf"{path}: damaged file"):
        load_checkpoint(path)


def test_checkpoint_without_checksum_is_refused_and_one_from_before_trailers_still_loads(tmp_path):
    """A file with no trailer (plain torch.save) is refused; one written by the earlier release, with its
    checksum in a `.sha256` sidecar, is still verified by it and loads; a damaged sidecar is named."""
    model, path = torch.nn.Linear(4, 4), tmp_path / "last.pt"
    torch.save({"model": model.state_dict(), "step": 3}, path)
    with pytest.raises(CheckpointError, match=rf"{path}: damaged file \(no checksum"):
        load_checkpoint(path)
    raw = path.read_bytes()
    sidecar(path).write_text(json.dumps({"sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw)}))
    assert load_checkpoint(path)["step"] == 3
    path.write_bytes(raw[:100] + bytes([raw[100] ^ 1]) + raw[101:])
    with pytest.raises(CheckpointError, match=r"damaged file \(SHA-256 does not match last\.pt\.sha256\)"):
        load_checkpoint(path)
    sidecar(path).write_text("{not json")
    with pytest.raises(CheckpointError, match="damaged checksum file"):
        load_checkpoint(path)


def test_a_checked_file_loads_with_plain_torch_load_and_its_trailer_catches_a_flipped_byte(tmp_path):
    path = tmp_path / "best.pt"
    _save(path, step=5)
    assert torch.load(path, weights_only=True)["step"] == 5  # users' own scripts read it as any checkpoint
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"{path}: damaged file \(its bytes do not match"):
        load_checkpoint(path)


def test_resume_falls_back_to_the_previous_intact_checkpoint(tmp_path):
    folder = RunFolder(tmp_path)
    _save(folder.best, step=2)
    _save(folder.last, step=2)
    _save(folder.last, step=4)
    assert load_resumable(folder)[0]["step"] == 4
    damage(folder.last, "random")
    checkpoint, used = load_resumable(folder)
    assert (checkpoint["step"], used.name) == (2, "last.prev.pt")
    damage(folder.last_previous, "truncated")
    with pytest.raises(CheckpointError, match=r"cannot resume: .*last\.pt: damaged.*last\.prev\.pt: damaged.*--fresh"):
        load_resumable(folder)


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


def _copy_run(run_dir: Path, target: Path, status: str | None = "crashed") -> Path:
    """A copy of a run; with `status`, its summary says so (a finished run's copy marked as one killed at
    its test, which --resume continues: resuming a finished run is a no-op)."""
    import shutil

    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns(".lock"))
    if status:
        summary = RunFolder(target).summary
        summary.write_text(json.dumps({**json.loads(summary.read_text()), "status": status}))
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


def test_a_damaged_best_checkpoint_is_restored_from_its_predecessor(finished_run, tmp_path, caplog):
    run_dir = _copy_run(finished_run[0], tmp_path / "run")
    folder = RunFolder(run_dir)
    if not folder.best_previous.exists():  # best on dev came once in this short run: an earlier epoch's stands in
        folder.best_previous.write_bytes(folder.last_previous.read_bytes())
    kept = load_checkpoint(folder.best_previous)
    damage(folder.best, "truncated")
    with caplog.at_level(logging.WARNING):
        summary = train.main([f"--resume={run_dir}"])
    assert f"{folder.best}: damaged" in caplog.text and "restored the previous best-on-dev checkpoint" in caplog.text
    assert summary[keys.STATUS] == "finished" and summary[keys.BEST_EPOCH] == kept["epoch"]
    assert summary[keys.BEST_VAL_ENTITY_F1] == kept["train_state"]["best_f1"]


@pytest.mark.parametrize("how", ["missing", "truncated"])
def test_a_lost_best_checkpoint_without_predecessor_stops_resume_before_any_training(finished_run, tmp_path, how):
    run_dir = _copy_run(finished_run[0], tmp_path / "run")
    folder = RunFolder(run_dir)
    folder.best_previous.unlink(missing_ok=True)
    if how == "missing":
        folder.best.unlink()
    else:
        damage(folder.best, how)
    before = folder.history.read_bytes()
    with pytest.raises(CheckpointError, match=rf"cannot resume: {folder.best}: (missing|damaged).*best\.prev\.pt: "
                                              "missing"):
        train.main([f"--resume={run_dir}"])
    assert folder.resume_problem().startswith(f"cannot resume: {folder.best}")
    assert folder.history.read_bytes() == before


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_resuming_a_finished_run_is_a_no_op_with_one_line(finished_run, tmp_path, capsys):
    run_dir = _copy_run(finished_run[0], tmp_path / "run", status=None)
    before = _digest(run_dir)
    for _ in range(3):  # every time: no test row appended, perf/* not overwritten, nothing written at all
        summary = train.main([f"--resume={run_dir}"])
        assert summary == finished_run[1]
    assert _digest(run_dir) == before
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith(f"{run_dir}: already finished (") and "nothing to resume" in lines[0]


def test_a_run_killed_at_its_test_redoes_the_test_once_and_keeps_its_training_time(finished_run, tmp_path):
    run_dir = _copy_run(finished_run[0], tmp_path / "run")  # its test row was written, then it was killed
    rows = read_history(run_dir / "history.jsonl")
    summary = train.main([f"--resume={run_dir}"])
    again = read_history(run_dir / "history.jsonl")
    assert len(again) == len(rows) and sum(keys.BEST_EPOCH in row for row in again) == 1
    original = finished_run[1]
    assert summary[keys.PERF_TRAIN_SECONDS] == original[keys.PERF_TRAIN_SECONDS] > 0  # the kept steps' seconds
    assert summary[keys.PERF_STEPS_PER_SECOND] == original[keys.PERF_STEPS_PER_SECOND]
    assert {k: v for k, v in summary.items() if k.startswith("test/")} == \
        {k: v for k, v in original.items() if k.startswith("test/")}


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_step_0_and_says_so(tiny_data, tmp_path, caplog):
    args = tiny_args(tiny_data, tmp_path, "early", epochs=2)
    calls = []
    real = train.Training.validate_and_checkpoint

    def interrupted_first_validation(self, epoch):
        calls.append(epoch)
        if len(calls) == 1:
            raise KeyboardInterrupt("killed before the first checkpoint")
        return real(self, epoch)

    train.Training.validate_and_checkpoint = interrupted_first_validation
    try:
        with pytest.raises(KeyboardInterrupt):
            train.main(args)
        folder = RunFolder(tmp_path / "early")
        assert folder.is_run() and not folder.can_resume()
        with caplog.at_level(logging.WARNING):
            summary = train.main([f"--resume={folder.path}"])
    finally:
        train.Training.validate_and_checkpoint = real
    assert "no checkpoint yet (stopped before its first validation): starting over from step 0" in caplog.text
    assert summary[keys.STATUS] == "finished" and summary[keys.STEPS] == 4
    assert [a.name for a in folder.earlier_attempts()] == ["1"]  # the stopped attempt, kept whole
    assert history_steps(folder.history)[0] == 1


def test_a_reader_of_a_live_run_never_sees_a_damaged_checkpoint(tmp_path):
    """predict.py loads best.pt while training replaces it: every load must see one whole checkpoint."""
    path = tmp_path / "best.pt"
    _save(path, step=0)
    writer = os.fork()
    if writer == 0:
        try:
            for step in range(1, 400):
                _save(path, step=step)
        finally:
            os._exit(0)
    loads = refused = 0
    while os.waitpid(writer, os.WNOHANG) == (0, 0):  # until the writer has exited
        try:
            load_checkpoint(path)
        except CheckpointError:
            refused += 1
        loads += 1
    assert loads > 20 and refused == 0, f"{refused} of {loads} loads refused"


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


# --- a kill at every write boundary of a whole short run, then resume -------------------------------
# Every system call that changes a run's files (rename, hard link, fsync, unlink, a history append) is a
# boundary; the run is killed (os._exit: no cleanup, as SIGKILL) just before the k-th one, for every k.
# What a user does next is what the sweep runner does: `--resume` when the run has a checkpoint or a
# config, else the same command again. Each must end as the uninterrupted run did.
BOUNDARY_CALLS = ("replace", "link", "fsync", "unlink")


def _forked(body) -> int:
    """Run `body()` in a forked child (torch already imported here: a child costs milliseconds); its exit code."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            logging.disable(logging.CRITICAL)
            body()
            code = 0
        except BaseException:  # noqa: BLE001 - the parent asserts on the exit code
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _train_killed_at(boundary: int | None, argv: list[str], count_to: Path | None = None) -> None:
    """train.main(argv), dying just before write boundary number `boundary` (None: never; `count_to`
    gets the number of boundaries passed)."""
    passed = 0

    def hook(call):
        def at_boundary(*args, **kwargs):
            nonlocal passed
            if passed == boundary:
                os._exit(137)
            passed += 1
            return call(*args, **kwargs)
        return at_boundary

    for name in BOUNDARY_CALLS:
        setattr(os, name, hook(getattr(os, name)))
    RunRecord._append = hook(RunRecord._append)
    train.main(argv)
    if count_to is not None:
        count_to.write_text(str(passed))


def _outcome(run_dir: Path) -> tuple[dict, list[tuple]]:
    summary = read_json(run_dir / "summary.json")
    kept = {k: v for k, v in summary.items() if k.startswith(("test/", "best/", "health/")) or k in (
        keys.STATUS, keys.STEPS, keys.OUTCOME, keys.COLLAPSED)}
    rows = [(row["step"], tuple(sorted(k for k in row if k != "step"))) for row in read_history(run_dir / "history.jsonl")]
    return kept, rows


def test_a_kill_at_every_write_boundary_of_a_run_leaves_one_that_resume_finishes_identically(tiny_data, tmp_path):
    args = tiny_args(tiny_data, tmp_path / "reference", "run", epochs=2) + ["--log_every=1"]
    count = tmp_path / "boundaries"
    assert _forked(lambda: _train_killed_at(None, args, count)) == 0
    reference, boundaries = _outcome(tmp_path / "reference" / "run"), int(count.read_text())
    assert boundaries > 20 and reference[0][keys.STATUS] == "finished"
    for k in range(boundaries):
        out = tmp_path / f"killed-{k}"
        argv = tiny_args(tiny_data, out, "run", epochs=2) + ["--log_every=1"]
        assert _forked(lambda: _train_killed_at(k, argv)) == 137, f"boundary {k}: the run was not killed"
        folder = RunFolder(out / "run")
        again = [f"--resume={folder.path}"] if folder.is_run() else argv
        assert _forked(lambda: train.main(again)) == 0, f"killed before boundary {k}: {again} failed"
        summary, rows = _outcome(folder.path)
        assert (summary, rows) == reference, f"killed before boundary {k}: the resumed run differs"
        assert not list(folder.path.rglob(".*.tmp")), f"killed before boundary {k}: temp files left"
