"""Session bookkeeping: which live run belongs to which browser tab (Stop, unload, the charts).

A session hash is chosen by the client, so it proves nothing: replaying the page's Stop with
another tab's hash, or opening and dropping a heartbeat under it (gradio's heartbeat needs no
login), would end that tab's run. So a run started by a logged-in user is bound to that user too:
Stop, a pre-start cancel and the unload reach it only from the same login.
"""

from __future__ import annotations

import threading

from playground.ui.live import LiveRun


class Sessions:
    """The live run of each browser session and who started it (``owner``: the login, or None)."""

    def __init__(self) -> None:
        self._runs: dict[str, tuple[LiveRun, str | None]] = {}
        self._cancelled: dict[str, str | None] = {}  # Stop pressed before the run got the machine: by whom
        self._lock = threading.Lock()

    def put(self, session: str, run: LiveRun, owner: str | None = None) -> None:
        with self._lock:
            self._runs[session] = (run, owner)

    def get(self, session: str) -> LiveRun | None:
        """The session's run whoever asks (read-only uses: the charts of the asking tab)."""
        with self._lock:
            found = self._runs.get(session)
            return found[0] if found else None

    def run_of(self, session: str, requester: str | None) -> LiveRun | None:
        """The session's run if ``requester`` may end it: the same login, or nobody's login."""
        with self._lock:
            found = self._runs.get(session)
        if found is None or (found[1] is not None and found[1] != requester):
            return None
        return found[0]

    def foreign(self, session: str, requester: str | None) -> bool:
        """The session holds a run that ``requester`` may not touch."""
        return self.get(session) is not None and self.run_of(session, requester) is None

    def drop(self, session: str, requester: str | None = None) -> None:
        with self._lock:
            found = self._runs.get(session)
            if found is not None and found[1] is not None and found[1] != requester:
                return
            self._runs.pop(session, None)
            self._cancelled.pop(session, None)

    def cancel(self, session: str, requester: str | None = None) -> None:
        with self._lock:
            self._cancelled[session] = requester

    def uncancel(self, session: str) -> None:
        with self._lock:
            self._cancelled.pop(session, None)

    def take_cancel(self, session: str, owner: str | None = None) -> bool:
        """Whether a Stop pressed before the run started applies to it (pressed by its owner)."""
        with self._lock:
            if session not in self._cancelled:
                return False
            requester = self._cancelled.pop(session)
            return owner is None or requester == owner
