"""System-wide CPU and memory, computed from our own baseline.

psutil.cpu_percent(interval=None) keeps its baseline in module globals, so any other caller in
the process (a UI widget, a library) would silently shorten our interval. Taking deltas of
psutil.cpu_times(percpu=True) ourselves costs the same single /proc/stat read.
"""

from __future__ import annotations

from typing import Any

import psutil

MB = 1024 * 1024


def _total_and_busy(times: Any) -> tuple[float, float]:
    total = sum(times)
    # On Linux guest time is already counted inside user/nice.
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    busy = total - times.idle - getattr(times, "iowait", 0.0)
    return total, busy


class CpuUsage:
    """Per-core and total CPU % since the previous ``read()`` (the constructor primes it)."""

    def __init__(self) -> None:
        self._prev = [_total_and_busy(t) for t in psutil.cpu_times(percpu=True)]

    def read(self) -> tuple[float, list[float]]:
        now = [_total_and_busy(t) for t in psutil.cpu_times(percpu=True)]
        if len(now) != len(self._prev):  # a core went on/offline: start over from here
            self._prev = now
            return 0.0, [0.0] * len(now)
        per_core: list[float] = []
        d_total_sum = d_busy_sum = 0.0
        for (t1, b1), (t0, b0) in zip(now, self._prev, strict=True):
            d_total, d_busy = t1 - t0, b1 - b0
            d_total_sum += max(d_total, 0.0)
            d_busy_sum += max(d_busy, 0.0)
            per_core.append(round(min(100.0, max(0.0, 100.0 * d_busy / d_total)), 1) if d_total > 0 else 0.0)
        self._prev = now
        total = 100.0 * d_busy_sum / d_total_sum if d_total_sum > 0 else 0.0
        return round(min(100.0, total), 1), per_core


def memory() -> tuple[float, float]:
    """(percent, used MB) with used = total - available, consistent with psutil's percent."""
    vm = psutil.virtual_memory()
    return vm.percent, (vm.total - vm.available) / MB
