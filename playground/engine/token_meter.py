"""Timing of a generation inside the worker, on the token hot path.

Every call costs a clock read, a few additions and two list appends (the token ids, kept for
the answer-agreement check, and the arrival times, for the inter-token latencies); text is
shipped to the parent in batches every ``flush_interval`` seconds, so the engine never becomes
what is measured.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from itertools import pairwise

# (text since last flush, tokens so far, seconds since the generation started)
FlushFn = Callable[[str, int, float], None]


class TokenMeter:
    def __init__(self, flush: FlushFn, stop: threading.Event, flush_interval: float = 0.05) -> None:
        self._flush = flush
        self._stop = stop
        self._interval = flush_interval
        self._pieces: list[str] = []
        self.count = 0
        self.started = time.perf_counter()
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self._last_flush = self.started
        self.text_parts: list[str] = []
        self.ids: list[int] = []  # every generated token id, in order (sent with the result)
        self.arrivals: list[float] = []  # perf_counter of every token (a batch shares its time)

    def __call__(self, text: str, tokens: int, ids: Sequence[int] = ()) -> bool:
        now = time.perf_counter()
        first = False
        if tokens:
            if self.first_token_at is None:
                self.first_token_at = now
                first = True
            self.last_token_at = now
            self.count += tokens
            self.ids.extend(ids)
            if tokens == 1:
                self.arrivals.append(now)
            else:
                self.arrivals.extend([now] * tokens)
        if text:
            self._pieces.append(text)
        if first or now - self._last_flush >= self._interval:  # the first token goes out at once
            self.flush(now)
        return not self._stop.is_set()

    def flush(self, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        self._last_flush = now
        text = "".join(self._pieces)
        self._pieces.clear()
        self.text_parts.append(text)
        self._flush(text, self.count, now - self.started)

    def summary(self, finished_at: float) -> dict[str, float | None]:
        ttft = None if self.first_token_at is None else self.first_token_at - self.started
        decode = span = None
        if self.count > 1 and self.first_token_at is not None and self.last_token_at is not None:
            span = self.last_token_at - self.first_token_at
            decode = (self.count - 1) / span if span > 0 else None
        gaps = sorted(b - a for a, b in pairwise(self.arrivals))
        return {
            "ttft_s": ttft, "decode_tokens_per_s": decode, "decode_s": span,
            "e2e_s": finished_at - self.started,
            "itl_p50_ms": _ms(percentile(gaps, 50)), "itl_p90_ms": _ms(percentile(gaps, 90)),
            "itl_p99_ms": _ms(percentile(gaps, 99)),
            "token_times_ms": [round((at - self.started) * 1000, 2) for at in self.arrivals],
        }

    @property
    def text(self) -> str:
        return "".join(self.text_parts) + "".join(self._pieces)


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) of sorted values, interpolated between the two nearest ranks
    (numpy's default); None for no values."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
