"""Per-client limits of an untrusted page: comparisons waiting at once, and work per hour.

The per-comparison limit (``Policy.check_work``) does not stop one stranger from filling the shared
queue with comparisons, nor from running one after another all day: others would wait behind them
for hours. So on a shared, network or ``--public`` page each client may have ``max_jobs``
comparisons queued or running at a time, and ask for at most ``max_tokens`` generated tokens per
``window_s`` (counted as asked, like the per-comparison limit, so a refusal comes before the run).
A client is its login where there is one, else its address (``client_key``). The owner's own
loopback page and the CLI have no quota.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from playground.engine.parameters import SettingsError

DEFAULT_MAX_JOBS_PER_CLIENT = 2  # one running and one waiting its turn
DEFAULT_MAX_TOKENS_PER_CLIENT_HOUR = 65_536  # four comparisons at the per-comparison default
WINDOW_S = 3600.0


class QuotaExceeded(SettingsError):
    """A client's quota refuses this comparison; the message says which limit and when it frees."""


def client_key(username: str | None, address: str | None, forwarded_for: str | None = None,
               behind_proxy: bool = False) -> str:
    """Who is asking, for the quotas: the login, else the address. Behind a reverse proxy
    (``--public``) every client has the proxy's address, so the last ``X-Forwarded-For`` hop (the
    one the proxy itself added; earlier hops are the client's to forge) names the client."""
    if username:
        return f"user:{username}"
    if behind_proxy and forwarded_for:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if hops:
            return f"addr:{hops[-1][:64]}"
    return f"addr:{(address or 'unknown')[:64]}"


@dataclass
class ClientQuota:
    """``None`` turns a limit off. ``clock`` is injectable so tests need not wait an hour."""

    max_jobs: int | None = DEFAULT_MAX_JOBS_PER_CLIENT
    max_tokens: int | None = DEFAULT_MAX_TOKENS_PER_CLIENT_HOUR
    window_s: float = WINDOW_S
    clock: Callable[[], float] = time.monotonic
    _spent: dict[str, deque[tuple[float, int]]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check_jobs(self, client: str, pending: int) -> None:
        """Refuse one more comparison from ``client``, which has ``pending`` queued or running."""
        if self.max_jobs is not None and pending >= self.max_jobs:
            raise QuotaExceeded(
                f"You already have {pending} comparison(s) running or waiting on this machine; this page "
                f"allows {self.max_jobs} per user at a time. Wait for one to finish (whoever started "
                "the app sets this with `--max-jobs-per-client`)."
            )

    def used(self, client: str) -> int:
        """Tokens ``client`` asked for in the current window."""
        with self._lock:
            return sum(tokens for _, tokens in self._window(client))

    def charge(self, client: str, tokens: int) -> None:
        """Count ``tokens`` against ``client``'s window, or raise QuotaExceeded (nothing counted)."""
        if self.max_tokens is None:
            return
        with self._lock:
            window = self._window(client)
            used = sum(spent for _, spent in window)
            if tokens > self.max_tokens:
                raise QuotaExceeded(
                    f"This comparison could generate {tokens:,} tokens, more than the {self.max_tokens:,} "
                    "per hour this page allows each user. Ask for fewer (runs, warm-up, max new tokens or "
                    "lanes); whoever started the app sets this with `--max-tokens-per-client-hour`."
                )
            if used + tokens > self.max_tokens:
                free_in = (window[0][0] + self.window_s - self.clock()) if window else 0.0
                minutes = max(1, round(free_in / 60))
                raise QuotaExceeded(
                    f"This comparison could generate {tokens:,} tokens, and you have asked for {used:,} "
                    f"of your {self.max_tokens:,} per hour on this page; more frees up in about "
                    f"{minutes} min. Ask for fewer (runs, warm-up, max new tokens or lanes); whoever "
                    "started the app sets this with `--max-tokens-per-client-hour`."
                )
            window.append((self.clock(), tokens))

    def _window(self, client: str) -> deque[tuple[float, int]]:
        window = self._spent.setdefault(client, deque())
        horizon = self.clock() - self.window_s
        while window and window[0][0] <= horizon:
            window.popleft()
        if not window:  # a client gone for an hour is forgotten, so the dict cannot grow without bound
            self._spent.pop(client, None)
            window = self._spent.setdefault(client, deque())
        return window
