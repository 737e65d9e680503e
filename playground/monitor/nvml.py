"""NVIDIA GPUs through NVML (``pynvml`` from nvidia-ml-py): utilization.gpu and memory used.

NVML already reports rates averaged by the driver, so there is no counter arithmetic here.
Per-process shares come from nvmlDeviceGetProcessUtilization (SM %), when the driver offers it.
"""

from __future__ import annotations

import contextlib
import time
from types import ModuleType
from typing import Any

from playground.monitor.base import Clock, UtilizationReader
from playground.monitor.samples import DeviceSample, clamp_percent

MB = 1024 * 1024


def _load_pynvml() -> ModuleType | None:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


class NvmlReader(UtilizationReader):
    name = "NVIDIA (NVML)"

    def __init__(self, nvml: Any, clock: Clock = time.monotonic) -> None:
        super().__init__(clock)
        self.nvml = nvml
        self._gpus: list[tuple[str, Any]] = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            name = nvml.nvmlDeviceGetName(handle)
            if isinstance(name, bytes):  # older pynvml
                name = name.decode(errors="replace")
            self._gpus.append((f"GPU {i} ({name})", handle))
        self._last_seen_us: dict[str, int] = {n: int(time.time() * 1e6) for n, _ in self._gpus}

    @classmethod
    def probe(cls, nvml: Any = None) -> tuple[NvmlReader | None, str]:
        nvml = nvml or _load_pynvml()
        if nvml is None:
            return None, "NVML: nvidia-ml-py is not installed"
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            missing = (nvml.NVMLError_LibraryNotFound, nvml.NVMLError_DriverNotLoaded)
            if isinstance(exc, missing):
                return None, "NVML: no NVIDIA driver"
            return None, f"NVML: {exc}"
        try:
            reader = cls(nvml)
        except nvml.NVMLError as exc:
            nvml.nvmlShutdown()
            return None, f"NVML: {exc}"
        if not reader._gpus:
            nvml.nvmlShutdown()
            return None, "NVML: driver loaded but no NVIDIA GPU"
        return reader, "NVML: " + ", ".join(n for n, _ in reader._gpus)

    def _per_pid(self, name: str, handle: Any) -> dict[int, float]:
        try:
            samples = self.nvml.nvmlDeviceGetProcessUtilization(handle, self._last_seen_us[name])
        except self.nvml.NVMLError:  # NOT_FOUND: no process sampled since; NOT_SUPPORTED: old GPU
            return {}
        latest: dict[int, tuple[int, float]] = {}
        for s in samples:
            if s.timeStamp >= latest.get(s.pid, (-1, 0.0))[0]:
                latest[s.pid] = (s.timeStamp, float(s.smUtil))
            self._last_seen_us[name] = max(self._last_seen_us[name], s.timeStamp)
        return {pid: clamp_percent(util) for pid, (_, util) in latest.items()}

    def read(self) -> dict[str, DeviceSample]:
        out: dict[str, DeviceSample] = {}
        for name, handle in self._gpus:
            try:
                util = float(self.nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                mem = self.nvml.nvmlDeviceGetMemoryInfo(handle).used / MB
            except self.nvml.NVMLError:  # GPU lost / reset: report it as unknown this tick
                out[name] = DeviceSample(None)
                continue
            out[name] = DeviceSample(util, mem, per_pid=self._per_pid(name, handle))
        return out

    def close(self) -> None:
        with contextlib.suppress(self.nvml.NVMLError):
            self.nvml.nvmlShutdown()
