"""The web browser's share of the machine: every process of a known browser, summed.

The page that shows the figures costs CPU too (layout, charts, its renderer and GPU
processes). Which browser and which tab cannot be known from the server, so this follows every
process whose name is a known browser's — all its tabs — and says so in the chart's note.
The process list is rescanned every ``RESCAN_S`` (a scan walks /proc); between scans the same
psutil objects are read, which keeps each tick to a few reads per process.
"""

from __future__ import annotations

import os
import re
import time

import psutil

from playground.monitor.samples import ProcessSample

BROWSER_NAME = re.compile(r"chrom|msedge|firefox|brave|opera|vivaldi|safari", re.IGNORECASE)
RESCAN_S = 2.0
MB = 1024 * 1024
LABEL = "browser"


def is_browser(name: str, cmdline: list[str] | None = None) -> bool:
    """By process name, or the program in its command line (names are cut at 15 chars on Linux)."""
    if BROWSER_NAME.search(name or ""):
        return True
    program = os.path.basename(cmdline[0]) if cmdline else ""
    return bool(BROWSER_NAME.search(program))


class BrowserProcesses:
    """Sum of CPU (psutil's %, 100 = one core) and RSS over the browser's processes."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._scanned_at = 0.0

    def _rescan(self) -> None:
        own = os.getpid()
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["name"]):
            try:
                if proc.pid == own:
                    continue
                if not is_browser(proc.info.get("name") or ""):
                    continue
                kept = self._procs.get(proc.pid)
                if kept is None:
                    proc.cpu_percent(None)  # prime: measured from the next tick on
                    kept = proc
                found[proc.pid] = kept
            except psutil.Error:
                continue
        self._procs = found
        self._scanned_at = time.monotonic()

    def read(self) -> ProcessSample | None:
        """None when no browser process runs here (e.g. the page is open on another machine)."""
        if time.monotonic() - self._scanned_at >= RESCAN_S:
            self._rescan()
        if not self._procs:
            return None
        cpu = 0.0
        rss = 0
        for pid, proc in list(self._procs.items()):
            try:
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
            except psutil.Error:
                self._procs.pop(pid, None)
        return ProcessSample(pid=0, cpu_percent=cpu, rss_mb=rss / MB)
