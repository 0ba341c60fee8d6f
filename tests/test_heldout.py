"""analysis/heldout.py: subsets sized by the flags, scored as compute_metrics scores them alone, mean ± std
over seeds, the new-trigram fallback named for data without recorded flags, and a one-line error."""
import csv
import dataclasses
import json
import shutil
import statistics

import pytest

from nlu_collapse import docpage, train
from nlu_collapse.analysis import evidence, heldout
from nlu_collapse.data import load_dataset
from nlu_collapse.data.formats import jsonl_text
from nlu_collapse.data.novelty import new_ngram_flags
from nlu_collapse.data.phone_assistant_wild import generate_flagged
from nlu_collapse.evaluation import compute_metrics
from nlu_collapse.evaluation import heldout as scoring
from nlu_collapse.model import encode
from nlu_collapse.model.loading import load_run
from nlu_collapse.model.prediction import predict_encoded
from nlu_collapse.runfolder import RunFolder
from nlu_collapse.safeio import json_text
from nlu_collapse.telemetry import keys
from tests.datasets import write_generated


def _write_flagged(folder):
    """phone-assistant-wild at a small size, flags written as the embedded dataset writes them."""
    folder.mkdir()
    for split, flagged in generate_flagged(seed=5, sizes=(160, 40, 40)).items():
        text = jsonl_text([ex for ex, _ in flagged], [{"held_out_phrasing": flag} for _, flag in flagged])
        (folder / f"{split}.jsonl").write_text(text, encoding="utf-8")
    return folder


def _train(data, runs_dir, run_id, seed):
    train.main([f"--data={data}", f"--output_dir={runs_dir}", f"--run_id={run_id}", f"--seed={seed}",
                "--max_steps=3", "--wandb_mode=disabled", "--threads=1", "--batch_size=32"])
    return runs_dir / run_id


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("heldout")
    flagged, plain = _write_flagged(root / "wild"), write_generated(root / "plain", (96, 24, 24))
    run_dirs = [_train(flagged, root / "sweep" / "runs", f"wild{seed}", seed) for seed in (0, 1)]
    _train(plain, root / "plain-sweep" / "runs", "plain0", 0)
    report = heldout.main([*map(str, run_dirs), str(root / "plain-sweep"), f"--out={root / 'report'}"])
    return report, flagged, plain, run_dirs


def _by_data(report, folder):
    return [run for run in report.runs if run.data == folder.name]


def test_subset_sizes_are_the_recorded_flag_counts(analysed):
    report, flagged, _, _ = analysed
    records = {split: [line for line in (flagged / f"{split}.jsonl").read_text().splitlines()]
               for split in scoring.SPLITS}
    for run in _by_data(report, flagged):
        assert run.flags.source == scoring.RECORDED
        for split in scoring.SPLITS:
            held = sum('"held_out_phrasing": true' in line for line in records[split])
            assert 0 < held < len(records[split])
            assert run.sizes[split, scoring.HELD_OUT] == held
            assert run.sizes[split, scoring.IN_TEMPLATE] == len(records[split]) - held


def test_subset_metrics_equal_compute_metrics_on_the_subset_alone(analysed):
    report, flagged, _, _ = analysed
    dataset = load_dataset(str(flagged))
    for run in _by_data(report, flagged):
        loaded = load_run(run.run_dir, "best")
        for split in scoring.SPLITS:
            for subset in (scoring.IN_TEMPLATE, scoring.HELD_OUT):
                keep = [flag == (subset == scoring.HELD_OUT) for flag in run.flags.by_split[split]]
                examples = [ex for ex, k in zip(dataset.splits[split], keep) if k]
                encoded = encode(examples, loaded.tokenizer, loaded.labels, loaded.config.max_length)
                alone = predict_encoded(loaded.model, encoded, loaded.labels, 8, "cpu", loaded.tokenizer.pad_token_id)
                expected, _ = compute_metrics(examples, alone, loaded.labels)
                got = run.scores[split, subset]
                for _, metric in heldout.METRICS:
                    assert got[metric] == pytest.approx(expected[metric], abs=1e-9), (split, subset, metric)


def test_configuration_mean_and_std_over_the_two_seeds(analysed):
    report, flagged, _, _ = analysed
    (name, members), = [(n, m) for n, m in report.groups.items() if m[0].data == flagged.name]
    assert sorted(r.seed for r in members) == [0, 1]
    assert "seed=" not in name
    with (report.out / "heldout.csv").open(encoding="utf-8") as rows:
        written = [row for row in csv.DictReader(rows) if row["configuration"] == name]
    assert len(written) == len(heldout.METRICS) * len(scoring.SUBSETS)
    metric_of = dict(heldout.METRICS)
    for row in written:
        values = [r.scores[row["split"], row["subset"]][metric_of[row["metric"]]] for r in members]
        assert float(row["mean"]) == pytest.approx(statistics.fmean(values))
        assert float(row["std"]) == pytest.approx(statistics.stdev(values), nan_ok=True)
        assert row["n"] == "2"
    assert f"| {name} |" in report.markdown


def test_data_without_recorded_flags_falls_back_to_new_trigrams_and_says_so(analysed):
    report, _, plain, _ = analysed
    (run,) = _by_data(report, plain)
    dataset = load_dataset(str(plain))
    assert run.flags.source == scoring.FALLBACK
    for split in scoring.SPLITS:
        assert run.flags.by_split[split] == new_ngram_flags(dataset.splits["train"], dataset.splits[split])
    assert scoring.FALLBACK in report.markdown and scoring.RECORDED in report.markdown
    assert keys.ENTITY_F1 in run.scores["test", scoring.IN_TEMPLATE]


def test_a_folder_without_finished_runs_is_one_line_and_a_nonzero_exit(tmp_path, capsys):
    run_dir = tmp_path / "sweep" / "runs" / "crashed0"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text('{"config": {"seed": 0}}', encoding="utf-8")
    (run_dir / "summary.json").write_text('{"status": "crashed"}', encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        heldout.main([str(tmp_path / "sweep")])
    assert exit_info.value.code != 0
    stderr = capsys.readouterr().err
    error = stderr.strip().splitlines()[-1]
    assert "no finished run" in error and str(tmp_path / "sweep") in error and "status crashed" in error
    assert "Traceback" not in stderr


def _evidence_line(run_dir, **changes) -> dict:
    """An evidence file's line for a run, as analysis/evidence.py writes it from the run's record."""
    folder = RunFolder(run_dir)
    summary = folder.read_summary() | changes
    return {"run_id": run_dir.name, "status": summary[keys.STATUS], "factors": {}, "seed": None,
            "config": folder.read_config()["config"], "identity": folder.read_config()["identity"]["key"],
            "why": None, "summary": summary, "dev_history": []}


def _write_evidence(folder, lines):
    folder.mkdir()
    header = {"kind": evidence.KIND, "name": "sweep", "sweep": "sweeps/baseline.yaml", "data": "x", "command": "c",
              "code_versions": [], "exported": "now"}
    (folder / "sweep.jsonl").write_text("\n".join(json.dumps(line) for line in [header, *lines]) + "\n",
                                        encoding="utf-8")
    return folder


def test_write_docs_traces_each_run_to_the_evidence_and_keeps_the_rest_of_the_page(analysed, tmp_path, monkeypatch):
    report, _, _, run_dirs = analysed
    # wild0 is in the evidence as it ended; wild1's evidence twin ended elsewhere; plain0 is in no evidence file
    test_f1 = keys.split_metric("test", keys.ENTITY_F1)
    recorded = RunFolder(run_dirs[1]).read_summary()[test_f1]
    found = _write_evidence(tmp_path / "evidence", [_evidence_line(run_dirs[0]),
                                                    _evidence_line(run_dirs[1], **{test_f1: recorded + 0.25})])
    page = tmp_path / "results.md"
    page.write_text("# Results\n\nhand-written prose\n", encoding="utf-8")
    monkeypatch.setattr(heldout, "PAGE", page)
    monkeypatch.setattr(evidence, "EVIDENCE", found)
    paths = [*map(str, run_dirs), str(run_dirs[0].parent.parent.parent / "plain-sweep")]
    heldout.main([*paths, f"--out={tmp_path / 'report'}", "--write_docs"])
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Results\n\nhand-written prose\n") and docpage.problems(text, "page") == []
    rows = {row["run"]: row for row in heldout.traced_rows(report.runs, found)}
    assert rows["wild0"]["same recorded test entity F1"] == "yes"
    assert rows["wild0"]["evidence run (same identity)"] == "wild0 in sweep.jsonl"
    assert rows["wild1"]["same recorded test entity F1"] == f"no ({recorded + 0.25:.4f} there)"
    assert rows["plain0"]["evidence run (same identity)"] == "none"
    assert "1 of 3 runs are an evidence run" in text
    assert "\n# " not in text.split("<!-- measured: heldout")[1]  # the report's headings sit under the page's
    assert "#### entity F1" in text and "--write_docs" in text
    # docs/build.py --check: the traced rows still match the evidence, until the evidence changes under them
    block = docpage.read(text, "heldout")
    assert heldout.TRACED_HEADER in block and heldout.stale_traces(block, found) == []
    _write_evidence(tmp_path / "re-exported", [_evidence_line(run_dirs[0], **{test_f1: 0.5}),
                                               _evidence_line(run_dirs[1], **{test_f1: recorded + 0.25})])
    [problem] = heldout.stale_traces(block, tmp_path / "re-exported")
    assert "run wild0" in problem and "sweep.jsonl" in problem and "0.5000" in problem
    (tmp_path / "re-exported" / "sweep.jsonl").write_text("cut", encoding="utf-8")
    [problem] = heldout.stale_traces(block, tmp_path / "re-exported")
    assert "no finished run of that id" in problem


def test_write_docs_with_a_damaged_evidence_file_is_one_line_and_the_page_is_kept(analysed, tmp_path, monkeypatch,
                                                                                  capsys):
    _, _, _, run_dirs = analysed
    found = tmp_path / "evidence"
    found.mkdir()
    (found / "cut.jsonl").write_text('{"kind": "nlu-collapse sweep evidence", "na', encoding="utf-8")
    page = tmp_path / "results.md"
    page.write_text("# Results\n", encoding="utf-8")
    monkeypatch.setattr(heldout, "PAGE", page)
    monkeypatch.setattr(evidence, "EVIDENCE", found)
    with pytest.raises(SystemExit) as exit_info:
        heldout.main([str(run_dirs[0]), f"--out={tmp_path / 'report'}", "--write_docs"])
    assert exit_info.value.code != 0
    stderr = capsys.readouterr().err
    assert "cut.jsonl" in stderr.strip().splitlines()[-1] and "Traceback" not in stderr
    assert page.read_text(encoding="utf-8") == "# Results\n"


def test_a_collapsed_run_s_nan_score_traces_as_the_same_run(analysed, tmp_path):
    """A collapsed run ends at test entity F1 NaN here and in its evidence: that is the same run, not a mismatch."""
    report, _, _, run_dirs = analysed
    test_f1 = keys.split_metric("test", keys.ENTITY_F1)
    nan_dir = tmp_path / "nan-run"
    shutil.copytree(run_dirs[0], nan_dir)
    summary = RunFolder(nan_dir).read_summary() | {test_f1: float("nan")}
    (nan_dir / "summary.json").write_text(json_text(summary), encoding="utf-8")
    found = _write_evidence(tmp_path / "evidence", [_evidence_line(nan_dir)])
    scored = next(run for run in report.runs if run.run_dir == run_dirs[0])
    [row] = heldout.traced_rows([dataclasses.replace(scored, run_dir=nan_dir)], found)
    assert row["recorded test entity F1"] == "nan"
    assert row["same recorded test entity F1"] == "yes" and row["evidence run (same identity)"] == "nan-run in sweep.jsonl"
    block = heldout.TRACED_HEADER + "\n|---|\n" + "| " + " | ".join(str(v) for v in row.values()) + " |\n"
    assert heldout.stale_traces(block, found) == []
