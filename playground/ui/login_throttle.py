"""The login check gradio calls (``launch(auth=...)``), made to resist guessing.

gradio compares a ``(user, password)`` pair at full speed: 200 wrong passwords took 0.22 s. Its
``auth`` may instead be a callable, which gets only the user name and password (not the client),
so the throttle counts failed logins for the whole app: the first ``free_failures`` within
``window_s`` cost nothing, then each further one locks the login for twice as long as the last (1,
2, 4 ... at most ``max_lockout_s`` seconds). While locked, every attempt, a right one too, gets HTTP
429 with the wait in its message, so a guesser gets a few dozen tries an hour instead of
thousands a second; the owner who mistyped waits seconds. Passwords are compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import HTTPException

log = logging.getLogger(__name__)


@dataclass
class LoginThrottle:
    users: dict[str, str]
    free_failures: int = 5
    window_s: float = 600.0
    max_lockout_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _failures: deque[float] = field(default_factory=deque)
    _locked_until: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, username: str, password: str) -> bool:
        """gradio's check: True to let in; raises HTTPException(429) while the login is locked."""
        with self._lock:
            now = self.clock()
            if now < self._locked_until:
                wait = math.ceil(self._locked_until - now)
                raise HTTPException(status_code=429, detail=f"Too many failed logins: try again in {wait} s.")
            expected = self.users.get(username)
            ok = expected is not None and hmac.compare_digest(password.encode(), expected.encode())
            if not ok:
                self._failed(now)
            return ok

    def _failed(self, now: float) -> None:
        self._failures.append(now)
        while self._failures and self._failures[0] < now - self.window_s:
            self._failures.popleft()
        over = len(self._failures) - self.free_failures
        if over > 0:
            lockout = min(2.0 ** (over - 1), self.max_lockout_s)
            self._locked_until = now + lockout
            log.warning("%d failed logins in %.0f min: login locked for %.0f s",
                        len(self._failures), self.window_s / 60, lockout)

    def locked_for(self) -> float:
        """Seconds until the next attempt is heard (0: now)."""
        return max(0.0, self._locked_until - self.clock())
