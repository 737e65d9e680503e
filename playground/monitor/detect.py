"""Pick the device readers that work on this machine, and say why the others do not."""

from __future__ import annotations

from playground.monitor.base import ReaderStatus, UtilizationReader
from playground.monitor.drm_fdinfo import DrmFdinfoReader
from playground.monitor.npu_sysfs import NpuSysfsReader
from playground.monitor.nvml import NvmlReader
from playground.monitor.pdh import NVIDIA_VENDOR_ID, PdhReader


def detect_readers() -> tuple[list[UtilizationReader], list[ReaderStatus]]:
    """Probe every reader; a probe that raises is reported, never propagated.

    When NVML covers the NVIDIA GPUs, PDH leaves them out so a GPU is not plotted twice.
    """
    readers: list[UtilizationReader] = []
    statuses: list[ReaderStatus] = []
    nvml_active = False
    for cls in (NvmlReader, NpuSysfsReader, DrmFdinfoReader, PdhReader):
        try:
            if cls is PdhReader and nvml_active:
                reader, reason = PdhReader.probe(exclude_vendor_ids=frozenset({NVIDIA_VENDOR_ID}))
            else:
                reader, reason = cls.probe()
        except Exception as exc:  # a broken driver must not take the app down
            reader, reason = None, f"{cls.name}: probe failed: {type(exc).__name__}: {exc}"
        statuses.append(ReaderStatus(cls.name, reader is not None, reason))
        if reader is not None:
            readers.append(reader)
            nvml_active = nvml_active or cls is NvmlReader
    return readers, statuses
