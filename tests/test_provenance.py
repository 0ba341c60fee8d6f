"""Every number traces to one run, of one configuration, on one version of the data: the cases a
researcher iterating meets (an edited YAML rerun into the same --out, a copied run folder, data
replaced at the same path, a resume after a label changed, a test split swapped, a duplicate key),
on data and YAMLs these tests write, with the exact counts and messages."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from nlu_collapse import train
from nlu_collapse.analysis import heldout
from nlu_collapse.analysis.records import load_local
from nlu_collapse.analysis.report import build_report
from nlu_collapse.data import DataError, load_dataset
from nlu_collapse.runfolder import RunFolder, SweepFolder
from nlu_collapse.runner import planning
from nlu_collapse.safeio import read_json
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.record import read_history
from tests.datasets import write_imbalanced
from tests.scripts import local

SWEEP = """\
# two seeds of one configuration, on data the test writes
program: train.py
method: grid
metric: {{name: val/entity_f1, goal: maximize}}
command: ["${{env}}", "${{interpreter}}", "${{program}}", "${{args}}"]
parameters:
  data: {{value: {data}}}
  epochs: {{value: {epochs}}}
  max_steps: {{value: 4}}
  batch_size: {{value: 16}}
  wandb_mode: {{value: disabled}}
  seed: {{values: [0, 1]}}
"""


def write_sweep(path: Path, data: Path, epochs: int) -> Path:
    path.write_text(SWEEP.format(data=data, epochs=epochs), encoding="utf-8")
    return path


def run_sweep(sweep: Path, out: Path, capsys) -> tuple[int, str]:
    code = local.main([str(sweep), f"--out={out}", "--workers=2"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_edited_yaml_a_copied_folder_and_replaced_data_are_never_counted(tmp_path, capsys):
    data = write_imbalanced(tmp_path / "data", n_train=96, n_eval=24, n_intents=6, n_types=10)
    sweep = write_sweep(tmp_path / "tiny.yaml", data, epochs=1)
    out = tmp_path / "out"
    folder = SweepFolder(out / "tiny")
    code, text = run_sweep(sweep, out, capsys)
    assert code == 0 and "2 runs, 0 already finished, 2 to run" in text
    first = {run["run_id"] for run in read_json(folder.manifest)["runs"]}
    for run in read_json(folder.manifest)["runs"]:  # the plan's identity is the one train.py records
        assert folder.run(run["run_id"]).identity()["key"] == run["identity"]["key"]

    # 1. The YAML is edited (epochs 1 -> 2) and rerun into the same --out: two new runs, the old two stale.
    write_sweep(sweep, data, epochs=2)
    code, text = run_sweep(sweep, out, capsys)
    assert code == 0 and "2 runs, 0 already finished, 2 to run" in text
    manifest = read_json(folder.manifest)
    assert {run["run_id"] for run in manifest["runs"]}.isdisjoint(first)
    assert {s["run_id"] for s in manifest["stale"]} == first
    assert all(s["why"] == "epochs 1 (the plan: 2)" for s in manifest["stale"])
    report = build_report(load_local(folder.path), "tiny", tmp_path / "report", plots=False)
    assert "2 runs: 2 finished, 0 not." in report and "Not counted: 2 stale" in report
    assert "| 2/2 |" in report and "epochs 1 (the plan: 2)" in report

    # 2. A run folder copied inside runs/: the same identity, one run, not a third seed.
    kept = manifest["runs"][0]["run_id"]
    shutil.copytree(folder.run(kept).path, folder.runs / "kept-copy")
    runs = load_local(folder.path)
    copy = next(r for r in runs if r.run_id == "kept-copy")
    assert copy.status == "duplicate" and copy.why == f"the same run as {kept} (same identity), not counted"
    report = build_report(runs, "tiny", tmp_path / "report", plots=False)
    assert "Not counted: 1 duplicate, 2 stale" in report and "| 2/2 |" in report and "| 3/" not in report

    # 3. The data is replaced at the same path: nothing trained on the old bytes is reused.
    write_imbalanced(data, n_train=96, n_eval=24, n_intents=6, n_types=10, seed=8)
    code, text = run_sweep(sweep, out, capsys)
    assert code == 0 and "2 runs, 0 already finished, 2 to run" in text
    stale = read_json(folder.manifest)["stale"]
    assert len(stale) == 5  # epochs 1 (x2), the earlier epochs 2 (x2), the copy
    assert sum("other data bytes (the dataset changed since)" in s["why"] for s in stale) == 5
    assert [r.status for r in load_local(folder.path)].count("finished") == 2


def test_runner_owned_parameters_and_duplicate_keys_are_refused_with_file_and_line(tmp_path):
    owned = tmp_path / "owned.yaml"
    owned.write_text("method: grid\nparameters:\n  seed: {values: [0, 1]}\n  run_id: {value: fixed}\n")
    with pytest.raises(planning.SweepError, match=rf"{owned}:4: parameter 'run_id' is not allowed in a sweep"):
        planning.load_sweep(owned)
    twice = tmp_path / "twice.yaml"
    twice.write_text("method: grid\nparameters:\n  gamma: {value: 2}\n  seed: {value: 0}\n  gamma: {value: 3}\n")
    with pytest.raises(planning.SweepError,
                       match=rf"{twice}:5: invalid YAML .*duplicate key 'gamma' \(first on line 3\)"):
        planning.load_sweep(twice)


def test_duplicate_keys_in_data_records_and_json_files_are_errors_naming_the_line(tmp_path):
    data = write_imbalanced(tmp_path / "data", n_train=40, n_eval=10, n_intents=3, n_types=4)
    lines = (data / "dev.jsonl").read_text().splitlines()
    record = json.loads(lines[2])
    lines[2] = lines[2][:-1] + f', "intent": {json.dumps(record["intent"] + "_x")}}}'
    (data / "dev.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"{data / 'dev.jsonl'}:3: duplicate key 'intent'"):
        load_dataset(str(data))
    summary = tmp_path / "summary.json"
    summary.write_text('{\n  "status": "finished",\n  "steps": 4,\n  "status": "crashed"\n}\n')
    with pytest.raises(ValueError, match=rf"{summary}:4: duplicate key 'status'"):
        read_json(summary)
    history = tmp_path / "history.jsonl"
    history.write_text('{"step": 1, "loss/total": 1.0}\n{"step": 2, "loss/total": 1.0, "loss/total": 9.0}\n')
    assert read_history(history) == [{"step": 1, "loss/total": 1.0}]


@pytest.fixture
def finished_run(tmp_path):
    data = write_imbalanced(tmp_path / "data", n_train=96, n_eval=24, n_intents=6, n_types=10)
    train.main([f"--data={data}", f"--output_dir={tmp_path / 'runs'}", "--run_id=one", "--epochs=1",
                "--batch_size=16", "--wandb_mode=disabled"])
    return data, RunFolder(tmp_path / "runs" / "one")


def _rename_intent(data: Path, old: str, new: str) -> None:
    for split in ("train", "dev", "test"):
        rows = [json.loads(line) for line in (data / f"{split}.jsonl").read_text().splitlines()]
        for row in rows:
            row["intent"] = new if row["intent"] == old else row["intent"]
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_resume_refuses_a_changed_world_and_writes_nothing(finished_run):
    data, folder = finished_run
    summary = read_json(folder.summary)
    folder.summary.write_text(json.dumps({**summary, keys.STATUS: "interrupted"}))  # killed at its test: resumable
    before = tree_digest(folder.path)
    intents = read_json(folder.config)["labels"]["intents"]
    _rename_intent(data, intents[1], "renamed_intent")
    with pytest.raises(ValueError) as err:
        train.main([f"--resume={folder.path}"])
    assert f"intent labels differ from the run's: renamed {intents[1]!r} -> 'renamed_intent'" in str(err.value)
    assert "test split changed" in str(err.value) and "train split changed" in str(err.value)
    assert tree_digest(folder.path) == before  # nothing written, nothing moved
    _rename_intent(data, "renamed_intent", intents[1])  # restored: the same bytes again

    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    rows[0]["intent"] = "brand_new_intent"  # an intent added (the label count changes)
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"intent labels differ from the run's: added \['brand_new_intent'\]"):
        train.main([f"--resume={folder.path}"])
    assert tree_digest(folder.path) == before
    folder.summary.write_text(json.dumps(summary))


def test_resume_refuses_an_explicit_flag_that_differs_and_accepts_an_equal_one(finished_run, tmp_path):
    _, folder = finished_run
    with pytest.raises(ValueError,
                       match=r"--epochs=3 \(the run has 1\) would change it; drop the flag, or start a new run"):
        train.main([f"--resume={folder.path}", "--epochs=3"])
    summary = train.main([f"--resume={folder.path}", "--epochs=1", "--batch_size=16"])  # equal values pass
    assert summary["status"] == "finished"


def test_heldout_refuses_a_test_split_swapped_for_other_sentences_of_the_same_size(finished_run, capsys):
    data, folder = finished_run
    other = write_imbalanced(data.parent / "other", n_train=96, n_eval=24, n_intents=6, n_types=10, seed=99)
    shutil.copy(other / "test.jsonl", data / "test.jsonl")  # same size, other sentences
    with pytest.raises(SystemExit):
        heldout.main([str(folder.path), f"--out={data.parent / 'heldout'}"])
    assert f"{folder.path}: {data} is not the data the run was trained on (test split changed)" in \
        capsys.readouterr().err


def test_tune_counts_a_copied_run_once_and_lists_it(tmp_path, capsys):
    from nlu_collapse.analysis.tune import build_tune_report

    data = write_imbalanced(tmp_path / "data", n_train=96, n_eval=24, n_intents=6, n_types=10)
    sweep = write_sweep(tmp_path / "tiny.yaml", data, epochs=1)
    code, _ = run_sweep(sweep, tmp_path / "out", capsys)
    folder = SweepFolder(tmp_path / "out" / "tiny")
    first = read_json(folder.manifest)["runs"][0]["run_id"]
    shutil.copytree(folder.run(first).path, folder.runs / "copied")
    report = build_tune_report(load_local(folder.path), "tiny", tmp_path / "tune")
    assert code == 0 and "2 runs: 2 finished, 0 not." in report
    assert "| copied | duplicate |" in report and f"the same run as {first} (same identity), not counted" in report
