"""Every JSON file a run writes is strict JSON, with NaN and inf spelled "NaN", "Infinity", "-Infinity",
and every reader in the repo reads them back as the numbers they were; records from before still read."""
import math

import pytest

from nlu_collapse.analysis import diagnose, records
from nlu_collapse.runfolder import RunFolder
from nlu_collapse.safeio import json_text, loads_record, read_json
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.record import read_history
from tests.strictjson import parse_every_json_file, parse_strict

FINAL_LOSS = keys.final(keys.LOSS_TOTAL)


def test_a_nan_run_writes_only_strict_json(nan_run):
    folder = RunFolder(nan_run)
    parsed = parse_every_json_file(folder.path)
    assert {folder.config, folder.history, folder.summary, folder.forensics} <= set(parsed)
    assert any(folder.tables in path.parents for path in parsed)
    assert '"NaN"' in folder.history.read_text(encoding="utf-8")  # the NaN is there, as a string


def test_the_repo_readers_read_the_nan_back(nan_run):
    folder = RunFolder(nan_run)
    history = [row for row in read_history(folder.history) if keys.LOSS_TOTAL in row]
    assert history and all(math.isnan(row[keys.LOSS_TOTAL]) for row in history)
    assert math.isnan(folder.read_summary()[FINAL_LOSS])
    assert read_history(folder.forensics)[0]["step"] == 1  # forensics.jsonl: a step-keyed log like the history
    (run,) = records.load_local(nan_run.parent.parent)
    assert math.isnan(run.summary[FINAL_LOSS]) and math.isnan(run.history[0][keys.LOSS_TOTAL])
    diagnosed = diagnose.load_local(nan_run)
    assert math.isnan(diagnosed.history[0][keys.GRAD_NORM]) and math.isnan(diagnosed.summary[FINAL_LOSS])
    assert "final loss nan" in diagnose.render(diagnosed)  # a number to the renderer, not the text "NaN"


VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "finite": 0.25, "none": None, "text": "Tân Sơn Nhất",
          "nested": {"counts": [1, 2], "components": [math.nan, 1.0]}}


def _same(a, b) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("indent", [None, 2])
def test_one_encoder_spells_non_finite_numbers_and_reads_them_back(indent):
    text = json_text(VALUES, indent=indent)
    strict = parse_strict(text)
    assert (strict["nan"], strict["inf"], strict["-inf"]) == ("NaN", "Infinity", "-Infinity")
    assert strict["nested"]["components"][0] == "NaN" and strict["none"] is None
    assert _same(loads_record(text), VALUES)
    assert not _same(parse_strict(text), VALUES)  # without the decoding, the numbers are text: the check can fail


def test_records_written_before_read_as_they_did(tmp_path):
    """Bare NaN / Infinity tokens (every record before strict JSON) still read as floats."""
    folder = RunFolder(tmp_path)
    folder.history.write_text('{"step": 1, "loss/total": NaN, "grad/norm": Infinity}\n', encoding="utf-8")
    folder.summary.write_text('{"final/loss/total": -Infinity, "status": "finished"}', encoding="utf-8")
    (row,) = read_history(folder.history)
    assert math.isnan(row[keys.LOSS_TOTAL]) and row[keys.GRAD_NORM] == math.inf
    assert folder.read_summary()[FINAL_LOSS] == -math.inf


def test_configuration_strings_stay_strings(tmp_path):
    """config.json and sweep.json are read as written: a flag value spelled like a number stays text."""
    path = tmp_path / "config.json"
    path.write_text(json_text({"config": {"mask_value": "-Infinity"}}), encoding="utf-8")
    assert read_json(path)["config"]["mask_value"] == "-Infinity"
    assert read_json(path, measured=True)["config"]["mask_value"] == -math.inf
