"""Admit a lane's load only when its estimate fits, and stop a lane that outgrows the limit.

The comparison asks ``admit`` before a worker starts loading. Sequential mode asks for one
lane at a time (earlier lanes sit idle in the pool by then, and are freed first if their
memory is needed); parallel mode asks for each lane while the earlier ones are still loading,
so their estimates are reserved and the lanes are summed. A refusal is a message for that
lane's panel; the other lanes carry on. ``guard`` runs while lanes work: where the kernel does
not enforce the limit (no cgroup), a lane whose memory crosses it is killed by the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from playground.backends import backend_names, get_backend_class
from playground.engine.launcher import WorkerProcess
from playground.engine.memory import (
    Budget,
    MemoryEstimate,
    available_mb,
    conversion_folder,
    conversion_format,
    estimate,
    fmt_mb,
    make_budget,
    refusal_message,
    user_limit_mb,
)
from playground.engine.pool import PoolKey, WorkerPool
from playground.engine.records import BackendSpec
from playground.models.convert_cache import is_complete

LOW_MEMORY_MB = 256.0  # without a limit, the engine kills its largest lane before the OS has to
UNSUPPORTED = {("onnxruntime-genai", "cpu", "fp16")}  # precisions a device refuses anyway
REMOTE_CLIENT_MB = 150.0  # an endpoint lane's worker: python + the openai client (peak RSS 83 MB measured)


def estimate_lane(
    model_dir: Path, spec: BackendSpec, tokens: int
) -> tuple[MemoryEstimate, list[MemoryEstimate]]:
    """The lane's estimate at its precision, and at every other precision its backend offers."""
    cls = get_backend_class(spec.backend)
    if cls.runs_remotely:  # a server's lane holds no weights here: the worker is the HTTP client alone
        return MemoryEstimate(spec.backend, spec.precision or cls.default_precision, 0.0, 0.0,
                              REMOTE_CLIENT_MB, weights_source="on the server"), []
    device = spec.device or ""

    def one(precision: str) -> MemoryEstimate:
        converted = None
        if conversion_format(spec.backend, device, precision) is not None:  # gguf: no size model yet
            folder = conversion_folder(model_dir, spec.backend, device, precision)
            converted = folder if folder is not None and is_complete(folder) else None
        return estimate(model_dir, spec.backend, precision, device, tokens, converted=converted)

    precision = spec.precision or cls.default_precision
    others = [
        one(other)
        for other in cls.precisions
        if other != precision and (spec.backend, (device or "cpu").lower(), other) not in UNSUPPORTED
    ]
    return one(precision), others


def estimate_elsewhere(model_dir: Path, spec: BackendSpec, tokens: int) -> list[MemoryEstimate]:
    """Every other backend at its default precision: what to suggest when nothing here fits."""
    found = []
    for name in backend_names():
        if name != spec.backend:
            found.append(estimate_lane(model_dir, BackendSpec(name), tokens)[0])
    return found


@dataclass
class _Live:
    worker: WorkerProcess
    reserved_mb: float  # the estimate until the worker's own figure is larger


@dataclass
class MemoryGate:
    """Per comparison: the memory limit, what running lanes reserve, and the idle pool."""

    requested_limit_mb: float | None = None
    check: bool = True  # False: load whatever the estimate says (the guard still protects)
    pool: WorkerPool | None = None
    live: dict[str, _Live] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.limit_mb = user_limit_mb(self.requested_limit_mb)  # raises ValueError on nonsense

    def _held(self, exclude: str) -> tuple[float, float]:
        """(busy, pending): what running lanes hold or reserve, and the part not taken yet."""
        busy = pending = 0.0
        for key, entry in self.live.items():
            if key != exclude:
                rss = entry.worker.rss_mb()
                busy += max(entry.reserved_mb, rss)
                pending += max(entry.reserved_mb - rss, 0.0)
        return busy, pending

    def admit(
        self,
        lane: str,
        needed: MemoryEstimate,
        alternatives: list[MemoryEstimate],
        keep: Collection[PoolKey] = (),
        elsewhere: Callable[[], list[MemoryEstimate]] = list,
    ) -> tuple[str | None, str]:
        """(refusal message or None, a note for the panel, e.g. which idle workers were freed)."""
        busy, pending = self._held(exclude=lane)
        idle = self.pool.idle_rss_mb() if self.pool else 0.0
        budget = make_budget(self.limit_mb, busy, idle, pending)
        want = needed.total_mb
        if not self.check or want <= budget.free_mb(with_idle=False):
            return None, ""
        note = ""
        if self.pool is not None and want <= budget.free_mb(with_idle=True):
            freed = self.pool.free_idle(want - budget.free_mb(with_idle=False), set(keep))
            if freed:
                total = sum(mb for _, mb in freed)
                note = f"freed {fmt_mb(total)} held by {len(freed)} idle backend(s) to make room"
            budget = make_budget(self.limit_mb, busy, self.pool.idle_rss_mb(), pending)
            if want <= budget.free_mb(with_idle=False):
                return None, note
        free = budget.free_mb(with_idle=True)
        # Alone: the other lanes' memory back (what they hold now) and nothing reserved for them.
        alone = Budget(budget.available_mb + busy - pending, self.limit_mb, idle_mb=budget.idle_mb).free_mb()
        message = refusal_message(
            lane, needed, free, budget.describe(), alternatives, busy > 0 and want <= alone, elsewhere()
        )
        return message, note

    def started(self, lane: str, worker: WorkerProcess, reserved_mb: float) -> None:
        self.live[lane] = _Live(worker, reserved_mb)

    def ended(self, lane: str) -> None:
        self.live.pop(lane, None)

    def guard(self) -> list[tuple[str, str]]:
        """Lanes to kill now, with their panel message ("killed: out of memory (...)")."""
        if not self.live:
            return []
        # A worker with its own cgroup counts the kernel's charge, which its cgroup keeps under the
        # limit: alone it is left to the kernel; the guard catches lanes that cross it together.
        held = {key: entry.worker.held_mb() for key, entry in self.live.items()}
        if self.limit_mb is not None:
            total = sum(held.values())
            if total <= self.limit_mb:
                return []
            victim = max(held, key=lambda key: held[key])
            others = total - held[victim]
            also = f"; other backends held {others:.0f} MB" if others >= 1 else ""
            used = f"used {held[victim]:.0f} MB of the {self.limit_mb:.0f} MB limit{also}"
            return [(victim, f"killed: out of memory ({used})")]
        left = available_mb()
        if left >= LOW_MEMORY_MB:
            return []
        victim = max(held, key=lambda key: held[key])
        return [
            (
                victim,
                f"killed: out of memory (used {held[victim]:.0f} MB when the machine had only "
                f"{left:.0f} MB left)",
            )
        ]
