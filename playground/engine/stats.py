"""The few statistics every summary uses (CLI, matrix, ranking, sweep, fidelity, answer quality),
defined once: a median that skips missing values, a bootstrap interval for it, and the number
format of the tables.

Why a bootstrap: the fidelity benchmark's ratios come from a handful of rounds on a machine whose
speed swings more than the effect being judged, so a median alone cannot say whether 0.95 is met.
A percentile bootstrap over the rounds needs no assumption about how the swings are distributed,
and a fixed seed makes the same records give the same interval.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterable

BOOTSTRAP_RESAMPLES = 4000
BOOTSTRAP_SEED = 20261203


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are present; None when there are none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def mean(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are present; None when there are none."""
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def median_interval(values: Iterable[float | None], confidence: float = 0.95,
                    resamples: int = BOOTSTRAP_RESAMPLES,
                    seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """A percentile-bootstrap ``confidence`` interval of the median (None below 3 values: an
    interval from two would only restate them)."""
    present = [v for v in values if v is not None]
    if len(present) < 3:
        return None
    rng = random.Random(seed)
    size = len(present)
    medians = sorted(statistics.median(rng.choices(present, k=size)) for _ in range(resamples))
    tail = (1.0 - confidence) / 2.0
    low = medians[int(tail * (resamples - 1))]
    high = medians[round((1.0 - tail) * (resamples - 1))]
    return low, high


def verdict(interval: tuple[float, float] | None, target: float) -> str:
    """Whether the ratio's interval shows ``target`` is met, missed, or cannot tell."""
    if interval is None:
        return "too few rounds"
    low, high = interval
    if low >= target:
        return "met"
    if high < target:
        return "missed"
    return "cannot tell"


def fmt(value: float | None, digits: int = 1, scale: float = 1.0) -> str:
    """A table cell: thousands separated, ``-`` for a missing value."""
    return "-" if value is None else f"{value * scale:,.{digits}f}"
