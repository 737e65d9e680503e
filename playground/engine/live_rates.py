"""Live figures of a run while it streams: tokens/s over the last second and the provisional TTFT.

Computed from the engine's own timestamps (``TokensEvent.elapsed_s``, measured in the worker), so
the page, the API and the CLI would all show the same numbers; the UI only formats them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RATE_WINDOW_S = 1.0  # tokens/s over the last second of engine time: smooth but still live


def rate_series(points: list[tuple[float, int]],
                window_s: float = RATE_WINDOW_S) -> list[tuple[float, float]]:
    """(elapsed_s, tokens/s over the preceding window) for every token batch after the first;
    ``points`` are (elapsed_s, tokens so far) in arrival order."""
    series = []
    start = 0
    for index, (t, count) in enumerate(points):
        while start < index and t - points[start][0] > window_s:
            start += 1
        t0, c0 = points[start]
        if index > start and t > t0:
            series.append((t, (count - c0) / (t - t0)))
    return series


def live_rate(points: list[tuple[float, int]], window_s: float = RATE_WINDOW_S) -> float | None:
    """The latest windowed rate, None before there are two batches."""
    series = rate_series(points, window_s)
    return series[-1][1] if series else None


@dataclass
class LiveRates:
    """One run's token batches as they arrive; ``first_tokens_s`` is the provisional TTFT (engine
    time of the first batch with tokens) until the record brings the measured one."""

    run: int = -1
    points: list[tuple[float, int]] = field(default_factory=list)  # (elapsed_s, tokens), this run
    first_tokens_s: float | None = None

    def add(self, run: int, elapsed_s: float, tokens: int) -> bool:
        """Fold one batch in; True when it starts a new run (the caller resets its text)."""
        fresh = run != self.run or (bool(self.points) and tokens < self.points[-1][1])
        if fresh:
            self.run, self.points, self.first_tokens_s = run, [], None
        if self.first_tokens_s is None and tokens > 0:
            self.first_tokens_s = elapsed_s
        self.points.append((elapsed_s, tokens))
        return fresh

    def series(self) -> list[tuple[float, float]]:
        return rate_series(self.points)

    def rate(self) -> float | None:
        return live_rate(self.points)
