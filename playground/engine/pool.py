"""Loaded workers kept between comparisons, so the next prompt skips loading the model.

The web app runs many prompts on the same selection; reloading torch and recompiling
OpenVINO models every time would make people wait seconds for nothing. Only the most
recent selection is kept, so memory does not pile up across selections.
"""

from __future__ import annotations

import threading

from playground.engine.launcher import WorkerProcess

PoolKey = tuple[str, ...]


class WorkerPool:
    def __init__(self) -> None:
        self._idle: dict[PoolKey, tuple[WorkerProcess, dict]] = {}
        self._lock = threading.Lock()

    def take(self, key: PoolKey) -> tuple[WorkerProcess, dict] | None:
        with self._lock:
            entry = self._idle.pop(key, None)
        if entry and entry[0].proc.poll() is not None:  # died while idle
            entry[0].close()
            return None
        return entry

    def give(self, key: PoolKey, worker: WorkerProcess, loaded: dict) -> None:
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

    def close_all(self) -> None:
        self.retain_only(set())
