"""The engine's live figures (tok/s over the last second, provisional TTFT) and CPU shares (fast)."""

from __future__ import annotations

import pytest

from playground.engine.live_rates import LiveRates, live_rate, rate_series
from playground.monitor.shares import machine_share


def test_rate_is_over_the_last_second_of_engine_time() -> None:
    points = [(0.5, 1), (1.0, 11), (1.5, 21), (2.5, 31)]
    series = rate_series(points)
    assert series[0] == (1.0, pytest.approx(20.0))  # 10 tokens in 0.5 s
    assert series[-1] == (2.5, pytest.approx(10.0))  # the window dropped the batches before 1.5 s
    assert live_rate(points) == pytest.approx(10.0) and live_rate(points[:1]) is None


def test_live_rates_restart_with_each_run() -> None:
    rates = LiveRates()
    assert rates.add(run=0, elapsed_s=0.2, tokens=0) and rates.first_tokens_s is None
    assert not rates.add(run=0, elapsed_s=0.3, tokens=2)
    assert rates.first_tokens_s == 0.3  # the provisional TTFT: the first batch with tokens
    assert rates.add(run=1, elapsed_s=0.1, tokens=1)  # a new run: a new series
    assert rates.points == [(0.1, 1)] and rates.first_tokens_s == 0.1 and rates.rate() is None
    assert rates.add(run=1, elapsed_s=0.05, tokens=0)  # fewer tokens: the run restarted (a retry)


def test_cpu_share_of_the_whole_machine() -> None:
    assert machine_share(200.0, cores=4) == 50.0
    assert machine_share(None) is None
