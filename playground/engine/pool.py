"""Loaded workers kept between comparisons, so the next prompt skips loading the model.

The web app runs many prompts on the same selection; reloading torch and recompiling
OpenVINO models every time would make people wait seconds for nothing. Only the most
recent selection is kept, so memory does not pile up across selections; within a selection,
idle workers are freed when a load needs their memory (``free_idle``).
"""

from __future__ import annotations

import threading
from collections.abc import Collection

from playground.engine.launcher import WorkerProcess
from playground.engine.protocol import Loaded

PoolKey = tuple[str, ...]


class WorkerPool:
    def __init__(self) -> None:
        self._idle: dict[PoolKey, tuple[WorkerProcess, Loaded]] = {}
        self._lock = threading.Lock()

    def take(self, key: PoolKey) -> tuple[WorkerProcess, Loaded] | None:
        with self._lock:
            entry = self._idle.pop(key, None)
        if entry and entry[0].proc.poll() is not None:  # died while idle
            entry[0].close()
            return None
        return entry

    def give(self, key: PoolKey, worker: WorkerProcess, loaded: Loaded) -> None:
        with self._lock:
            previous = self._idle.pop(key, None)
            self._idle[key] = (worker, loaded)
        if previous:
            previous[0].close()

    def retain_only(self, keys: set[PoolKey]) -> None:
        with self._lock:
            dropped = [self._idle.pop(key) for key in list(self._idle) if key not in keys]
        for worker, _ in dropped:
            worker.close()

    def idle_pids(self) -> list[int]:
        with self._lock:
            return [worker.pid for worker, _ in self._idle.values()]

    def idle_rss_mb(self) -> float:
        """What the idle workers hold now (resident memory, sampled)."""
        with self._lock:
            workers = [worker for worker, _ in self._idle.values()]
        return sum(worker.rss_mb() for worker in workers)

    def free_idle(self, needed_mb: float, keep: Collection[PoolKey] = ()) -> list[tuple[str, float]]:
        """Close idle workers until ``needed_mb`` is released: first those not in ``keep`` (lanes
        that already ran), then the rest. Returns (label, MB) of each worker closed."""
        with self._lock:
            entries = [(key, worker) for key, (worker, _) in self._idle.items()]
        # Lanes that already ran first, the largest first: as few reloads as possible.
        held = {key: worker.rss_mb() for key, worker in entries}
        entries.sort(key=lambda entry: (entry[0] in keep, -held[entry[0]]))
        freed: list[tuple[str, float]] = []
        released = 0.0
        for key, worker in entries:
            if released >= needed_mb:
                break
            with self._lock:
                if self._idle.get(key, (None,))[0] is not worker:
                    continue  # taken meanwhile
                del self._idle[key]
            worker.close()
            released += held[key]
            freed.append((worker.label, held[key]))
        return freed

    def close_all(self) -> None:
        self.retain_only(set())
