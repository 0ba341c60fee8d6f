"""The sweep YAMLs and the offline runner (sweeps/local.py, loaded by path: sweeps/ is not a package)."""
import json
from pathlib import Path

import pytest

from nlu_collapse.config import Config, parse_config
from nlu_collapse.runfolder import RunFolder
from nlu_collapse.runner import planning
from nlu_collapse.telemetry import keys
from tests.scripts import local
from tests.strictjson import parse_every_json_file

ROOT = Path(__file__).resolve().parent.parent

YAMLS = sorted((ROOT / "sweeps").glob("*.yaml"))


def test_sweeps_folder_is_not_a_package():
    assert not (ROOT / "sweeps" / "__init__.py").exists()
    import sweeps  # W&B's engine, not our folder

    assert hasattr(sweeps, "schema_violations_from_proposed_config")


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.name)
def test_every_yaml_is_a_valid_sweep_of_real_flags(path):
    config = planning.load_sweep(path)
    assert config["metric"]["name"] == "val/entity_f1"
    # `wandb sweep` creates the sweep in this project, and the agent's runs log there
    assert config["project"] == Config.wandb_project
    assert config["command"] == ["${env}", "${interpreter}", "${program}", "${args}"]
    for params in planning.expand(config):
        parse_config([f"--{k}={v}" for k, v in params.items()])  # every value parses as train.py would


@pytest.mark.parametrize("name, n", [("ablation", 24), ("masking", 6), ("gamma", 6), ("lambdas", 6), ("mechanism", 18),
                                     ("claims", 18), ("claims-full", 72), ("claims-gamma", 12)])
def test_expansion_counts(name, n):
    runs = planning.expand(planning.load_sweep(ROOT / "sweeps" / f"{name}.yaml"))
    assert len(runs) == n and len({json.dumps(r, sort_keys=True) for r in runs}) == n


def test_argument_list_is_what_wandb_agent_builds():
    config = planning.load_sweep(ROOT / "sweeps" / "ablation.yaml")
    params = {"gamma": 3, "lambdas": "old", "mask_value": "-inf", "seed": 1, "stop_on_collapse": True,
              "max_steps": None}
    # wandb agent: /usr/bin/env python <program> then --key=str(value), in the run's parameter order
    expected = ["/usr/bin/env", "python", "train.py"] + [f"--{k}={v}" for k, v in params.items()]
    assert planning.agent_command(config, params) == expected
    assert expected[-2:] == ["--stop_on_collapse=True", "--max_steps=None"]
    cfg = parse_config(expected[3:])
    assert (cfg.gamma, cfg.mask_value, cfg.stop_on_collapse, cfg.max_steps) == (3.0, "-inf", True, None)


def test_plan_appends_output_dir_and_data_override(tmp_path):
    sweep = planning.plan(ROOT / "sweeps" / "masking.yaml", tmp_path, data="/some/atis")
    assert sweep["name"] == "masking-atis"
    for run in sweep["runs"]:
        assert run["args"][-3:] == ["--wandb_project=nlu-collapse", f"--output_dir={tmp_path / 'masking-atis' / 'runs'}",
                                    "--data=/some/atis"]
    other = planning.plan(ROOT / "sweeps" / "masking.yaml", tmp_path)
    assert {r["run_id"] for r in sweep["runs"]}.isdisjoint({r["run_id"] for r in other["runs"]})


def test_broken_yaml_and_unknown_parameter_are_clear_errors(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("program: train.py\nmethod: grid\nparameters:\n  gamma: [2, 3\n", encoding="utf-8")
    with pytest.raises(planning.SweepError, match=r"broken.yaml:\d+: invalid YAML"):
        planning.load_sweep(broken)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("program: train.py\nmethod: grid\nparameters:\n  gama:\n    values: [2, 3]\n", encoding="utf-8")
    with pytest.raises(planning.SweepError, match=r"\['gama'\] are not train.py flags"):
        planning.load_sweep(unknown)
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("program: train.py\nmethod: grid\nparameters:\n  gamma:\n    valuez: [2]\n", encoding="utf-8")
    with pytest.raises(planning.SweepError, match="not a valid W&B sweep"):
        planning.load_sweep(invalid)
    with pytest.raises(planning.SweepError, match="no such sweep file"):
        planning.load_sweep(tmp_path / "absent.yaml")


def test_failed_run_does_not_stop_the_others_and_rerun_skips_finished(tmp_path, small_data, capsys):
    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text(f"""
program: train.py
method: grid
metric: {{name: val/entity_f1, goal: maximize}}
parameters:
  data:
    values: ["{small_data}", "{tmp_path / 'no-such-data'}"]
  max_steps: {{value: 3}}
  epochs: {{value: 1}}
  wandb_mode: {{value: disabled}}
command: [ "${{env}}", "${{interpreter}}", "${{program}}", "${{args}}" ]
""", encoding="utf-8")
    out = tmp_path / "out"
    assert local.main([str(sweep_file), f"--out={out}", "--workers=2"]) == 1
    manifest = json.loads((out / "tiny" / "sweep.json").read_text())
    assert out / "tiny" / "sweep.json" in parse_every_json_file(out / "tiny")  # the sweep's files: strict JSON
    status = {r["params"]["data"]: r["status"] for r in manifest["runs"]}
    assert status == {str(small_data): "finished", str(tmp_path / "no-such-data"): "failed"}
    good = next(r for r in manifest["runs"] if r["status"] == "finished")["run_id"]
    bad = next(r for r in manifest["runs"] if r["status"] == "failed")["run_id"]
    summary = RunFolder(out / "tiny" / "runs" / good).read_summary()
    printed = capsys.readouterr().out.splitlines()  # one verdict line per run as it ends, then the count
    verdict = (f"run {good} [data={small_data}]: {summary[keys.OUTCOME]}, "
               f"test entity F1 {summary[keys.split_metric('test', keys.ENTITY_F1)]:.3f}")
    assert verdict in printed
    assert any(line.startswith(f"run {bad} [data={tmp_path / 'no-such-data'}]: failed (exit 1); see ")
               for line in printed)
    assert any(line.startswith(f"tiny: 2 runs: 1 failed, 1 {summary[keys.OUTCOME]} in ") for line in printed)
    log_before = (out / "tiny" / "logs" / f"{good}.log").read_text()
    assert local.main([str(sweep_file), f"--out={out}", "--workers=2"]) == 1
    assert (out / "tiny" / "logs" / f"{good}.log").read_text() == log_before  # finished run not rerun


def test_random_sweep_samples_the_same_runs_every_time(tmp_path):
    sweep_file = tmp_path / "random.yaml"
    sweep_file.write_text("program: train.py\nmethod: random\nrun_cap: 3\nparameters:\n"
                          "  lr:\n    distribution: log_uniform_values\n    min: 0.0001\n    max: 0.01\n"
                          "  seed:\n    values: [0, 1]\n", encoding="utf-8")
    first = planning.expand(planning.load_sweep(sweep_file))
    assert len(first) == 3 and first == planning.expand(planning.load_sweep(sweep_file))
    assert all(1e-4 <= run["lr"] <= 1e-2 and isinstance(run["lr"], float) for run in first)
    assert len(planning.expand(planning.load_sweep(sweep_file), count=5)) == 5


# --- the pretrained encoder's sweeps: the from-scratch grids at the learning rate and budget its search chose

TWINS = ("mechanism", "ablation", "baseline")
CHOSEN = ("encoder", "lr", "epochs")


@pytest.mark.parametrize("name, cells", [("pretrained-tune", 12), ("pretrained-mechanism", 6),
                                         ("pretrained-ablation", 8), ("pretrained-baseline", 4)])
def test_pretrained_expansion_counts(name, cells):
    """Every cell of the from-scratch grid, times the seeds the YAML runs (a stated subset of {0, 1, 2})."""
    config = planning.load_sweep(ROOT / "sweeps" / f"{name}.yaml")
    seeds = config["parameters"]["seed"]
    n = cells * len(seeds.get("values", [seeds.get("value")]))
    runs = planning.expand(config)
    assert len(runs) == n and len({json.dumps(r, sort_keys=True) for r in runs}) == n


@pytest.mark.parametrize("sweep", TWINS)
def test_a_pretrained_sweep_is_its_from_scratch_grid_plus_the_encoder_and_its_tuned_lr_and_epochs(sweep):
    """Only the encoder and the two tuned values differ, so a side-by-side table compares like with like; the
    values are one cell of the search's grid, the same for every twin."""
    tune = planning.load_sweep(ROOT / "sweeps" / "pretrained-tune.yaml")["parameters"]
    twin = planning.load_sweep(ROOT / "sweeps" / f"pretrained-{sweep}.yaml")
    scratch = planning.load_sweep(ROOT / "sweeps" / f"{sweep}.yaml")
    assert {k: v for k, v in twin.items() if k != "parameters"} == {
        k: v for k, v in scratch.items() if k != "parameters"}
    chosen = {k: twin["parameters"][k] for k in CHOSEN}
    kept = {k: v for k, v in twin["parameters"].items() if k not in CHOSEN}
    assert {k: v for k, v in kept.items() if k != "seed"} == {
        k: v for k, v in scratch["parameters"].items() if k != "seed"}
    assert set(kept["seed"]["values"]) <= set(scratch["parameters"]["seed"]["values"])  # a stated subset
    assert "of its {0, 1, 2}" in twin_header(sweep)  # the header says which seeds it runs, and why
    assert chosen["encoder"] == tune["encoder"]
    for flag in ("lr", "epochs"):
        assert chosen[flag]["value"] in tune[flag]["values"]
    others = [planning.load_sweep(ROOT / "sweeps" / f"pretrained-{s}.yaml")["parameters"] for s in TWINS]
    assert all({k: p[k] for k in CHOSEN} == chosen for p in others)


def twin_header(sweep: str) -> str:
    text = (ROOT / "sweeps" / f"pretrained-{sweep}.yaml").read_text(encoding="utf-8")
    return "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))


def test_the_pretrained_sweeps_use_the_pick_of_the_recorded_search():
    """docs/evidence/pretrained-tune.jsonl holds the search's runs: its best finished, healthy run on dev is the
    configuration the twins run (a rerun of the search that picks otherwise fails here until they follow)."""
    from nlu_collapse.analysis.evidence import load
    from nlu_collapse.analysis.tune import pick, scored_runs

    _, runs = load(ROOT / "docs" / "evidence" / "pretrained-tune.jsonl")
    best, _ = pick(scored_runs(runs))
    twin = planning.load_sweep(ROOT / "sweeps" / "pretrained-ablation.yaml")["parameters"]
    assert best.config["lr"] == pytest.approx(float(twin["lr"]["value"]))
    assert best.config["epochs"] == twin["epochs"]["value"]
    assert best.config["encoder"] == twin["encoder"]["value"]
