"""The utilization monitor: a daemon thread sampling CPU, memory, watched workers and devices.

Samples go into a bounded ring buffer (10 minutes at 4 Hz by default) that the UI polls with
``samples(since=...)``. Everything a tick touches is reused between ticks (psutil.Process
objects, reader handles), so the thread stays well under 1 % of a core; ``cpu_time_s`` says
exactly how much it used.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace

from playground.monitor.base import ReaderStatus, UtilizationReader
from playground.monitor.browser import LABEL as BROWSER_LABEL
from playground.monitor.browser import BrowserProcesses
from playground.monitor.detect import detect_readers
from playground.monitor.processes import ProcessTable
from playground.monitor.samples import DeviceSample, ProcessSample, Sample
from playground.monitor.system import CpuUsage, memory

log = logging.getLogger(__name__)

MAX_READER_FAILURES = 5  # consecutive; then the reader is switched off and the UI says why


class Monitor:
    def __init__(
        self,
        rate_hz: float = 4.0,
        history_s: float = 600.0,
        readers: Sequence[UtilizationReader] | None = None,
        track_browser: bool = False,
    ) -> None:
        """``readers=None`` probes the machine (``detect_readers``) on first need; pass a list
        (possibly empty) to choose them yourself. ``track_browser`` adds the summed share of every
        browser process on this machine under the label ``browser``."""
        if rate_hz <= 0:
            raise ValueError("rate_hz must be > 0")
        self.rate_hz = rate_hz
        self.period_s = 1.0 / rate_hz
        self._buffer: deque[Sample] = deque(maxlen=max(1, round(history_s * rate_hz)))
        self._lock = threading.Lock()
        self._detect_lock = threading.Lock()
        self._procs = ProcessTable(min_first_interval_s=self.period_s / 2)
        self._readers: list[UtilizationReader] | None = None if readers is None else list(readers)
        self._statuses: list[ReaderStatus] = (
            [] if readers is None else [ReaderStatus(r.name, True, "given") for r in readers]
        )
        self._failures: dict[int, int] = {}
        self._device_names: dict[str, None] = {}  # ordered set
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu: CpuUsage | None = None
        self._cpu_time_s = 0.0
        self._browser = BrowserProcesses() if track_browser else None
        self.ticks = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._ensure_readers()
        self._cpu = CpuUsage()  # baseline: the first sample covers one period
        self._procs.reprime()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="playground-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        """Stop and release device handles (NVML, PDH)."""
        self.stop()
        for reader in self._readers or []:
            try:
                reader.close()
            except Exception:
                log.debug("closing %s failed", reader.name, exc_info=True)

    def __enter__(self) -> Monitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- what to watch -----------------------------------------------------------------------
    def watch(self, pid: int, label: str) -> bool:
        """Follow a worker process under ``label``; False if it already exited."""
        return self._procs.watch(pid, label)

    def unwatch(self, key: int | str) -> None:
        """Stop following a process, by pid or by label."""
        self._procs.unwatch(key)

    def watched(self) -> dict[str, int]:
        """label -> pid of processes still being followed (exited ones drop out by themselves)."""
        return self._procs.watched()

    @property
    def exited(self) -> list[tuple[str, int]]:
        """(label, pid) of watched processes the monitor saw exit."""
        return list(self._procs.exited)

    # -- reading results ---------------------------------------------------------------------
    def samples(self, since: float | None = None) -> list[Sample]:
        """Samples with ``t > since`` (all of them for None), oldest first."""
        with self._lock:
            if since is None:
                return list(self._buffer)
            out: list[Sample] = []
            for s in reversed(self._buffer):  # the UI asks for the last few: walk from the end
                if s.t <= since:
                    break
                out.append(s)
        out.reverse()
        return out

    def latest(self) -> Sample | None:
        with self._lock:
            return self._buffer[-1] if self._buffer else None

    def device_names(self) -> list[str]:
        """Every device name seen so far, in first-seen order (stable plot traces)."""
        with self._lock:
            return list(self._device_names)

    @property
    def readers(self) -> list[ReaderStatus]:
        """(name, active, reason) for each device reader, e.g. "NVML: no NVIDIA driver"."""
        self._ensure_readers()
        with self._lock:
            return list(self._statuses)

    @property
    def capacity(self) -> int:
        return self._buffer.maxlen or 0

    @property
    def cpu_time_s(self) -> float:
        """CPU seconds the sampler thread has consumed (time.thread_time), for the overhead bench."""
        return self._cpu_time_s

    # -- the thread --------------------------------------------------------------------------
    def _ensure_readers(self) -> None:
        with self._detect_lock:  # the UI may ask for .readers while start() probes
            if self._readers is None:
                readers, statuses = detect_readers()
                with self._lock:
                    self._readers, self._statuses = readers, statuses

    def _run(self) -> None:
        cpu0 = time.thread_time()
        next_at = time.monotonic() + self.period_s
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            try:
                self._tick()
            except Exception:  # the monitor must outlive any surprise
                log.exception("monitor tick failed")
            self._cpu_time_s = time.thread_time() - cpu0
            next_at += self.period_s
            now = time.monotonic()
            if next_at < now:  # overran (suspend, heavy load): skip missed ticks, no burst
                next_at = now + self.period_s

    def _read_devices(self) -> dict[str, DeviceSample]:
        devices: dict[str, DeviceSample] = {}
        for reader in list(self._readers or []):
            try:
                devices.update(reader.sample())
                self._failures.pop(id(reader), None)
            except Exception as exc:
                n = self._failures[id(reader)] = self._failures.get(id(reader), 0) + 1
                log.warning("%s read failed (%d): %s", reader.name, n, exc)
                if n >= MAX_READER_FAILURES:
                    self._disable(reader, f"{reader.name}: stopped after {n} failed reads: {exc}")
        return devices

    def _disable(self, reader: UtilizationReader, reason: str) -> None:
        with self._lock:
            if self._readers is not None and reader in self._readers:
                self._readers.remove(reader)
            self._statuses = [
                ReaderStatus(s.name, False, reason) if s.name == reader.name else s for s in self._statuses
            ]

    def _tick(self) -> None:
        assert self._cpu is not None
        t = time.time()
        total, per_core = self._cpu.read()
        mem_percent, mem_used_mb = memory()
        processes = self._procs.read()
        if self._browser is not None:
            browser = self._browser.read()
            if browser is not None:
                processes[BROWSER_LABEL] = browser
        devices = self._read_devices()
        _attach_device_shares(processes, devices)
        sample = Sample(
            t=t,
            cpu_percent=total,
            cpu_per_core=per_core,
            mem_percent=mem_percent,
            mem_used_mb=round(mem_used_mb, 1),
            processes=processes,
            # per_pid of every process on the machine is not worth 10 minutes of memory
            devices={name: replace(d, per_pid={}) if d.per_pid else d for name, d in devices.items()},
        )
        with self._lock:
            self._buffer.append(sample)
            for name in devices:
                self._device_names.setdefault(name, None)
        self.ticks += 1


def _attach_device_shares(processes: dict[str, ProcessSample], devices: dict[str, DeviceSample]) -> None:
    for ps in processes.values():
        for name, dev in devices.items():
            share = dev.per_pid.get(ps.pid)
            if share is not None:
                ps.devices[name] = share
