"""Did the worker really run while its figures were timed?

A worker paused with SIGSTOP, frozen by a suspended VM or starved of every core still shows a
decode rate at the end, only a far lower one, which would read as the runtime's speed. The
worker watches itself around each ``generate``: a ticker thread wakes every ``TICK_S``; a wake-up
later than ``FROZEN_S`` during which the process got far less CPU time than wall time
(``CPU_SHARE``) means the whole process did not run (a long native call that holds the GIL still
burns CPU, so it does not count). The engine marks a run whose frozen time passes
``STALL_FLAG_S`` or ``STALL_FLAG_SHARE`` of its length (``judge``): the record carries the
seconds (``stalled_s``) and a note, the figures are kept but no longer presented as the
runtime's speed.

A whole-window ratio of CPU time to wall time is recorded too (``cpu_s``, ``RunRecord.cpu_pct``)
but not judged on its own: a GPU or NPU lane, or a runtime waiting on its device, uses little CPU
by design, so only a frozen stretch tells starvation from offload.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

TICK_S = 0.1
FROZEN_S = 0.5  # a wake-up this late is a stretch the process may not have run
CPU_SHARE = 0.25  # ...and it was frozen if it got less CPU than this share of that stretch
STALL_FLAG_S = 1.0  # frozen this long in a run: its figures are not the runtime's
STALL_FLAG_SHARE = 0.2  # ...or this share of a shorter run (at least FROZEN_S)


def process_cpu_s() -> float:
    """CPU time of this process (all its threads) so far, user + system."""
    times = os.times()
    return times.user + times.system


@dataclass
class StallReport:
    cpu_s: float  # the process's CPU time over the window
    wall_s: float
    stalled_s: float  # frozen time, summed over frozen stretches
    longest_s: float  # the longest frozen stretch


class StallWatch:
    """Start before ``generate``, ``finish()`` after it (one thread per window, 10 wake-ups / s)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._started = time.perf_counter()
        self._cpu = process_cpu_s()
        self.stalled_s = 0.0
        self.longest_s = 0.0
        self._thread = threading.Thread(target=self._tick, name="stall-watch", daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        last, last_cpu = time.perf_counter(), process_cpu_s()
        while not self._done.wait(TICK_S):
            self._note(last, last_cpu)
            last, last_cpu = time.perf_counter(), process_cpu_s()
        self._note(last, last_cpu)

    def _note(self, last: float, last_cpu: float) -> None:
        gap = time.perf_counter() - last
        if gap >= FROZEN_S and process_cpu_s() - last_cpu < CPU_SHARE * gap:
            frozen = gap - TICK_S
            self.stalled_s += frozen
            self.longest_s = max(self.longest_s, frozen)

    def finish(self) -> StallReport:
        self._done.set()
        self._thread.join(timeout=1.0)
        return StallReport(
            cpu_s=process_cpu_s() - self._cpu,
            wall_s=time.perf_counter() - self._started,
            stalled_s=round(self.stalled_s, 3),
            longest_s=round(self.longest_s, 3),
        )


def judge(stalled_s: float | None, e2e_s: float | None, cpu_s: float | None) -> str:
    """The record's note when the run stalled, else ""."""
    if not stalled_s or not e2e_s:
        return ""
    if stalled_s < STALL_FLAG_S and (stalled_s < FROZEN_S or stalled_s < STALL_FLAG_SHARE * e2e_s):
        return ""
    cpu = f"; it got {cpu_s:.1f} s of CPU time in {e2e_s:.1f} s" if cpu_s is not None else ""
    return (
        f"stalled: the worker did not run for {stalled_s:.1f} s of this run's {e2e_s:.1f} s{cpu} "
        "(paused, suspended or starved of CPU); these figures are not the runtime's speed"
    )
