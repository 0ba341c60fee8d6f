"""One logging call that feeds both the local run record and W&B.

W&B is offline-first: `--wandb_mode=auto` is online only when W&B itself finds credentials
(the way `wandb.init` looks: $WANDB_API_KEY, $WANDB_IDENTITY_TOKEN_FILE, the netrc file named by
$NETRC or ~/.netrc, for the host `wandb login --host` saved), else offline, so a run never stops
at a login prompt. `disabled` writes no W&B files; the local record is always written.

What W&B holds for a run, and why:
- run identity: a fresh run never attaches to an existing W&B run (`resume="never"`; a rerun of a
  run id whose earlier attempt is in `previous/` gets a new W&B id); `--resume` must find its run
  (`resume="must"`, the W&B id saved in the local summary). Under `wandb agent` the agent owns the
  project, entity and run id: they are not passed (W&B would ignore them with a warning).
- every history row carries its own epoch; the test row's axis is `best/epoch` (the checkpoint it
  was measured with), so it cannot overwrite the last validation row's `epoch`.
- the summary is NaN-safe (`telemetry.wandb_values`), `status` is updated at the end, and the
  sweep metric's summary is a plain number (the best validation value), which sweeps sort on.
- label names: in the config (`labels`), and per epoch a table of predicted (and gold) counts per
  label name, summed over the epoch's logged steps.
"""
from __future__ import annotations

import logging
import math
import os
import uuid
from pathlib import Path

import numpy as np

from nlu_collapse.config import (
    RERUN_SUFFIX,
    WANDB_NAME_MAX,
    WANDB_RUN_ID_FORBIDDEN,
    WANDB_TAG_MAX,
)
from nlu_collapse.telemetry import keys
from nlu_collapse.telemetry.artifacts import artifact_name, model_artifact, model_artifact_name
from nlu_collapse.telemetry.record import RunRecord
from nlu_collapse.telemetry.wandb_values import to_wandb

log = logging.getLogger(__name__)

# Keys logged as per-label count vectors: a W&B histogram with one bin per label.
HISTOGRAM_KEYS = keys.HISTOGRAMS
# The sweeps' metric; its W&B summary is the best value of the run (BEST_KEY), a plain number.
SWEEP_METRIC, BEST_KEY = keys.split_metric("dev", keys.ENTITY_F1), keys.BEST_VAL_ENTITY_F1
# Per-label tables logged with each validation row: table key -> (label list in config, count keys).
LABEL_TABLES = {keys.label_table("entity"): ("tags", (keys.pred_counts("entity"), keys.gold_counts("entity"))),
                keys.label_table("intent"): ("intents", (keys.pred_counts("intent"), keys.gold_counts("intent"))),
                keys.label_table("command"): ("commands", (keys.pred_counts("command"), keys.gold_counts("command")))}


def find_credentials():
    """W&B's own credential lookup for the configured host, without prompting (None if absent).
    A malformed key is an error here rather than a silent offline run."""
    from wandb.errors import AuthenticationError
    from wandb.sdk import wandb_setup
    from wandb.sdk.lib import wbauth

    host = wandb_setup.singleton().settings.base_url  # $WANDB_BASE_URL or `wandb login --host`
    try:
        return wbauth.authenticate_session(host=host, source="train.py", prompt=False, update_session=False)
    except AuthenticationError as err:
        raise ValueError(f"W&B credentials for {host}: {err}") from None


def require_credentials(what: str) -> None:
    """A command that needs W&B's servers stops here, before any work, when W&B would find no login: W&B
    itself would fail later with a traceback, or, at a terminal, wait at a login prompt."""
    if find_credentials() is None:
        from wandb.sdk import wandb_setup

        host = wandb_setup.singleton().settings.base_url
        netrc = os.environ.get("NETRC") or "~/.netrc"
        raise ValueError(f"{what}: no W&B login for {host} (no $WANDB_API_KEY, no entry for it in {netrc}): "
                         "run `wandb login` (or set WANDB_API_KEY) first")


def resolve_mode(mode: str) -> str:
    """auto -> online or offline (see the module docstring); online without a login is an error here."""
    source = "--wandb_mode=online"
    if mode == "auto":
        env = os.environ.get("WANDB_MODE", "").lower()
        if env not in ("online", "offline", "disabled", "dryrun"):
            return "online" if find_credentials() is not None else "offline"
        mode, source = ("offline" if env == "dryrun" else env), "$WANDB_MODE=online"
    if mode == "online":
        require_credentials(source)
    return mode


def under_agent() -> bool:
    """True inside a run started by `wandb agent` (it sets WANDB_SWEEP_ID)."""
    return bool(os.environ.get("WANDB_SWEEP_ID"))


def wandb_identity(record: RunRecord, run_id: str, resuming: bool) -> tuple[str, str]:
    """(W&B run id, resume mode) outside an agent; see the module docstring."""
    if resuming:
        saved = record.summary.get(keys.WANDB_ID, run_id)
        if valid_wandb_id(saved):
            return saved, "must"
        fresh = rerun_id(run_id)
        log.warning("%s: %s=%r is not a W&B run id (a damaged record?); the resumed run goes on in a new W&B "
                    "run %s (the local record is unchanged)", record.folder.summary, keys.WANDB_ID, saved, fresh)
        return fresh, "never"
    if record.folder.earlier_attempts():  # a fresh rerun: the earlier attempt keeps its W&B run
        return rerun_id(run_id), "never"
    return run_id, "never"


def rerun_id(run_id: str) -> str:
    """A new W&B id for another W&B run of `run_id` (as long as config.RERUN_SUFFIX allows for)."""
    return f"{run_id}-{uuid.uuid4().hex[:len(RERUN_SUFFIX) - 1]}"


def valid_wandb_id(value) -> bool:
    """A W&B run id as wandb.init accepts it (config.WANDB_RUN_ID_FORBIDDEN) and this repo can name artifacts after."""
    return (isinstance(value, str) and bool(value) and value == value.strip() and len(value) <= WANDB_NAME_MAX
            and not set(value) & set(WANDB_RUN_ID_FORBIDDEN))


class Tracker:
    def __init__(self, record: RunRecord, mode: str, init_kwargs: dict, resuming: bool = False):
        self.record = record
        self.mode = resolve_mode(mode)
        self.run = None
        self._alerted = False
        self._pending_step = None  # the W&B history row still open (rows at one step merge)
        labels = init_kwargs.get("config", {}).get("labels") or {}
        self._label_names = {key: labels.get(field) for key, (field, _) in LABEL_TABLES.items()}
        self._epoch_counts: dict[str, np.ndarray] = {}
        if self.mode == "disabled":
            return
        import wandb

        self.wandb = wandb
        kwargs = dict(init_kwargs)
        # W&B refuses a tag longer than WANDB_TAG_MAX (a data folder's name in `data=<name>` can be)
        kwargs["tags"] = [str(tag)[:WANDB_TAG_MAX] for tag in kwargs.get("tags") or []] or None
        if under_agent():
            for key in ("project", "entity", "id"):
                kwargs.pop(key, None)
        else:
            kwargs["id"], kwargs["resume"] = wandb_identity(record, kwargs["id"], resuming)
        self.run = wandb.init(mode=self.mode, **kwargs)
        record.update_summary({keys.WANDB_ID: self.run.id})  # local only: what --resume attaches to
        self.run.define_metric(keys.EPOCH)
        self.run.define_metric(keys.BEST_EPOCH)
        for pattern, summary in ((keys.everything_under("loss"), "last"), (keys.GRAD_NORM, "max"),
                                 (keys.everything_under("health"), "max")):
            self.run.define_metric(pattern, summary=summary)
        self.run.define_metric(keys.everything_under(keys.SPLIT_NAMESPACE["dev"]), step_metric=keys.EPOCH)
        self.run.define_metric(keys.everything_under(keys.SPLIT_NAMESPACE["test"]), step_metric=keys.BEST_EPOCH)
        if self.mode == "offline":
            folder = Path(self.run.dir).parent
            log.info("W&B offline run in %s: browse with `wandb leet %s`, upload with `wandb sync %s`",
                     folder, folder, folder)

    def log(self, step: int, metrics: dict) -> None:
        self.record.log({"step": step, **metrics})
        if self.run is None:
            return
        payload = {}
        for key, value in metrics.items():
            if key in HISTOGRAM_KEYS:
                counts = np.asarray(value, dtype=np.float64)
                self._epoch_counts[key] = self._epoch_counts.get(key, 0) + counts
                value = self.wandb.Histogram(np_histogram=(counts, np.arange(len(counts) + 1)))
            payload[key] = value
        if SWEEP_METRIC in metrics:  # a validation row closes an epoch
            payload.update(self._label_tables())
        self.run.log(payload, step=step)
        self._pending_step = step

    def _label_tables(self) -> dict:
        """Predicted (and gold) counts per label name over the epoch's logged steps; then reset."""
        tables = {}
        for table_key, (_, count_keys) in LABEL_TABLES.items():
            names = self._label_names[table_key]
            if not names or count_keys[0] not in self._epoch_counts:
                continue
            columns = [self._epoch_counts[key] for key in count_keys]
            rows = [[name, *(int(c[i]) for c in columns)] for i, name in enumerate(names)]
            tables[table_key] = self.wandb.Table(columns=["label", *(k.rsplit("/", 1)[1] for k in count_keys)],
                                                 data=rows)
        self._epoch_counts = {}
        return tables

    def table(self, name: str, columns: list[str], rows: list[list]) -> None:
        self.record.write_table(name, columns, rows)
        if self.run is not None:
            self.run.log({name: self.wandb.Table(columns=columns, data=rows)}, commit=False)

    def confusion_matrix(self, name: str, gold: list[str], pred: list[str], class_names: list[str]) -> None:
        from sklearn.metrics import confusion_matrix

        labels = sorted(set(class_names) | set(gold) | set(pred), key=lambda n: (n not in class_names, n))
        matrix = confusion_matrix(gold, pred, labels=labels)
        self.record.write_table(name, ["gold\\pred", *labels],
                                [[label, *map(int, row)] for label, row in zip(labels, matrix)])
        if self.run is not None:
            index = {label: i for i, label in enumerate(labels)}
            plot = self.wandb.plot.confusion_matrix(y_true=[index[g] for g in gold], preds=[index[p] for p in pred],
                                                    class_names=labels, title=name)
            self.run.log({name: plot}, commit=False)

    def carried(self, title: str, from_step: int, to_step: int, values: dict[str, float]) -> None:
        """A stopped run's last state carried to its planned end, as one labelled W&B chart (key
        `keys.CARRIED_CHART`): two points per finite value, never logged as history steps. The local record
        keeps the same numbers in its summary (`dead/*`)."""
        finite = {key: value for key, value in values.items() if math.isfinite(value)}
        if self.run is None or not finite:
            return
        chart = self.wandb.plot.line_series(xs=[from_step, to_step], ys=[[v, v] for v in finite.values()],
                                            keys=list(finite), title=title, xname="step")
        self.run.log({keys.CARRIED_CHART: chart}, commit=False)

    def summary(self, values: dict) -> None:
        self.record.update_summary(values)
        if self.run is None:
            return
        if self._pending_step is not None:
            # Close the open history row first: committing it later would write its values
            # (e.g. the last val/entity_f1, a NaN test/loss) over the summary written here.
            self.run.log({}, step=self._pending_step, commit=True)
            self._pending_step = None
        values = dict(values)
        if BEST_KEY in values:
            values[SWEEP_METRIC] = values[BEST_KEY]
        self.run.summary.update(to_wandb(values))

    def log_dataset(self, dataset, data: str) -> None:
        """The dataset the run trained on (`--data`) as a W&B artifact with its card. W&B keeps one
        version per content, so every run of a sweep on the same data points at the same version.
        Online it is recorded as the run's input; offline W&B cannot `use_artifact`, so it is logged
        (and uploaded by `wandb sync`)."""
        if self.run is None:
            return
        from nlu_collapse.data import EMBEDDED, materialize_embedded
        from nlu_collapse.data.card import card

        text = card(dataset)
        artifact = self.wandb.Artifact(artifact_name("dataset", dataset.name), type="dataset", description=text,
                                       metadata={"format": dataset.data_format,
                                                 "sizes": {s: len(e) for s, e in dataset.splits.items()},
                                                 "fingerprint": dataset.fingerprint})
        path = materialize_embedded(data) if data in EMBEDDED else Path(data)
        if path.is_dir():
            artifact.add_dir(str(path), policy="immutable")
        else:
            artifact.add_file(str(path), policy="immutable")
        with artifact.new_file("card.md", encoding="utf-8") as handle:
            handle.write(text + "\n")
        # its version, by content: every run on the same bytes points at the same alias
        alias = [f"sha256-{dataset.fingerprint['sha256'][:12]}"] if dataset.fingerprint else []
        if self.mode == "online":
            self.run.use_artifact(artifact, aliases=alias)
        else:
            self.run.log_artifact(artifact, aliases=alias)

    def log_model(self, metadata: dict):
        """`--log_model`: the run folder as predict.py reads it (telemetry/artifacts.py), aliased `best`;
        returns the logged artifact (None without W&B)."""
        if self.run is None:
            return None
        artifact = model_artifact(self.wandb, self.record.folder, model_artifact_name(self.run.id), metadata)
        return self.run.log_artifact(artifact, aliases=["best"])

    def alert(self, title: str, text: str, error: bool = False) -> None:
        """Fires once per run, at level ERROR or WARN (W&B stores it offline and sends it after `wandb sync`)."""
        if self._alerted:
            return
        self._alerted = True
        log.log(logging.ERROR if error else logging.WARNING, "%s: %s", title, text)
        if self.run is not None:
            level = self.wandb.AlertLevel.ERROR if error else self.wandb.AlertLevel.WARN
            self.run.alert(title=title, text=text, level=level)

    def finish(self, status: str, model_metadata: dict | None = None) -> None:
        """Write the final status; with `model_metadata`, log the model artifact after it (its summary.json
        then says finished); close the record and the W&B run."""
        self.summary({keys.STATUS: status})
        if model_metadata is not None:
            self.log_model(model_metadata)
        self.record.close()
        if self.run is not None:
            self.run.finish(exit_code=0 if status == "finished" else 1)
            self.run = None

