"""One logging call that feeds both the local run record and W&B.

W&B is offline-first: `--wandb_mode=auto` is online only when an API key is configured
($WANDB_API_KEY or a netrc entry), else offline, so a run never stops at a login prompt.
`disabled` writes no W&B files; the local record is always written.
"""
from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path

import numpy as np

from telemetry import keys
from telemetry.record import RunRecord

log = logging.getLogger(__name__)

# Keys logged as per-label count vectors: a W&B histogram with one bin per label.
HISTOGRAM_KEYS = keys.HISTOGRAMS


def has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str:
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if has_api_key() else "offline"


class Tracker:
    def __init__(self, record: RunRecord, mode: str, init_kwargs: dict):
        self.record = record
        self.mode = resolve_mode(mode)
        self.run = None
        self._alerted = False
        if self.mode == "disabled":
            return
        import wandb

        self.wandb = wandb
        self.run = wandb.init(mode=self.mode, resume="allow", **init_kwargs)
        self.run.define_metric("epoch")
        for pattern, summary in (("loss/*", "last"), ("grad/norm", "max"), ("health/*", "max")):
            self.run.define_metric(pattern, summary=summary)
        for pattern in ("val/*", "test/*"):
            self.run.define_metric(pattern, step_metric="epoch")
        self.run.define_metric("val/entity_f1", step_metric="epoch", summary="max")
        if self.mode == "offline":
            log.info("W&B offline run in %s: browse with `wandb leet %s`, upload with `wandb sync %s`",
                     self.run.dir, Path(self.run.dir).parent, Path(self.run.dir).parent)

    def log(self, step: int, metrics: dict) -> None:
        self.record.log({"step": step, **metrics})
        if self.run is None:
            return
        payload = {}
        for key, value in metrics.items():
            if key in HISTOGRAM_KEYS:
                counts = np.asarray(value, dtype=np.float64)
                value = self.wandb.Histogram(np_histogram=(counts, np.arange(len(counts) + 1)))
            payload[key] = value
        self.run.log(payload, step=step)

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

    def summary(self, values: dict) -> None:
        self.record.update_summary(values)
        if self.run is not None:
            self.run.summary.update(values)

    def alert(self, title: str, text: str) -> None:
        """Fires once per run (W&B stores it offline and sends it after `wandb sync`)."""
        if self._alerted:
            return
        self._alerted = True
        log.warning("%s: %s", title, text)
        if self.run is not None:
            self.run.alert(title=title, text=text)

    def finish(self, status: str) -> None:
        self.record.update_summary({"status": status})
        self.record.close()
        if self.run is not None:
            self.run.finish(exit_code=0 if status == "finished" else 1)
            self.run = None
