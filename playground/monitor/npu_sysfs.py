"""Intel NPU utilization on Linux from the intel_vpu driver's sysfs busy-time counter.

``/sys/class/accel/accel*/device/npu_busy_time_us`` is the NPU's cumulative busy time;
utilization is its delta over the wall-clock delta. The driver documentation asks not to poll
it faster than about once a second (reads contend with job submission), hence
``min_interval_s = 1.0``: between reads the monitor re-serves the last value.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from playground.monitor.base import Clock, UtilizationReader
from playground.monitor.samples import DeviceSample, clamp_percent

MB = 1024 * 1024


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass
class _Npu:
    name: str
    device_dir: Path
    busy_us: int | None = None
    at: float = 0.0


class NpuSysfsReader(UtilizationReader):
    name = "NPU (sysfs)"
    min_interval_s = 1.0

    def __init__(self, device_dirs: list[Path], clock: Clock = time.monotonic) -> None:
        super().__init__(clock)
        single = len(device_dirs) == 1
        self._npus = [_Npu("NPU" if single else f"NPU {d.parent.name}", d) for d in device_dirs]
        now = self.clock()
        for npu in self._npus:  # baseline, so the first read() covers a real interval
            npu.busy_us, npu.at = _read_int(npu.device_dir / "npu_busy_time_us"), now

    @classmethod
    def probe(
        cls, sys_root: str | Path = "/sys", clock: Clock = time.monotonic
    ) -> tuple[NpuSysfsReader | None, str]:
        if sys.platform != "linux":
            return None, "NPU sysfs: Linux only"
        counters = sorted(Path(sys_root).glob("class/accel/accel*/device/npu_busy_time_us"))
        if not counters:
            return None, "NPU: no intel_vpu device with npu_busy_time_us under /sys/class/accel"
        readable = [c.parent for c in counters if _read_int(c) is not None]
        if not readable:
            return None, f"NPU: {counters[0]} is not readable"
        reader = cls(readable, clock)
        return reader, f"NPU: {', '.join(n.name for n in reader._npus)} via npu_busy_time_us"

    def read(self) -> dict[str, DeviceSample]:
        now = self.clock()
        out: dict[str, DeviceSample] = {}
        for npu in self._npus:
            busy = _read_int(npu.device_dir / "npu_busy_time_us")
            util: float | None = None
            if busy is not None and npu.busy_us is not None and busy >= npu.busy_us and now > npu.at:
                util = round(clamp_percent(100.0 * (busy - npu.busy_us) / ((now - npu.at) * 1e6)), 1)
            # A counter that went backwards (driver reload) just starts a new baseline.
            npu.busy_us, npu.at = busy, now
            mem = _read_int(npu.device_dir / "npu_memory_utilization")  # bytes, newer kernels
            out[npu.name] = DeviceSample(util, None if mem is None else mem / MB, kind="NPU")
        return out
