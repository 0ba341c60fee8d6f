"""Small, explicit statistics over seeds: mean +- sample std, and paired t-intervals."""
from __future__ import annotations

import math
import statistics

from scipy import stats as scipy_stats


def mean_std(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample std, n). A NaN anywhere makes the mean NaN: a NaN loss is reported, not dropped."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    if any(math.isnan(v) for v in values):
        return math.nan, math.nan, n
    return statistics.fmean(values), statistics.stdev(values) if n > 1 else math.nan, n


def paired_interval(deltas: list[float], confidence: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of paired differences: mean +- t_{(1+c)/2, n-1} * sd / sqrt(n)."""
    mean, sd, n = mean_std(deltas)
    if n < 2 or math.isnan(mean):
        return mean, math.nan, math.nan, n
    half = scipy_stats.t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half, n


def fmt_mean_std(mean: float, sd: float, n: int, digits: int = 3) -> str:
    if n == 0:
        return "-"
    if math.isnan(mean):
        return "NaN"
    return f"{mean:.{digits}f}" if n == 1 or math.isnan(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def fmt_interval(mean: float, low: float, high: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "NaN"
    if math.isnan(low):
        return f"{mean:+.{digits}f}"
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"
