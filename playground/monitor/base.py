"""The one interface every device utilization reader implements, plus its status line."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, NamedTuple

from playground.monitor.samples import DeviceSample

Clock = Callable[[], float]  # seconds, monotonic; injectable so tests drive the arithmetic


class ReaderStatus(NamedTuple):
    """Shown in the UI so a missing GPU/NPU graph explains itself; unpacks as (name, active, reason)."""

    name: str
    active: bool
    reason: str


class UtilizationReader(ABC):
    """Reads utilization of one family of devices.

    ``probe()`` decides whether the reader can work on this machine and says why not;
    ``read()`` returns device name -> sample. Counter-based readers keep the previous counter
    values, so the first ``read()`` after construction already covers a real interval.
    """

    name: ClassVar[str] = "reader"
    # Some counters are costly or disturbing to read (the Intel NPU driver asks for <= 1 Hz):
    # ``sample()`` re-serves the last result until this much time has passed.
    min_interval_s: float = 0.0

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._last_at: float | None = None
        self._last: dict[str, DeviceSample] = {}

    @classmethod
    @abstractmethod
    def probe(cls) -> tuple[UtilizationReader | None, str]:
        """(reader, what it found) or (None, why it cannot run here)."""

    @abstractmethod
    def read(self) -> dict[str, DeviceSample]:
        """Read the counters now and return device name -> sample."""

    def sample(self) -> dict[str, DeviceSample]:
        """``read()``, throttled to ``min_interval_s``; this is what the monitor calls."""
        now = self.clock()
        if self._last_at is None or now - self._last_at >= self.min_interval_s:
            self._last = self.read()
            self._last_at = now
        return self._last

    def close(self) -> None:
        """Release handles (NVML, PDH query); the base only drops its cached result."""
        self._last = {}
