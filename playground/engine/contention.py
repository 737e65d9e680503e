"""Was the machine busy with something else while a backend generated?

Measured in the worker around each ``generate`` call from two cumulative counters, so it
covers the whole run however short (a 30 ms run falls between two 4 Hz monitor samples):
the machine's busy CPU time and this process's own CPU time. What is left is everyone else:
the app, the browser page, other programs.

A run is flagged ``busy_machine`` when those others used more of the machine than the thread
budget leaves free (``(cores - threads) / cores``) plus ``MARGIN_PERCENT``: then they must have
taken CPU time from the backend's own threads and its figures understate the runtime.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

MARGIN_PERCENT = 10.0  # of the whole machine, on top of the share the budget leaves free
# The kernel's CPU-time counters tick at 100 Hz: a shorter run cannot be judged (None).
MIN_WALL_S = 0.05


def busy_threshold(threads: int, cores: int | None = None) -> float:
    """Others' share of all cores (0-100) above which a run counts as taken on a busy machine."""
    cores = cores or os.cpu_count() or 1
    free = max(0, cores - min(threads, cores)) / cores * 100
    return min(100.0, free + MARGIN_PERCENT)


def _machine_busy_s() -> float:
    import psutil  # lazily: a worker on a bare interpreter must still report what is missing

    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    return sum(times) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _own_cpu_s(proc: Any) -> float:
    times = proc.cpu_times()
    return times.user + times.system


@dataclass
class OtherLoad:
    """Start before ``generate``; ``percent()`` after it: others' share of all cores, 0-100."""

    wall: float
    busy: float
    own: float
    proc: Any  # psutil.Process

    @classmethod
    def start(cls) -> OtherLoad:
        import psutil

        proc = psutil.Process()
        return cls(time.perf_counter(), _machine_busy_s(), _own_cpu_s(proc), proc)

    def percent(self) -> float | None:
        wall = time.perf_counter() - self.wall
        if wall < MIN_WALL_S:
            return None
        others = (_machine_busy_s() - self.busy) - (_own_cpu_s(self.proc) - self.own)
        cores = os.cpu_count() or 1
        return round(min(100.0, max(0.0, others / (wall * cores) * 100)), 1)
