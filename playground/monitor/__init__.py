"""Live utilization of CPU, memory, watched worker processes, GPUs and NPUs for the UI plots.

``Monitor`` samples in a daemon thread into a ring buffer; device readers (NVML, Intel NPU
sysfs, Intel GPU DRM fdinfo, Windows PDH) are picked by probing, and ``Monitor.readers``
says why the missing ones are missing.
"""

from playground.monitor.base import ReaderStatus, UtilizationReader
from playground.monitor.detect import detect_readers
from playground.monitor.sampler import Monitor
from playground.monitor.samples import DeviceSample, ProcessSample, Sample

__all__ = [
    "DeviceSample",
    "Monitor",
    "ProcessSample",
    "ReaderStatus",
    "Sample",
    "UtilizationReader",
    "detect_readers",
]
