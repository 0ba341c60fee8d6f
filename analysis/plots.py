"""Collapse curves: per cell, over steps, with the write-up's healthy bands shaded.

Panels: loss components (non-finite steps marked in red along the top), gradient norm before
clipping, pred_non_O, and the largest intent share of the batch. Every seed is one line. A run that
stopped dead (train.py --stop_dead_runs) has no steps after its death: its last state (`dead/*`,
what every later step would log) is drawn as a dotted line to its planned last step over a hatched
span labelled with the reason, never as logged steps.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nlu_collapse.analysis.records import RecordedRun  # noqa: E402
from nlu_collapse.telemetry import keys  # noqa: E402
from nlu_collapse.telemetry.health import WRITEUP_INTENT_MAX_SHARE, WRITEUP_PRED_NON_O_BAND  # noqa: E402

PANELS = [  # (title, keys, the write-up's healthy band, log scale)
    ("loss (total solid, entity dashed, intent dotted)", [keys.LOSS_TOTAL, keys.loss("entity"), keys.loss("intent")],
     (0.5, 2.0), True),
    ("grad norm (before clipping)", [keys.GRAD_NORM], (0.1, 2.0), True),
    ("pred_non_O (train batch)", [keys.entity_dist(keys.PRED_NON_O)], WRITEUP_PRED_NON_O_BAND, False),
    ("largest intent share (train batch)", [keys.max_share("intent")], (0.05, WRITEUP_INTENT_MAX_SHARE), False),
]
STYLES = ["-", "--", ":"]


def _series(run: RecordedRun, key: str) -> tuple[list[int], list[float]]:
    rows = [row for row in run.history if key in row and row.get("step") is not None]
    return [row["step"] for row in rows], [float(row[key]) for row in rows]


def _carried(ax, run: RecordedRun, panel_keys: list[str], color: str, log: bool) -> int:
    """A dead run's last state to its planned end (see the module docstring); returns that end step."""
    dead_at, end = run.summary.get(keys.DEAD_AT_STEP), run.summary.get(keys.PLANNED_STEPS)
    if not run.summary.get(keys.STOPPED_DEAD) or dead_at is None or not end or end <= dead_at:
        return 0
    ax.axvspan(dead_at, end, facecolor="none", edgecolor=color, hatch="//", alpha=0.25, lw=0)
    ax.text(dead_at, 0.5, f" stopped: {run.summary.get(keys.DEAD_REASON, 'dead')}", transform=ax.get_xaxis_transform(),
            fontsize=6, color=color, rotation=90, va="center")
    for style, key in zip(STYLES, panel_keys):
        value = run.summary.get(keys.dead_state(key))
        if isinstance(value, (int, float)) and math.isfinite(value) and (value > 0 or not log):
            ax.plot([dead_at, end], [value, value], style, color=color, lw=1, alpha=0.6, dashes=(1, 2))
    return end


def _draw_panel(ax, runs: list[RecordedRun], keys: list[str], band, log: bool) -> None:
    ax.axhspan(*band, color="tab:green", alpha=0.12, lw=0)
    last_step, marked = 1, False
    for color_index, run in enumerate(runs):
        color = f"C{color_index % 10}"
        last_step = max(last_step, _carried(ax, run, keys, color, log))
        for style, key in zip(STYLES, keys):
            steps, values = _series(run, key)
            finite = [(s, v) for s, v in zip(steps, values) if math.isfinite(v) and (v > 0 or not log)]
            if finite:
                ax.plot(*zip(*finite), style, color=color, lw=1, label=f"seed {run.seed}" if style == "-" else None)
            last_step = max([last_step, *steps])
            bad = [s for s, v in zip(steps, values) if not math.isfinite(v)]
            if bad:  # NaN / inf cannot be drawn as values: mark the steps along the top edge
                ax.scatter(bad, [0.97] * len(bad), marker="|", color="red", s=30,
                           transform=ax.get_xaxis_transform(), label=None if marked else "non-finite")
                marked = True
    ax.set_xlim(0, last_step)  # a blended-transform scatter does not extend the x range by itself
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)


def overview_figure(groups: dict[str, list[RecordedRun]], path: Path, title: str) -> Path:
    names = sorted(groups)
    fig, axes = plt.subplots(len(names), len(PANELS), figsize=(4 * len(PANELS), 2.4 * len(names)),
                             squeeze=False, sharex=True)
    for row, name in enumerate(names):
        for col, (panel_title, keys, band, log) in enumerate(PANELS):
            ax = axes[row][col]
            _draw_panel(ax, groups[name], keys, band, log)
            if row == 0:
                ax.set_title(panel_title, fontsize=9)
            if col == 0:
                ax.set_ylabel(name.replace(" ", "\n"), fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("step")
    axes[0][0].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{title}: green = the write-up's healthy band, red ticks = non-finite steps", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def cell_figures(groups: dict[str, list[RecordedRun]], folder: Path, suffix: str = "") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, runs in groups.items():
        fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.2), squeeze=False)
        for ax, (panel_title, keys, band, log) in zip(axes[0], PANELS):
            _draw_panel(ax, runs, keys, band, log)
            ax.set_title(panel_title, fontsize=9)
            ax.set_xlabel("step")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(name, fontsize=11)
        fig.tight_layout()
        path = folder / f"cell_{re.sub(r'[^A-Za-z0-9.=_-]+', '_', name)}{suffix}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths
