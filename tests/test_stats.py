"""The shared statistics: medians that skip missing values, the bootstrap interval and verdicts."""

from __future__ import annotations

import pytest

from playground.engine import stats


def test_median_and_mean_skip_missing_values() -> None:
    assert stats.median([3.0, None, 1.0, 2.0]) == 2.0 and stats.median([None]) is None
    assert stats.median(iter([1.0, 2.0])) == 1.5
    assert stats.mean([1.0, None, 2.0]) == 1.5 and stats.mean([]) is None


def test_interval_holds_the_median_widens_with_spread_and_repeats() -> None:
    tight = [0.99, 1.0, 1.01, 1.0, 0.995, 1.005, 1.0, 0.998]
    wide = [0.6, 1.4, 0.8, 1.2, 1.0, 0.7, 1.3, 0.9]
    low, high = stats.median_interval(tight)
    assert low <= stats.median(tight) <= high and high - low < 0.02
    wide_low, wide_high = stats.median_interval(wide)
    assert wide_high - wide_low > 0.2
    assert stats.median_interval(tight) == (low, high)  # a fixed seed: same records, same interval
    assert stats.median_interval([1.0, 2.0]) is None and stats.median_interval([1.0, None, 2.0]) is None


@pytest.mark.parametrize(("interval", "verdict"), [((0.96, 1.02), "met"), ((0.90, 0.94), "missed"),
                                                    ((0.93, 1.01), "cannot tell"), (None, "too few rounds")])
def test_verdict_needs_the_whole_interval_on_one_side(interval, verdict) -> None:
    assert stats.verdict(interval, 0.95) == verdict


def test_fmt_separates_thousands_and_marks_missing() -> None:
    assert stats.fmt(1234.56) == "1,234.6" and stats.fmt(None) == "-" and stats.fmt(0.0123, 1, 1000) == "12.3"
