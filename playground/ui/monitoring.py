"""The app's one utilization monitor, sampling only while a comparison runs."""

from __future__ import annotations

import os
import threading

from playground.monitor import Monitor, Sample

RATE_HZ = 4.0
APP_LABEL = "app (this server)"
PAGE_COST_NOTE = (f"`{APP_LABEL}` is the web app's own process; `browser` sums every browser process on "
                  "this machine (all its tabs) — what showing the page costs.")


class RunMonitor:
    """Wraps ``Monitor``: started when a run starts, paused when it ends; watches worker pids.

    One comparison runs at a time, so one monitor serves every session.
    """

    def __init__(self, rate_hz: float = RATE_HZ) -> None:
        self.monitor = Monitor(rate_hz=rate_hz, track_browser=True)
        self.monitor.watch(os.getpid(), APP_LABEL)
        self._lock = threading.Lock()
        self._runs = 0

    def run_started(self) -> None:
        with self._lock:
            self._runs += 1
            self.monitor.start()  # idempotent; the first start probes the device readers

    def run_ended(self) -> None:
        with self._lock:
            self._runs = max(0, self._runs - 1)
            if not self._runs:
                self.monitor.stop()

    def on_worker(self, label: str, pid: int, started: bool) -> None:
        """The engine's on_worker callback: follow each backend's worker while it lives."""
        if started:
            self.monitor.watch(pid, label)
        else:
            self.monitor.unwatch(pid)

    def samples(self, since: float) -> list[Sample]:
        return self.monitor.samples(since)

    def describe(self) -> str:
        """Which GPU / NPU readers are active, and why the others are not (under the chart)."""
        statuses = self.monitor.readers
        active = [s.name for s in statuses if s.active]
        inactive = [s.reason for s in statuses if not s.active]
        parts = [PAGE_COST_NOTE]
        if active:
            parts.append("Device readers: " + ", ".join(active) + ".")
        if inactive:
            parts.append(("No GPU / NPU graph: " if not active else "Not available: ") + "; ".join(inactive))
        return " ".join(parts)
