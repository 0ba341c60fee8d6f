"""The tuning search: the tiny_* flags, the models and tokenizers they build, a non-default run
loaded back, sweeps/tune.yaml, and analysis/tune.py on run records written here (dev picks, never test)."""
import json
import math
import shutil
from pathlib import Path

import pytest

from nlu_collapse import train
from nlu_collapse.analysis.records import load_local
from nlu_collapse.analysis.tune import build_tune_report, marginals, pick, scored_runs
from nlu_collapse.analysis.tune import main as tune_main
from nlu_collapse.config import TINY_FLAGS, Config, parse_config
from nlu_collapse.data import load_dataset
from nlu_collapse.evaluation import compute_metrics
from nlu_collapse.model import build_encoder, build_tiny_tokenizer
from nlu_collapse.model.inference import predict_sentences
from nlu_collapse.model.loading import RunError, load_run
from nlu_collapse.model.multitask import TINY, tiny_architecture
from nlu_collapse.model.prediction import Predictions
from nlu_collapse.runfolder import RunFolder
from nlu_collapse.runner import planning
from nlu_collapse.telemetry import keys

ROOT = Path(__file__).resolve().parent.parent

SIZES = ["--tiny_layers=1", "--tiny_hidden=64", "--tiny_heads=4"]


# --- flags

def test_flags_parse_and_defaults_are_todays_tiny_encoder():
    cfg = parse_config([*SIZES, "--tiny_vocab_min_count=5"])
    assert (cfg.tiny_layers, cfg.tiny_hidden, cfg.tiny_heads, cfg.tiny_vocab_min_count) == (1, 64, 4, 5)
    assert TINY_FLAGS == ("tiny_layers", "tiny_hidden", "tiny_heads", "tiny_vocab_min_count")
    # the architecture every run before these flags had: 2 x 128, 2 heads, feed-forward 512
    assert TINY == tiny_architecture(Config()) == dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                                       intermediate_size=512, max_position_embeddings=128)


@pytest.mark.parametrize("argv, message", [
    (["--tiny_hidden=100", "--tiny_heads=3"], "--tiny_hidden=100 is not a multiple of --tiny_heads=3"),
    (["--tiny_heads=3"], "--tiny_hidden=128 is not a multiple of --tiny_heads=3"),
    (["--encoder=xlm-roberta-base", "--tiny_layers=4"], "--tiny_layers=4: the tiny_* flags apply only to "
                                                         "--encoder=tiny, not --encoder=xlm-roberta-base"),
    (["--encoder=some/dir", "--tiny_vocab_min_count=1", "--tiny_hidden=64"],
     "--tiny_hidden=64, --tiny_vocab_min_count=1: the tiny_* flags apply only to --encoder=tiny"),
    (["--tiny_layers=0"], "--tiny_layers=0: expected an integer in [1, inf)"),
    (["--tiny_vocab_min_count=0"], "--tiny_vocab_min_count=0: expected an integer in [1, inf)"),
])
def test_bad_combinations_are_usage_errors_naming_the_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_another_encoder_with_default_tiny_values_is_fine():
    assert parse_config(["--encoder=xlm-roberta-base", "--tiny_layers=2"]).encoder == "xlm-roberta-base"


# --- what the flags build

def test_a_non_default_size_builds_that_encoder():
    encoder = build_encoder("tiny", 50, tiny_architecture(Config(tiny_layers=1, tiny_hidden=64, tiny_heads=4)))
    assert len(encoder.encoder.layer) == 1 and encoder.embeddings.word_embeddings.weight.shape == (50, 64)
    assert encoder.config.num_attention_heads == 4 and encoder.config.intermediate_size == 256
    assert len(build_encoder("tiny", 50).encoder.layer) == 2


def test_vocabulary_shrinks_as_min_count_grows(tiny_data):
    dataset = load_dataset(str(tiny_data))
    sizes = [len(build_tiny_tokenizer(dataset.splits["train"], n)) for n in (1, 2, 5)]
    assert sizes[0] > sizes[1] > sizes[2]
    assert len(train.load_tokenizer(Config(tiny_vocab_min_count=5), dataset, None)) == sizes[2]


# --- a non-default run, trained and loaded back

@pytest.fixture(scope="module")
def small_run(tmp_path_factory, tiny_data) -> Path:
    out = tmp_path_factory.mktemp("tune-run")
    train.main([f"--data={tiny_data}", f"--output_dir={out}", "--run_id=small", "--max_steps=2", *SIZES,
                "--tiny_vocab_min_count=5", "--wandb_mode=disabled", "--threads=1", "--task_grad_every=0"])
    return out / "small"


def _test_scores(run_dir: Path, data: Path) -> dict:
    """The loaded run's test metrics, predicted from the test sentences alone."""
    run, test = load_run(run_dir), load_dataset(str(data)).splits["test"]
    results = predict_sentences(run, [ex.tokens for ex in test])
    pred = Predictions([r["tags"] for r in results], [r["intent"]["label"] for r in results],
                       [r["command"]["label"] for r in results], math.nan)
    return compute_metrics(test, pred, run.labels)[0]


def test_load_run_rebuilds_a_non_default_size_and_predicts_what_it_measured(small_run, tiny_data):
    run = load_run(small_run)
    encoder = run.model.encoder.config
    assert (encoder.num_hidden_layers, encoder.hidden_size, encoder.num_attention_heads) == (1, 64, 4)
    scores = _test_scores(small_run, tiny_data)
    for name in (keys.ENTITY_F1, keys.macro_f1("intent"), keys.macro_f1("command")):
        assert scores[name] == pytest.approx(run.summary[keys.split_metric("test", name)], abs=1e-9), name


def test_the_recorded_encoder_config_comes_first_and_the_flags_are_the_fallback(small_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(small_run, copy)
    record = json.loads((copy / "config.json").read_text())
    record["config"]["tiny_hidden"] = 128  # wrong flags: encoder/config.json still rebuilds the trained size
    (copy / "config.json").write_text(json.dumps(record))
    assert load_run(copy).model.encoder.config.hidden_size == 64
    (RunFolder(copy).encoder / "config.json").write_text("{}")  # damaged: named, not silently replaced by the flags
    with pytest.raises(RunError, match="encoder/config.json cannot be read"):
        load_run(copy)
    shutil.rmtree(RunFolder(copy).encoder)
    record["config"]["tiny_hidden"] = 64  # a run from before encoder/config.json: the flags say the size
    (copy / "config.json").write_text(json.dumps(record))
    assert load_run(copy).model.encoder.config.hidden_size == 64


# --- sweeps/tune.yaml

def test_tune_yaml_expands_to_run_cap_valid_runs():
    config = planning.load_sweep(ROOT / "sweeps" / "tune.yaml")
    assert config["method"] == "random" and config["metric"] == {"name": keys.split_metric("dev", keys.ENTITY_F1),
                                                                 "goal": "maximize"}
    runs = planning.expand(config)
    assert len(runs) == config["run_cap"] and len({json.dumps(r, sort_keys=True) for r in runs}) == len(runs)
    searched = {"lr", "warmup_ratio", "epochs", "seed", *TINY_FLAGS}
    for params in runs:
        assert set(params) == searched
        cfg = parse_config([f"--{k}={v}" for k, v in params.items()])  # resolve() checks hidden % heads
        assert cfg.tiny_hidden % cfg.tiny_heads == 0


# --- analysis/tune.py on fake records

def write_run(folder: Path, rid: str, params: dict, dev_f1: list[float], test_f1: float, seconds: float,
              collapsed: bool = False) -> None:
    """A finished run: one dev row per epoch (intent accuracy = F1 + 0.1, so the kept row is visible)."""
    run_dir = folder / "runs" / rid
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"config": params, "run_id": rid, "dataset": "fake"}))
    dev = lambda name: keys.split_metric("dev", name)  # noqa: E731
    rows = [{keys.STEP: 10 * (epoch + 1), keys.EPOCH: epoch, dev(keys.ENTITY_F1): f1,
             dev(keys.accuracy("intent")): f1 + 0.1, dev(keys.macro_f1("intent")): f1,
             dev(keys.macro_f1("command")): f1} for epoch, f1 in enumerate(dev_f1)]
    (run_dir / "history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    summary = {keys.STATUS: "finished", keys.split_metric("test", keys.ENTITY_F1): test_f1,
               keys.PERF_TRAIN_SECONDS: seconds, keys.COLLAPSED: collapsed}
    (run_dir / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def tune_folder(tmp_path):
    write_run(tmp_path, "good", {"lr": 1e-3, "tiny_layers": 2, "seed": 0}, [0.5, 0.8, 0.7], 0.6, 100.0)
    write_run(tmp_path, "best-test", {"lr": 3e-4, "tiny_layers": 1, "seed": 0}, [0.75], 0.99, 20.0)
    write_run(tmp_path, "collapsed", {"lr": 3e-3, "tiny_layers": 4, "seed": 1}, [0.9], 0.5, 10.0, collapsed=True)
    write_run(tmp_path, "fast", {"lr": 1e-3, "tiny_layers": 1, "seed": 1}, [0.6], 0.5, 5.0)
    planned = [{"run_id": rid, "status": "finished", "params": {}}
               for rid in ("good", "best-test", "collapsed", "fast")]
    planned.append({"run_id": "never-ran", "status": "failed", "params": {"lr": 1e-4, "tiny_layers": 2, "seed": 0}})
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": planned}))
    return tmp_path


def test_runs_sorted_by_dev_at_the_kept_epoch_and_the_pick_ignores_test(tune_folder):
    pairs = scored_runs(load_local(tune_folder))
    assert [run.run_id for run, _ in pairs] == ["collapsed", "good", "best-test", "fast"]
    good = pairs[1][1]
    # the kept epoch (dev entity F1 0.8), not the last one (0.7)
    assert good[keys.split_metric("dev", keys.ENTITY_F1)] == 0.8
    assert good[keys.split_metric("dev", keys.accuracy("intent"))] == pytest.approx(0.9)
    assert pick(pairs)[0].run_id == "good"           # not the collapsed run, not the best on test
    assert pick(pairs, budget_seconds=50)[0].run_id == "best-test"
    assert pick(pairs, budget_seconds=5)[0].run_id == "fast"
    assert pick(pairs, budget_seconds=1) is None


def test_marginal_means_per_value(tune_folder):
    rows = {(r["parameter"], r["value"]): r for r in marginals(scored_runs(load_local(tune_folder)))}
    assert rows[("layers", 1)]["mean dev entity F1"] == pytest.approx((0.75 + 0.6) / 2)
    assert rows[("layers", 1)]["runs"] == 2 and rows[("layers", 4)]["collapsed"] == 1
    assert rows[("lr", 1e-3)]["mean dev entity F1"] == pytest.approx((0.8 + 0.6) / 2)
    assert [value for parameter, value in rows if parameter == "lr"] == [3e-4, 1e-3, 3e-3]
    # warmup is the default in every run: one value says nothing about which value helps, so it is no row
    assert {parameter for parameter, _ in rows} == {"lr", "layers", "seed"}


def test_a_pretrained_search_shows_what_it_varied_and_its_pick_names_the_encoder(tmp_path):
    """A pretrained encoder's search (sweeps/pretrained-tune.yaml) varies lr and epochs: the tiny_* flags mean
    nothing for it and a constant seed says nothing, so neither is a column, and the pick's command names the
    encoder (without it, train.py would run the tiny encoder)."""
    encoder = "pretrained/some-bert"
    for rid, lr, epochs, f1 in [("a", 1e-4, 2, 0.30), ("b", 1e-4, 3, 0.35), ("c", 3e-4, 2, 0.42), ("d", 3e-4, 3, 0.40)]:
        write_run(tmp_path, rid, {"encoder": encoder, "lr": lr, "epochs": epochs, "seed": 0}, [f1], 0.1, 10.0)
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": [
        {"run_id": rid, "status": "finished", "params": {}} for rid in "abcd"]}))
    rows = marginals(scored_runs(load_local(tmp_path)))
    assert {r["parameter"] for r in rows} == {"lr", "epochs"}
    report = tune_main([str(tmp_path)])
    assert f"- **Best run**: `c`, dev entity F1 0.420, 10 s of training: `python train.py --encoder={encoder} " \
           f"--lr=0.0003 --warmup_ratio={Config.warmup_ratio} --epochs=2`" in report
    assert "tiny" not in report.split("## Every finished run")[1]


def test_report_files_and_cli(tune_folder, capsys):
    report = tune_main([str(tune_folder), "--budget_seconds=50"])
    assert "- **Best run**: `good`, dev entity F1 0.800" in report
    assert "- **Best within 50 s of training**: `best-test`, dev entity F1 0.750" in report
    assert "0.990" not in report and "| never-ran | failed |" in report
    table = report.split("## Every finished run")[1].split("##")[0]
    assert [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ") and "run |" not in line] == [
        "| collapsed", "| good", "| best-test", "| fast"]
    written = sorted(p.name for p in (tune_folder / "report").iterdir())
    assert written == ["tune.md", "tune_marginals.csv", "tune_runs.csv"]
    assert (tune_folder / "report" / "tune.md").read_text(encoding="utf-8") == report
    assert build_tune_report(load_local(tune_folder), "t", tune_folder / "other").count("Best within") == 0
    with pytest.raises(SystemExit):
        tune_main([str(tune_folder), "--budget_seconds=-1"])
    assert "--budget_seconds=-1: expected a positive number" in capsys.readouterr().err


def test_configurations_over_seeds_rank_by_the_mean_and_a_collapsed_seed_ranks_last(tmp_path):
    """The confirm grid's view: seeds of one configuration pooled; one collapsed seed sinks it."""
    write_run(tmp_path, "a0", {"lr": 1e-3, "seed": 0}, [0.70], 0.1, 10.0)
    write_run(tmp_path, "a1", {"lr": 1e-3, "seed": 1}, [0.80], 0.1, 30.0)
    write_run(tmp_path, "b0", {"lr": 3e-3, "seed": 0}, [0.95], 0.1, 10.0)   # the best single run...
    write_run(tmp_path, "b1", {"lr": 3e-3, "seed": 1}, [0.20], 0.1, 10.0, collapsed=True)  # ...collapses with seed 1
    write_run(tmp_path, "c0", {"lr": 5e-4, "seed": 0}, [0.72], 0.1, 10.0)
    write_run(tmp_path, "c1", {"lr": 5e-4, "seed": 1}, [0.74], 0.1, 10.0)
    planned = [{"run_id": rid, "status": "finished", "params": {}} for rid in ("a0", "a1", "b0", "b1", "c0", "c1")]
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": planned}))
    from nlu_collapse.analysis.tune import configurations

    rows = configurations(scored_runs(load_local(tmp_path)))
    assert [r["configuration"].split()[0] for r in rows] == ["--lr=0.001", "--lr=0.0005", "--lr=0.003"]
    assert rows[0]["dev entity F1"] == pytest.approx(0.75) and rows[0]["train s"] == pytest.approx(20.0)
    assert rows[0]["dev entity F1 std"] == pytest.approx(0.0707107, abs=1e-6) and rows[2]["collapsed"] == 1
    report = tune_main([str(tmp_path)])
    assert "## Configurations over seeds" in report and "One seed per configuration" not in report
