"""The layout of a run's folder and of a sweep's folder: every path, checkpoint file and checkpoint
key that two modules must agree on, spelled once.

    <output_dir>/<run_id>/                 RunFolder
        config.json                        resolved config, label names, dataset, identity
        history.jsonl                      one line per logged step (the W&B keys)
        summary.json                       final metrics, verdict, `status`
        tables/<name>.json                 evaluation tables
        forensics.jsonl                    one line per replayed non-finite step
        tokenizer/, encoder/config.json    what predict.py rebuilds the model from; encoder/ also holds the
                                           best-on-dev encoder and its tokenizer (save_pretrained, at the test)
        checkpoints/{best,last}.pt           each with its predecessor {best,last}.prev.pt
        checkpoints/ring/step-<8 digits>.pt  the recoverable history (model/ring.py): step 0 (the initial
                                           state) and the newest --ring_keep of every --ring_every steps
        fixes.json, fixes.txt              analysis/fixes.py's table: which single changes prevent the collapse
        previous/                          earlier attempts of the same run id
        .lock                              held by the process writing the record

    <out>/<sweep>[-<data>]/                SweepFolder
        sweep.json                         the plan: every run and its status
        runs/<run_id>/                     RunFolder of each run; runs/wandb/ W&B's offline runs
        logs/<run_id>.log                  each run's console output
        .runner.lock                       held by the runner

This module reads and names; it imports no torch, so the sweep runner can triage checkpoints by
their checksums without loading them.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from nlu_collapse.safeio import read_json, verify

# Checkpoint dictionary keys (model/checkpoint.py writes them, train.py and model/loading.py read them).
CK_MODEL = "model"
CK_OPTIMIZER = "optimizer"
CK_SCHEDULER = "scheduler"
CK_SCALER = "scaler"
CK_RNG = "rng"
CK_TRAIN_STATE = "train_state"
CK_CONFIG = "config"
CK_RUN_ID = "run_id"
CK_EPOCH = "epoch"
TS_STEP = "step"  # inside CK_TRAIN_STATE: the optimizer steps done (train.TrainState.step)

RUN_LOCK, RUNNER_LOCK = ".lock", ".runner.lock"  # flock files: the run's writer, the sweep's runner
BEST, LAST = "best", "last"  # the checkpoints a run keeps: best on dev, and the last (resumable) one
CHECKPOINTS = (BEST, LAST)
RING_PREFIX = "step-"  # a ring checkpoint's name: step-<the optimizer steps done, 8 digits>.pt


class RunFolder:
    """Where each file of one run lives (`RunFolder(path).summary`, ...)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def history(self) -> Path:
        return self.path / "history.jsonl"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def tables(self) -> Path:
        return self.path / "tables"

    def table(self, name: str) -> Path:
        return self.tables / f"{name.replace('/', '_')}.json"

    @property
    def forensics(self) -> Path:
        return self.path / "forensics.jsonl"

    @property
    def tokenizer(self) -> Path:
        return self.path / "tokenizer"

    @property
    def encoder(self) -> Path:
        """The encoder in Hugging Face format: its config.json from the start, its best-on-dev weights and
        tokenizer from the test on (`AutoModel.from_pretrained` loads it)."""
        return self.path / "encoder"

    @property
    def encoder_config(self) -> Path:
        """Hugging Face's config.json of the encoder, written by `save_pretrained`."""
        return self.encoder / "config.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, name: str) -> Path:
        return self.checkpoints / f"{name}.pt"

    @property
    def best(self) -> Path:
        return self.checkpoint(BEST)

    @property
    def ring(self) -> Path:
        """The ring of recent states a collapse is replayed from (model/ring.py)."""
        return self.checkpoints / "ring"

    def ring_checkpoint(self, step: int) -> Path:
        """The state after `step` optimizer steps (step 0: the initial state)."""
        return self.ring / f"{RING_PREFIX}{step:08d}.pt"

    def ring_steps(self) -> dict[int, Path]:
        """Every ring checkpoint present, by step, oldest first (a name that is not one of ours is ignored)."""
        found = {}
        for path in self.ring.glob(f"{RING_PREFIX}*.pt") if self.ring.is_dir() else ():
            digits = path.stem[len(RING_PREFIX):]
            if digits.isdigit() and path == self.ring_checkpoint(int(digits)):
                found[int(digits)] = path
        return dict(sorted(found.items()))

    @property
    def fixes(self) -> Path:
        """analysis/fixes.py's table, machine-readable."""
        return self.path / "fixes.json"

    @property
    def fixes_text(self) -> Path:
        """analysis/fixes.py's table as it printed it."""
        return self.path / "fixes.txt"

    @property
    def last(self) -> Path:
        return self.checkpoint(LAST)

    @property
    def best_previous(self) -> Path:
        """The intact predecessor of best.pt (what the test falls back to when best.pt is lost)."""
        return previous(self.best)

    @property
    def last_previous(self) -> Path:
        """The intact predecessor of last.pt, kept so a kill or damage costs at most one epoch."""
        return previous(self.last)

    @property
    def previous(self) -> Path:
        """Earlier attempts of this run id, each whole in previous/<n>/ (1 the first)."""
        return self.path / "previous"

    def earlier_attempts(self) -> list[RunFolder]:
        """The kept earlier attempts, oldest first."""
        numbered = [p for p in self.previous.iterdir() if p.is_dir() and p.name.isdigit()] \
            if self.previous.is_dir() else []
        return [RunFolder(p) for p in sorted(numbered, key=lambda p: int(p.name))]

    def has_record(self) -> bool:
        """Anything of an attempt is here (a config, history, summary or checkpoint)."""
        return any(p.exists() for p in (self.config, self.history, self.summary, self.checkpoints))

    def is_run(self) -> bool:
        return self.config.is_file()

    def read_config(self) -> dict:
        """config.json; a ValueError naming the file when it is damaged or absent."""
        if not self.config.is_file():
            raise ValueError(f"{self.path}: not a run directory (no config.json; expected one written by train.py)")
        return read_json(self.config, expect=dict)

    def read_summary(self) -> dict:
        """summary.json: {} when there is none yet; a ValueError naming the file when damaged.
        The one reader of a run's status, for train.py, the sweep runner, analysis and predict."""
        return read_json(self.summary, expect=dict, measured=True) if self.summary.exists() else {}

    def identity(self) -> dict:
        """config.json's `identity` ({} for a record from before identities, or an unreadable one)."""
        try:
            identity = self.read_config().get("identity")
        except ValueError:
            return {}
        return identity if isinstance(identity, dict) else {}

    def status(self, default: str = "pending") -> str:
        """The summary's `status`, or `default` when there is none or it cannot be read."""
        try:
            status = self.read_summary().get("status", default)
        except ValueError:  # damaged: train.py keeps a backup and rewrites it when the run goes on
            return default
        return status if isinstance(status, str) else default

    # --- resume triage (checksums only; model/checkpoint.py loads what it picks)
    def resume_candidates(self) -> list[Path]:
        """The checkpoints a resume may start from, newest first."""
        return [self.last, self.last_previous]

    def can_resume(self) -> bool:
        """A resumable checkpoint exists (intact or not)."""
        return any(path.exists() for path in self.resume_candidates())

    def resume_problems(self) -> tuple[Path | None, list[str]]:
        """(the newest intact resumable checkpoint, or None; why each one before it was refused).
        A best.pt that is lost or damaged, with no intact best.prev.pt, refuses the resume at once: the
        first validation writes best.pt before any last.pt, the test needs it, and training the
        remaining epochs first would only fail at the end."""
        problems, intact = [], None
        for candidate in self.resume_candidates():
            problem = verify(candidate)
            if problem is None:
                intact = candidate
                break
            problems.append(problem)
        lost_best = verify(self.best)
        if lost_best and verify(self.best_previous) and self.can_resume():
            return None, problems + [f"{lost_best}, and {verify(self.best_previous)} (the test needs the best-on-dev "
                                     "checkpoint, written at the first validation)"]
        return intact, problems

    def resume_problem(self) -> str | None:
        """Why this run cannot resume, or None (no checkpoint at all, or an intact one)."""
        if not self.can_resume():
            return None
        intact, problems = self.resume_problems()
        if intact is not None:
            return None
        return "cannot resume: " + "; ".join(problems)


def previous(path: Path) -> Path:
    """`<name>.prev.pt` beside `<name>.pt`."""
    path = Path(path)
    return path.with_name(path.stem + ".prev" + path.suffix)


class SweepFolder:
    """Where each file of one sweep lives (what sweeps/local.py writes and analysis/ reads)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def manifest(self) -> Path:
        return self.path / "sweep.json"

    @property
    def runs(self) -> Path:
        return self.path / "runs"

    def run(self, run_id: str) -> RunFolder:
        return RunFolder(self.runs / run_id)

    @property
    def wandb(self) -> Path:
        return self.runs / "wandb"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def log(self, run_id: str) -> Path:
        return self.logs / f"{run_id}.log"

    @property
    def report(self) -> Path:
        return self.path / "report"

    def recorded_runs(self) -> dict[str, RunFolder]:
        """Every run folder under runs/ that holds a record, by folder name."""
        return {path.parent.name: RunFolder(path.parent) for path in sorted(self.runs.glob("*/config.json"))}


# --- identity: everything that can change a run's numbers
def identity_key(config: dict, data_sha256: str) -> str:
    """One hash of a run's identity: its configuration (config.identity_config: every flag that can
    change a number, defaults included) and the fingerprint of the data it reads. Two runs with the
    same key are the same run (a copy, a restart), never two seeds."""
    payload = json.dumps({"config": config, "data": data_sha256}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def code_version() -> dict:
    """The code a run was made with: the git commit and whether the checkout had uncommitted changes,
    or the installed package's version outside a git checkout."""
    root = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return {"git_commit": commit, "git_dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return {"package_version": version("nlu-collapse")}
        except PackageNotFoundError:
            return {"package_version": None}
