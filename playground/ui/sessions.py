"""Session bookkeeping: which live run belongs to which browser tab (Stop, unload, the charts)."""

from __future__ import annotations

import threading

from playground.ui.live import LiveRun


class Sessions:
    """The live run of each browser session, so Stop and the chart timer can find it."""

    def __init__(self) -> None:
        self._runs: dict[str, LiveRun] = {}
        self._cancelled: set[str] = set()  # Stop pressed before the run got the machine
        self._lock = threading.Lock()

    def put(self, session: str, run: LiveRun) -> None:
        with self._lock:
            self._runs[session] = run

    def get(self, session: str) -> LiveRun | None:
        with self._lock:
            return self._runs.get(session)

    def drop(self, session: str) -> None:
        with self._lock:
            self._runs.pop(session, None)
            self._cancelled.discard(session)

    def cancel(self, session: str) -> None:
        with self._lock:
            self._cancelled.add(session)

    def uncancel(self, session: str) -> None:
        with self._lock:
            self._cancelled.discard(session)

    def take_cancel(self, session: str) -> bool:
        with self._lock:
            cancelled = session in self._cancelled
            self._cancelled.discard(session)
            return cancelled
