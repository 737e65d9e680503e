"""A finished run's phases on one time axis, as small inline HTML bars for its panel.

The phases and the figures behind them are the engine's (``engine/records.py:PHASES``: conversion,
load/compile, prefill = TTFT, decode); this module only draws them. Widths are linear in seconds,
with a minimum so that a tiny phase stays visible; a phase that came from a cache took no time in
this run and says "cached"; each bar's tooltip has the exact seconds. No plotly figure and no timer:
the panel's Markdown carries it, drawn when the panel's text changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from playground.engine.records import PHASES, RunRecord

MIN_WIDTH_PCT = 3.0  # of the bar: a phase of a few ms beside seconds of decode is still seen
CACHED_NOTES = {
    "convert": "reused: from the conversion cache or a loaded worker",
    "load": "reused: the worker had the model loaded",
}


@dataclass(frozen=True)
class PhaseBar:
    """One drawn phase: its label, the seconds it took in this run (0 when cached) and, for a
    cached one, the seconds it took when it was done (None if unknown)."""

    label: str
    seconds: float
    cached: bool = False
    earlier_s: float | None = None


def phase_bars(record: RunRecord) -> list[PhaseBar]:
    """The record's phases that happened, in order (a phase whose figure is None is left out)."""
    bars = []
    for phase in PHASES:
        seconds = getattr(record, phase.seconds)
        flags = [getattr(record, name) for name in phase.cached]
        if seconds is None or (flags and flags[0] is None):
            continue
        cached = any(flags)
        if cached:
            bars.append(PhaseBar(phase.label, 0.0, cached=True, earlier_s=seconds or None))
        else:
            bars.append(PhaseBar(phase.label, max(float(seconds), 0.0)))
    return bars


def widths(seconds: Sequence[float], minimum: float = MIN_WIDTH_PCT) -> list[float]:
    """Percent widths summing to 100, linear in ``seconds``, none under ``minimum`` (the phases
    below it get exactly it, the others share the rest in proportion), so the order is kept."""
    if not seconds:
        return []
    small: set[int] = set()
    while True:
        rest = 100.0 - minimum * len(small)
        big_total = sum(s for i, s in enumerate(seconds) if i not in small)
        if big_total <= 0:
            return [100.0 / len(seconds)] * len(seconds)
        grown = small | {i for i, s in enumerate(seconds) if s / big_total * rest < minimum}
        if grown == small:
            return [minimum if i in small else s / big_total * rest for i, s in enumerate(seconds)]
        small = grown


def _short(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def _text(bar: PhaseBar) -> tuple[str, str]:
    """(the bar's label, its tooltip with the exact seconds)."""
    if not bar.cached:
        return f"{bar.label} {_short(bar.seconds)}", f"{bar.label}: {bar.seconds:.3f} s"
    note = CACHED_NOTES.get(bar.label, "from a cache")
    earlier = f"; it took {bar.earlier_s:.3f} s when it was done" if bar.earlier_s else ""
    return f"{bar.label} cached", f"{bar.label}: cached ({note}), 0 s in this run{earlier}"


def timeline_html(record: RunRecord) -> str:
    """One line of HTML: the bar of the record's phases and a legend under it ("" with no phase)."""
    bars = phase_bars(record)
    if not bars:
        return ""
    total = sum(bar.seconds for bar in bars)
    spans, legend = [], []
    for bar, width in zip(bars, widths([bar.seconds for bar in bars]), strict=True):
        label, tooltip = _text(bar)
        kind = f"phase phase-{bar.label}" + (" phase-cached" if bar.cached else "")
        spans.append(f'<span class="{kind}" style="width:{width:.1f}%" title="{tooltip}">{label}</span>')
        legend.append(f'<span class="phase-key phase-{bar.label}"></span>{label}')
    return (
        f'<div class="phase-timeline" title="this run\'s phases on one time axis: {total:.3f} s">'
        + "".join(spans)
        + '</div><div class="phase-legend">'
        + " · ".join(legend)
        + "</div>"
    )
