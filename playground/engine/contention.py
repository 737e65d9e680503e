"""Was the machine busy with something else while a backend generated?

Measured in the worker around each ``generate`` call from two cumulative counters, so it
covers the whole run however short (a 30 ms run falls between two 4 Hz monitor samples):
the machine's busy CPU time and this process's own CPU time. What is left is everyone else:
the app, the browser page, other programs.

A run is flagged ``busy_machine`` when those others used more of the machine than the thread
budget leaves free (``(cores - threads) / cores``) plus ``MARGIN_PERCENT``: then they must have
taken CPU time from the backend's own threads and its figures understate the runtime.

On a virtual machine the host can take CPU time from the guest as a whole ("steal": the vCPUs
were ready to run but the hypervisor ran something else). No process in the guest sees it, so it
is counted apart from the others' share: a run is flagged ``contended_host`` when steal took more
than ``STEAL_LIMIT_PERCENT`` of the machine's CPU time, because then its figures understate the
runtime and vary from run to run by more than any overhead the playground could add.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

MARGIN_PERCENT = 10.0  # of the whole machine, on top of the share the budget leaves free
STEAL_LIMIT_PERCENT = 5.0  # of the machine's CPU time, taken by a VM's host: figures then vary
# The kernel's CPU-time counters tick at 100 Hz: a shorter run cannot be judged (None).
MIN_WALL_S = 0.05


def busy_threshold(threads: int, cores: int | None = None) -> float:
    """Others' share of all cores (0-100) above which a run counts as taken on a busy machine."""
    cores = cores or os.cpu_count() or 1
    free = max(0, cores - min(threads, cores)) / cores * 100
    return min(100.0, free + MARGIN_PERCENT)


def _machine_times() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far; steal is 0 where the OS has none."""
    import psutil  # lazily: a worker on a bare interpreter must still report what is missing

    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    steal = getattr(times, "steal", 0.0)
    # guest time is already inside user time; steal is time the guest did not run at all
    busy = sum(times) - idle - steal - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return busy, steal


def contended_host(steal_percent: float | None) -> bool:
    return steal_percent is not None and steal_percent > STEAL_LIMIT_PERCENT


def _own_cpu_s(proc: Any) -> float:
    times = proc.cpu_times()
    return times.user + times.system


@dataclass
class OtherLoad:
    """Start before ``generate``; ``percent()`` after it: others' share of all cores, 0-100."""

    wall: float
    busy: float
    steal: float
    own: float
    proc: Any  # psutil.Process
    steal_percent: float | None = None  # set by ``percent()``: the host's share of the machine

    @classmethod
    def start(cls) -> OtherLoad:
        import psutil

        proc = psutil.Process()
        busy, steal = _machine_times()
        return cls(time.perf_counter(), busy, steal, _own_cpu_s(proc), proc)

    def percent(self) -> float | None:
        """Others' share of all cores since ``start`` (None: too short); also sets ``steal_percent``."""
        wall = time.perf_counter() - self.wall
        if wall < MIN_WALL_S:
            return None
        busy, steal = _machine_times()
        others = (busy - self.busy) - (_own_cpu_s(self.proc) - self.own)
        capacity = wall * (os.cpu_count() or 1)
        self.steal_percent = round(min(100.0, max(0.0, (steal - self.steal) / capacity * 100)), 1)
        return round(min(100.0, max(0.0, others / capacity * 100)), 1)
