"""train.py as `wandb agent` starts it, read back with W&B's own reader of the offline run file.

Without a server the agent cannot hand out runs, so this test does its part: it writes the sweep's
parameter file with W&B's own writer, sets the environment the agent sets (WANDB_SWEEP_ID,
WANDB_RUN_ID, WANDB_SWEEP_PARAM_PATH, WANDB_PROJECT / WANDB_ENTITY from `entity/project/id`),
builds the argument list with W&B's own agent helpers from the real sweep YAML, and runs
`/usr/bin/env python train.py --key=value ...` from the repo root with the venv "activated" (its
bin first on PATH). The parameters are the YAML's first grid point plus a few that make the run
small (data, epochs, batch size, output dir: what a user adds under `parameters:`) and
`log_model: True`.
`wandb leet inspect --json` / `--summary --json` then shows what W&B will hold for the run.
"""
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from nlu_collapse.analysis import report
from nlu_collapse.analysis.dashboard import COLLAPSE_PANELS, history_keys
from nlu_collapse.analysis.records import HISTORY_KEYS, load_wandb
from nlu_collapse.data import data_fingerprint
from nlu_collapse.runner import planning
from nlu_collapse.telemetry.record import read_history, read_json

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

SWEEP_ID, ENTITY = "abc123xy", "my-team"


def leet(path: Path, summary: bool):
    """W&B's own reader: one JSON object (--summary) or one record per line."""
    command = [str(VENV_BIN / "wandb"), "leet", "inspect", *(["--summary"] if summary else []), "--json", str(path)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    return json.loads(out) if summary else [json.loads(line) for line in out.splitlines() if line.strip()]


def agent_run(tmp_path: Path, yaml_name: str, pick: dict, small: dict, run_id: str):
    """Start train.py the way `wandb agent` would for the grid point of `yaml_name` matching `pick`."""
    from wandb.sdk.lib import config_util

    config = planning.load_sweep(ROOT / "sweeps" / f"{yaml_name}.yaml")
    point = next(p for p in planning.expand(config) if all(p[k] == v for k, v in pick.items()))
    params = {**point, **small}
    argv = planning.agent_command(config, params)  # ${env} ${interpreter} ${program} ${args}, as the agent renders them
    assert argv[:3] == ["/usr/bin/env", "python", "train.py"]
    param_path = tmp_path / "wandb" / f"sweep-{SWEEP_ID}" / f"config-{run_id}.yaml"
    config_util.save_config_file_from_dict(str(param_path), {k: {"value": v} for k, v in params.items()})
    # WANDB_SILENT off: W&B's own warnings (e.g. "Ignoring project ... when running a sweep") must show
    env = {k: v for k, v in os.environ.items()
           if k not in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_RUN_GROUP", "WANDB_SILENT")}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", WANDB_SWEEP_ID=SWEEP_ID, WANDB_RUN_ID=run_id,
               WANDB_SWEEP_PARAM_PATH=str(param_path), WANDB_PROJECT=config["project"], WANDB_ENTITY=ENTITY,
               WANDB_DIR=str(tmp_path), WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"), OMP_NUM_THREADS="1")
    # `python` on this PATH is the venv's: the defect the README's `source .venv/bin/activate` prevents
    assert Path(shutil.which("python", path=env["PATH"])).parent == VENV_BIN
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Ignoring" not in done.stdout + done.stderr  # project, entity and id are the agent's, not fought over
    files = list((Path(small["output_dir"]) / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(files) == 1, "auto mode without credentials is offline, under the agent's run id"
    return params, files[0], Path(small["output_dir"]) / run_id


def small_params(tmp_path, data, **extra):
    return {"data": str(data), "epochs": 2, "batch_size": 64, "task_grad_every": 10, "threads": 1,
            "output_dir": str(tmp_path / "runs"), **extra}


def is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def history_rows(records: list[dict]) -> list[dict]:
    return [r["history"]["item"] for r in records if r.get("type") == "history"]


@pytest.fixture(scope="module")
def collapsed(tmp_path_factory, tiny_data):
    """The ablation's first collapsed cell (-inf, dense), as an agent run."""
    tmp_path = tmp_path_factory.mktemp("agent-collapsed")
    params, wandb_file, run_dir = agent_run(tmp_path, "ablation", {"mask_value": "-inf", "seed": 0},
                                            small_params(tmp_path, tiny_data, log_model=True), "agentrun1")
    return params, leet(wandb_file, summary=True), leet(wandb_file, summary=False), run_dir


def test_agent_run_lands_in_the_sweep_project_with_the_sweep_config(collapsed):
    params, summary, records, run_dir = collapsed
    assert summary["project"] == "nlu-collapse" and summary["run_id"] == "agentrun1"
    assert summary["entity"] == ENTITY
    run_record = next(r["run"] for r in records if r.get("type") == "run")
    assert run_record.get("sweep_id") == SWEEP_ID
    for key in ("mask_value", "gamma", "lambdas", "seed", "epochs"):
        assert summary["config"][key] == params[key], key
    local_config = read_json(run_dir / "config.json")
    assert summary["config"]["labels"]["tags"] == local_config["labels"]["tags"]  # label names reach W&B
    assert summary["config"]["labels"]["intents"][0] == "add-contacts"
    # the run's identity reaches W&B as recorded: configuration, the data's bytes, the code
    identity = summary["config"]["identity"]
    assert identity["key"] == local_config["identity"]["key"] and identity["attempt"] == 1
    assert identity["data"]["sha256"] == data_fingerprint(params["data"])["sha256"]
    assert identity["code"]["git_commit"] == local_config["identity"]["code"]["git_commit"]


def test_agent_run_summary_is_finished_nan_safe_and_sortable(collapsed):
    _, summary, _, run_dir = collapsed
    values = summary["summary"]
    assert summary["state"] == "finished" and values["status"] == "finished"
    assert values["health/collapsed"] is True and values["health/collapse_step"] == 1
    assert values["health/collapse_reasons"][0] == "step 1: non-finite loss (nan)"
    local_summary = read_json(run_dir / "summary.json", measured=True)
    assert math.isnan(local_summary["final/loss/total"])
    for key in ("final/loss/total", "test/loss"):
        assert values[key] == "NaN" and values[f"{key}_is_finite"] is False, key
    # the sweep metric is a plain number (the best validation value), not {"max": ...}
    assert is_finite_number(values["val/entity_f1"]) and values["val/entity_f1"] == values["best/val/entity_f1"]


def test_every_wandb_row_has_the_epoch_of_its_step(collapsed):
    params, summary, records, run_dir = collapsed
    rows = history_rows(records)
    local_epoch = {row["step"]: row["epoch"] for row in read_history(run_dir / "history.jsonl") if "loss/total" in row}
    assert [row["_step"] for row in rows] == sorted(local_epoch)
    assert all(row["epoch"] == local_epoch[row["_step"]] for row in rows)
    val_epochs = [row["epoch"] for row in rows if "val/entity_f1" in row]
    assert params["epochs"] > 1 and val_epochs == [0]  # dead at step 1: dev scored once, no later epoch
    test_row = next(row for row in rows if "test/entity_f1" in row)
    assert test_row["best/epoch"] == summary["summary"]["best/epoch"] == 0 == test_row["epoch"]
    charts = [value for r in records if r.get("type") == "config" for key, value in r["config"]["update"].items()
              if key.endswith("visualize.stopped/last_state")]  # the carried last state, a chart (no step of its own)
    assert [c["panel_config"]["stringSettings"]["title"] for c in charts] == ["stopped: parameters non-finite at step 1"]
    values = summary["summary"]
    assert values["health/dead_at_step"] == 1 and values["stopped_dead"] is True and values["steps"] == 1
    assert values["health/dead_reason"] == "parameters non-finite at step 1"
    assert values["planned_steps"] == max(local_epoch) + 1 or values["planned_steps"] > 1


def test_collapse_section_keys_are_logged_and_finite_in_a_collapsed_run(collapsed):
    _, _, records, _ = collapsed
    train_rows = [row for row in history_rows(records) if "loss/total" in row]
    assert train_rows and all(row["loss/total"] == "NaN" or not is_finite_number(row["loss/total"]) for row in train_rows)
    for keys in COLLAPSE_PANELS:
        for key in keys:
            assert all(is_finite_number(row.get(key)) for row in train_rows), key
    assert all(row["health/loss_nonfinite"] == 1 for row in train_rows)
    logged = set().union(*history_rows(records))
    assert history_keys() <= logged, history_keys() - logged  # every dashboard panel has data


def test_label_counts_by_name_and_the_dataset_artifact(collapsed):
    _, summary, records, run_dir = collapsed
    tags = read_json(run_dir / "config.json")["labels"]["tags"]
    tables = sorted((run_dir.parent / "wandb").glob("offline-run-*-agentrun1/files/media/table/dist/entity/by_label_*.json"))
    assert len(tables) == 1  # one per epoch: the run stopped dead in its first
    table = json.loads(tables[-1].read_text())
    assert table["columns"] == ["label", "pred", "gold"] and [row[0] for row in table["data"]] == tags
    assert sum(row[1] for row in table["data"]) == sum(row[2] for row in table["data"]) > 0
    assert summary["summary"]["dead/dist/entity/pred_non_O"] == 0  # the dead model predicts every token O
    artifacts = [r["artifact"] for r in records if r.get("type") == "artifact"]
    dataset, = [a for a in artifacts if a["type"] == "dataset"]
    assert dataset["name"] == f"dataset-{Path(summary['config']['data']).name}" and "intents in train" in dataset["description"]
    assert {"card.md", "train.jsonl", "dev.jsonl", "test.jsonl"} <= {e["path"] for e in dataset["manifest"]["contents"]}


def test_log_model_as_a_sweep_parameter_logs_the_best_checkpoint(collapsed):
    params, _, records, _ = collapsed
    assert params["log_model"] is True
    model, = [r["artifact"] for r in records if r.get("type") == "artifact" and r["artifact"]["type"] == "model"]
    assert model["name"] == "model-agentrun1"
    paths = {entry["path"] for entry in model["manifest"]["contents"]}
    assert {"checkpoints/best.pt", "config.json", "summary.json", "encoder/config.json",
            "encoder/model.safetensors"} <= paths
    assert any(p.startswith("tokenizer/") for p in paths)  # the layout predict.py reads (tests/test_artifacts.py)


def test_report_reads_the_wandb_run_as_the_local_record(collapsed):
    """analysis/records.py's W&B reader, on what W&B holds for the run (a stand-in for wandb.Api)."""
    _, summary, records, run_dir = collapsed

    wandb_run = SimpleNamespace(id=summary["run_id"], state=summary["state"], config=summary["config"],
                                summary=summary["summary"], scan_history=lambda: history_rows(records))

    class Api:
        def runs(self, path, filters):
            assert path == "my-team/nlu-collapse" and filters == {"sweep": SWEEP_ID}
            return [wandb_run]

    run = load_wandb("my-team/nlu-collapse", SWEEP_ID, api=Api())[0]
    local_summary = read_json(run_dir / "summary.json", measured=True)
    assert run.status == "finished" and run.factors["mask_value"] == "-inf"
    keys = [key for _, key, _, _ in report.ROWS] + [key for _, key in report.EFFECT_METRICS]
    keys += ["health/first_nonfinite_step"] + [k for k in local_summary if k.startswith("test/entity_type/")]
    for key in keys:
        assert key in run.summary, key  # every key the report reads is in what W&B holds
        expected, got = report.value(SimpleNamespace(summary=local_summary), key), report.value(run, key)
        assert (math.isnan(expected) and math.isnan(got)) or expected == pytest.approx(got), key
    assert set(HISTORY_KEYS) <= set(run.history[0]) and math.isnan(run.history[0]["loss/total"])
