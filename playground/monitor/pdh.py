"""GPU and NPU utilization on Windows from the performance counters Task Manager reads (PDH).

English counter paths (``PdhAddEnglishCounterW``) so a German or Japanese Windows works too.
``Utilization Percentage`` is a rate counter: the query is collected once at construction and
each ``read()`` collects again, giving the utilization over the interval in between. The parsing
and arithmetic live in ``pdh_parse`` (tested on any OS); this module is only the ctypes plumbing.
"""

from __future__ import annotations

import ctypes
import sys
import time
from ctypes import wintypes
from typing import Any

from playground.monitor.base import Clock, UtilizationReader
from playground.monitor.pdh_parse import AdapterInfo, aggregate_engines, to_device_samples
from playground.monitor.samples import DeviceSample
from playground.monitor.win_adapters import dxgi_adapters

GPU_ENGINE = r"\GPU Engine(*)\Utilization Percentage"
NPU_ENGINE = r"\NPU Engine(*)\Utilization Percentage"  # recent Windows 11 builds only
MEM_DEDICATED = r"\GPU Adapter Memory(*)\Dedicated Usage"
MEM_SHARED = r"\GPU Adapter Memory(*)\Shared Usage"

_PDH_MORE_DATA = 0x800007D2
_PDH_FMT_DOUBLE = 0x00000200
_PDH_CSTATUS_VALID_DATA, _PDH_CSTATUS_NEW_DATA = 0, 1
NVIDIA_VENDOR_ID = 0x10DE


class _FmtValue(ctypes.Structure):
    class _U(ctypes.Union):
        _fields_ = [("longValue", ctypes.c_long), ("doubleValue", ctypes.c_double),
                    ("largeValue", ctypes.c_longlong), ("WideStringValue", ctypes.c_wchar_p)]  # fmt: skip

    _fields_ = [("CStatus", wintypes.DWORD), ("u", _U)]


class _FmtItem(ctypes.Structure):
    _fields_ = [("szName", ctypes.c_wchar_p), ("FmtValue", _FmtValue)]


class _Pdh:
    """One PDH query holding wildcard counters; values come back as (instance, value) lists."""

    def __init__(self, paths: list[str]) -> None:
        self.dll = ctypes.WinDLL("pdh.dll")  # type: ignore[attr-defined]
        for fn in ("PdhOpenQueryW", "PdhAddEnglishCounterW", "PdhCollectQueryData",
                   "PdhGetFormattedCounterArrayW", "PdhCloseQuery"):  # fmt: skip
            getattr(self.dll, fn).restype = wintypes.DWORD  # PDH_STATUS, compared unsigned
        self.query = wintypes.HANDLE()
        self._check(self.dll.PdhOpenQueryW(None, 0, ctypes.byref(self.query)), "PdhOpenQueryW")
        self.counters: dict[str, wintypes.HANDLE] = {}
        for path in paths:
            handle = wintypes.HANDLE()
            if self.dll.PdhAddEnglishCounterW(self.query, path, 0, ctypes.byref(handle)) == 0:
                self.counters[path] = handle

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status != 0:
            raise OSError(f"{what} failed: 0x{status:08X}")

    def collect(self) -> None:
        self._check(self.dll.PdhCollectQueryData(self.query), "PdhCollectQueryData")

    def values(self, path: str) -> list[tuple[str, float]]:
        handle = self.counters.get(path)
        if handle is None:
            return []
        size, count = wintypes.DWORD(0), wintypes.DWORD(0)
        status = self.dll.PdhGetFormattedCounterArrayW(
            handle, _PDH_FMT_DOUBLE, ctypes.byref(size), ctypes.byref(count), None
        )
        if status != _PDH_MORE_DATA:
            return []  # no instances right now (or the counter is not ready)
        buf = ctypes.create_string_buffer(size.value)
        status = self.dll.PdhGetFormattedCounterArrayW(
            handle, _PDH_FMT_DOUBLE, ctypes.byref(size), ctypes.byref(count), buf
        )
        if status != 0:
            return []
        items = ctypes.cast(buf, ctypes.POINTER(_FmtItem))
        out = []
        for i in range(count.value):
            item = items[i]
            if item.FmtValue.CStatus in (_PDH_CSTATUS_VALID_DATA, _PDH_CSTATUS_NEW_DATA):
                out.append((item.szName, item.FmtValue.u.doubleValue))
        return out

    def close(self) -> None:
        self.dll.PdhCloseQuery(self.query)


class PdhReader(UtilizationReader):
    name = "Windows GPU/NPU (PDH)"

    def __init__(self, pdh: Any, adapters: dict[str, AdapterInfo], skip_luids: set[str],
                 clock: Clock = time.monotonic) -> None:  # fmt: skip
        super().__init__(clock)
        self.pdh = pdh
        self.adapters = adapters
        self.skip_luids = skip_luids
        self._known: dict[str, bool] = {}  # LUID -> is NPU, so idle adapters keep their name
        self.pdh.collect()  # first half of the first rate interval

    @classmethod
    def probe(cls, exclude_vendor_ids: frozenset[int] = frozenset()) -> tuple[PdhReader | None, str]:
        if sys.platform != "win32":
            return None, "PDH: Windows only"
        try:
            pdh = _Pdh([GPU_ENGINE, NPU_ENGINE, MEM_DEDICATED, MEM_SHARED])
        except OSError as exc:
            return None, f"PDH: {exc}"
        if GPU_ENGINE not in pdh.counters:
            pdh.close()
            return None, "PDH: no GPU Engine counters (Windows 10 1709+ with a WDDM 2.x driver needed)"
        adapters = dxgi_adapters()
        skip = {luid for luid, a in adapters.items() if a.vendor_id in exclude_vendor_ids}
        reader = cls(pdh, adapters, skip)
        names = ", ".join(a.description for luid, a in adapters.items() if luid not in skip)
        npu = " (+NPU Engine counters)" if NPU_ENGINE in pdh.counters else ""
        return reader, f"PDH: {names or 'GPU Engine counters'}{npu}"

    def read(self) -> dict[str, DeviceSample]:
        self.pdh.collect()
        usage = aggregate_engines(
            self.pdh.values(GPU_ENGINE),
            self.pdh.values(NPU_ENGINE),
            self.pdh.values(MEM_DEDICATED) + self.pdh.values(MEM_SHARED),
            adapters=self.adapters,
            skip_luids=self.skip_luids,
            known=self._known,
        )
        self._known.update({luid: u.is_npu for luid, u in usage.items()})
        return to_device_samples(usage, self.adapters)

    def close(self) -> None:
        self.pdh.close()
