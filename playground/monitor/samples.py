"""What one tick of the monitor records: plain dataclasses, cheap to keep 10 minutes of."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class DeviceSample:
    """One accelerator (GPU, NPU) at one instant.

    ``util_percent`` is the busiest engine's share of the interval (0..100), the headline number
    Task Manager and intel_gpu_top show; None when the reader has no interval yet.
    ``per_pid`` is each client process's share (same scale); the monitor turns it into
    ``ProcessSample.devices`` for watched workers and does not keep it in the history.
    """

    util_percent: float | None
    mem_used_mb: float | None = None
    engines: dict[str, float] = field(default_factory=dict)  # engine type -> util %
    per_pid: dict[int, float] = field(default_factory=dict)
    kind: str = "GPU"  # "GPU" | "NPU"


@dataclass(slots=True)
class ProcessSample:
    """A watched worker process. ``cpu_percent`` is psutil's (100 = one core busy, like top);
    None on the first tick after ``watch()`` when there is no interval to measure over yet."""

    pid: int
    cpu_percent: float | None
    rss_mb: float
    devices: dict[str, float] = field(default_factory=dict)  # device name -> this process's util %


@dataclass(slots=True)
class Sample:
    t: float  # time.time()
    cpu_percent: float  # whole system, 0..100
    cpu_per_core: list[float]
    mem_percent: float
    mem_used_mb: float  # total - available, the figure that matches mem_percent
    processes: dict[str, ProcessSample] = field(default_factory=dict)  # label -> sample
    devices: dict[str, DeviceSample] = field(default_factory=dict)  # device name -> sample


def clamp_percent(value: float) -> float:
    """Counters read a few microseconds apart can give 100.3 %; the UI wants 0..100."""
    return min(100.0, max(0.0, value))
