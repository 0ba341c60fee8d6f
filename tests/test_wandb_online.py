"""What a logged-in user's W&B run holds: NaN-safe summaries, credentials found W&B's way, run
identity on reruns and resumes (checked on the offline run files with `wandb leet inspect`)."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from nlu_collapse import train
from nlu_collapse.telemetry.record import read_json
from nlu_collapse.telemetry.tracking import resolve_mode
from nlu_collapse.telemetry.wandb_values import from_wandb, to_wandb

WANDB_CLI = Path(sys.executable).with_name("wandb")
API_KEY = "0123456789abcdef" * 2 + "01234567"  # 40 characters: the format W&B accepts


def test_non_finite_summary_values_become_text_with_a_finite_twin():
    values = {"final/loss/total": math.nan, "test/loss": math.inf, "final/loss/entity": -math.inf,
              "final/loss/intent": 0.5, "test/entity_f1": 0.0, "health/collapsed": True, "steps": 3,
              "health/collapse_reasons": ["non-finite loss"], "perf/steps_per_second": math.nan}
    out = to_wandb(values)
    assert (out["final/loss/total"], out["final/loss/total_is_finite"]) == ("NaN", False)
    assert (out["test/loss"], out["test/loss_is_finite"]) == ("Infinity", False)
    assert (out["final/loss/entity"], out["final/loss/entity_is_finite"]) == ("-Infinity", False)
    assert (out["final/loss/intent"], out["final/loss/intent_is_finite"]) == (0.5, True)  # same keys when healthy
    assert (out["perf/steps_per_second"], out["perf/steps_per_second_is_finite"]) == ("NaN", False)
    assert "test/entity_f1_is_finite" not in out and out["health/collapsed"] is True
    assert "health/collapsed_is_finite" not in out and out["steps"] == 3
    assert all(not (isinstance(v, float) and not math.isfinite(v)) for v in out.values())
    back = from_wandb({**json.loads(json.dumps(out)), "health/problems": {"max": 6}})
    assert math.isnan(back["final/loss/total"]) and back["test/loss"] == math.inf
    assert back["final/loss/entity"] == -math.inf and back["final/loss/intent"] == 0.5
    assert back["health/problems"] == 6 and back["health/collapse_reasons"] == ["non-finite loss"]
    older = {"test/loss": "inf", "val/loss": "-inf"}  # the spelling of runs written before
    assert from_wandb(older) == {"test/loss": math.inf, "val/loss": -math.inf}


@pytest.fixture
def fresh_wandb_settings(monkeypatch, tmp_path):
    """W&B reads its settings file once per process: start and end with a fresh singleton."""
    import wandb

    wandb.teardown()
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "config").mkdir()
    yield tmp_path
    wandb.teardown()


def write_netrc(path: Path, host: str) -> None:
    path.write_text(f"machine {host}\n  login user\n  password {API_KEY}\n", encoding="utf-8")
    path.chmod(0o600)


def test_a_login_to_another_host_is_found_the_way_wandb_finds_it(fresh_wandb_settings, monkeypatch):
    """`wandb login --host URL` saves the host in W&B's settings file and the key in netrc for that
    host; a netrc named by $NETRC is honoured too. Both mean online, not a silent offline run."""
    tmp_path = fresh_wandb_settings
    (tmp_path / "config" / "settings").write_text("[default]\nbase_url = https://wandb.example.com\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "my-netrc"))
    write_netrc(tmp_path / "my-netrc", "wandb.example.com")
    assert resolve_mode("auto") == "online"
    write_netrc(tmp_path / "my-netrc", "api.wandb.ai")  # a key for another host does not count
    assert resolve_mode("auto") == "offline"


def test_a_malformed_api_key_is_a_clear_error_not_a_silent_offline_run(fresh_wandb_settings, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "not a key")
    with pytest.raises(ValueError, match="W&B credentials"):
        resolve_mode("auto")


def wandb_runs(output_dir: Path) -> list[dict]:
    """What `wandb leet inspect --summary --json` shows for each offline run file (one per attempt),
    plus the run record's resume flag."""
    runs = []
    for path in sorted(output_dir.glob("wandb/offline-run-*/run-*.wandb")):
        command = [str(WANDB_CLI), "leet", "inspect", "--summary", "--json", str(path)]
        summary = json.loads(subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout)
        records = subprocess.run(command[:3] + ["--json", str(path)], capture_output=True, text=True, check=True,
                                 timeout=120).stdout.splitlines()
        summary["resume"] = next(json.loads(r)["run"].get("resume", False) for r in records if '"type":"run"' in r)
        runs.append(summary)
    return runs


def test_crash_resume_and_fresh_rerun_map_to_the_right_wandb_runs(tmp_path, tiny_data, crash_in_second_epoch):
    flags = [f"--data={tiny_data}", f"--output_dir={tmp_path}", "--wandb_mode=offline", "--epochs=2",
             "--batch_size=64", "--threads=1", "--task_grad_every=0", "--run_id=same"]
    with pytest.raises(KeyboardInterrupt):
        train.main(flags)
    crash_in_second_epoch.restore()
    assert read_json(tmp_path / "same" / "summary.json")["wandb_id"] == "same"
    crashed, = wandb_runs(tmp_path)
    assert crashed["run_id"] == "same" and crashed["summary"]["status"] == "interrupted"  # Ctrl-C
    assert crashed["state"] != "finished" and crashed["resume"] is False  # fresh: never attaches

    train.main([f"--resume={tmp_path / 'same'}"])
    first, resumed = wandb_runs(tmp_path)
    assert resumed["run_id"] == "same" and resumed["resume"] is True  # the same W&B run, resume="must"
    assert resumed["state"] == "finished" and resumed["summary"]["status"] == "finished"
    assert resumed["summary"]["final/loss/total_is_finite"] is True  # a healthy run has the twin too

    train.main(flags)  # the same run id again, without --resume: a fresh run under a new W&B id
    rerun = [run for run in wandb_runs(tmp_path) if run["run_id"] != "same"]
    assert len(rerun) == 1 and rerun[0]["run_id"].startswith("same-") and rerun[0]["resume"] is False
    assert read_json(tmp_path / "same" / "summary.json")["wandb_id"] == rerun[0]["run_id"]

    # the upload command the README and the runner print works on this folder (dry run: no account)
    synced = subprocess.run([str(WANDB_CLI), "sync", "--dry-run", str(tmp_path / "wandb")], capture_output=True,
                            text=True, timeout=120)
    assert synced.returncode == 0 and "Would sync 3 run(s)" in synced.stdout + synced.stderr
