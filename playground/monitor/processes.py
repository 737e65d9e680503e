"""Watched worker processes: CPU % and RSS per label, robust to workers exiting at any time."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil

from playground.monitor.samples import ProcessSample

MB = 1024 * 1024


@dataclass
class _Watched:
    label: str
    proc: psutil.Process  # reused: psutil keeps the CPU-time baseline inside the object
    primed_at: float
    measured: bool = False


class ProcessTable:
    """label -> psutil.Process, read once per tick.

    A process that exits (or turns zombie, i.e. exited but not yet reaped by its parent) is
    dropped from the table on the tick that notices it; ``exited`` lists those labels.
    """

    def __init__(self, min_first_interval_s: float = 0.1) -> None:
        self._lock = threading.Lock()
        self._by_label: dict[str, _Watched] = {}
        self._min_first = min_first_interval_s
        self.exited: list[tuple[str, int]] = []  # (label, pid), most recent last

    def watch(self, pid: int, label: str) -> bool:
        """Start watching; a label already in use is re-pointed (a restarted worker). False if gone."""
        try:
            proc = psutil.Process(pid)
            proc.cpu_percent(None)  # priming call: the next call measures from here
        except psutil.Error:
            return False
        with self._lock:
            self._by_label[label] = _Watched(label, proc, time.monotonic())
        return True

    def reprime(self) -> None:
        """Restart every CPU baseline now (the monitor (re)starts: no hour-long first interval)."""
        with self._lock:
            entries = list(self._by_label.values())
        now = time.monotonic()
        for w in entries:
            try:
                w.proc.cpu_percent(None)
            except psutil.Error:
                continue  # the next read() notices and drops it
            w.primed_at, w.measured = now, False

    def unwatch(self, key: int | str) -> None:
        """Stop watching by pid or by label; unknown keys are ignored."""
        with self._lock:
            for label, w in list(self._by_label.items()):
                if key == label or (isinstance(key, int) and w.proc.pid == key):
                    del self._by_label[label]

    def watched(self) -> dict[str, int]:
        with self._lock:
            return {label: w.proc.pid for label, w in self._by_label.items()}

    def read(self) -> dict[str, ProcessSample]:
        with self._lock:
            entries = list(self._by_label.values())
        out: dict[str, ProcessSample] = {}
        gone: list[_Watched] = []
        now = time.monotonic()
        for w in entries:
            try:
                with w.proc.oneshot():
                    if w.proc.status() == psutil.STATUS_ZOMBIE:
                        raise psutil.ZombieProcess(w.proc.pid)
                    cpu: float | None = None
                    # Right after watch() the interval may be a few ms: no meaningful % yet,
                    # and not calling cpu_percent keeps the baseline for the next tick.
                    if w.measured or now - w.primed_at >= self._min_first:
                        cpu = w.proc.cpu_percent(None)
                        w.measured = True
                    rss = w.proc.memory_info().rss
            except psutil.NoSuchProcess:  # includes ZombieProcess
                gone.append(w)
                continue
            except psutil.AccessDenied:  # e.g. another user's process on Windows: skip, keep watching
                continue
            out[w.label] = ProcessSample(pid=w.proc.pid, cpu_percent=cpu, rss_mb=rss / MB)
        if gone:
            with self._lock:
                for w in gone:
                    if self._by_label.get(w.label) is w:  # not re-pointed meanwhile
                        del self._by_label[w.label]
                    self.exited.append((w.label, w.proc.pid))
                del self.exited[:-100]
        return out
