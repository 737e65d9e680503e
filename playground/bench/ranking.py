"""What a comparison's records say, lane by lane: fastest, smallest, most faithful, the trade-off
front, and which lane meets a user's stated targets ("TTFT under 1 s and at least 10 tok/s").

Computed from the measurements alone: a lane with no figure for a criterion is left out of it, and
the recommendation names the rule it applies. Quality is the held-out text's perplexity when it
was measured (lower is better; ``--perplexity``), else the answer's token agreement with the
reference lane over the comparison's prompts (``engine.answer_quality``: the mean over prompts of
each prompt's median over runs; higher is better; the reference itself is 100 % by definition, so
it is the yardstick, not a contender).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playground.bench.chart_files import ChartFile, write_figure
from playground.engine import stats
from playground.engine.answer_quality import by_name, lane_quality
from playground.engine.records import RunRecord, by_lane


@dataclass(frozen=True)
class LaneFigures:
    """One lane's medians over its successful runs (peak memory: the largest; agreement: the
    mean over the prompts of each prompt's median, ``engine.answer_quality``)."""

    lane: str  # backend device precision, as the tables show it
    decode_tokens_per_s: float | None
    ttft_s: float | None
    peak_rss_mb: float | None
    perplexity: float | None
    agreement_pct: float | None
    reference: bool  # the lane the others' answers were compared with

    def quality(self, by_perplexity: bool) -> float | None:
        """Higher is better, on one measure for every lane: -perplexity when any lane measured it
        (a lane without one is unknown), else agreement % (the reference, the yardstick, is 100)."""
        if by_perplexity:
            return None if self.perplexity is None else -self.perplexity
        return 100.0 if self.reference else self.agreement_pct


def lane_figures(records: Sequence[RunRecord]) -> list[LaneFigures]:
    figures = []
    quality = by_name(lane_quality(records))
    for (backend, device, precision), runs in by_lane(records).items():
        good = [r for r in runs if r.ok]
        if not good:
            continue
        memory = [r.peak_rss_mb for r in good if r.peak_rss_mb is not None]
        figures.append(LaneFigures(
            lane=" ".join(part for part in (backend, device, precision) if part),
            decode_tokens_per_s=stats.median([r.decode_tokens_per_s for r in good]),
            ttft_s=stats.median([r.ttft_s for r in good]),
            peak_rss_mb=max(memory) if memory else None,
            perplexity=stats.median([r.perplexity for r in good]),
            agreement_pct=(answers.mean_agreement_pct
                           if (answers := quality.get((backend, device, precision))) else None),
            reference=any(r.agreement_note.startswith("reference") for r in good),
        ))
    return figures


def uses_perplexity(lanes: Sequence[LaneFigures]) -> bool:
    return any(lane.perplexity is not None for lane in lanes)


def pareto_front(lanes: Sequence[LaneFigures]) -> list[LaneFigures]:
    """Lanes no other lane beats on decode speed, memory and quality at once (each at least as
    good, one better). A lane missing a figure another has (no perplexity: no logits) cannot beat
    that one; it can still be beaten on the figures it has."""
    by_perplexity = uses_perplexity(lanes)

    def at_least(a: LaneFigures, b: LaneFigures) -> tuple[bool, bool]:
        pairs = [(a.decode_tokens_per_s, b.decode_tokens_per_s, 1),
                 (a.quality(by_perplexity), b.quality(by_perplexity), 1),
                 (a.peak_rss_mb, b.peak_rss_mb, -1)]
        if any(x is None and y is not None for x, y, _ in pairs):
            return False, False  # a figure b has and a lacks: a is not known to be as good
        known = [(x * sign, y * sign) for x, y, sign in pairs if x is not None and y is not None]
        return all(x >= y for x, y in known), any(x > y for x, y in known)

    front = []
    for lane in lanes:
        beaten = False
        for other in lanes:
            if other is lane:
                continue
            as_good, better = at_least(other, lane)
            if as_good and better:
                beaten = True
                break
        if not beaten:
            front.append(lane)
    return front


def _best(lanes: Sequence[LaneFigures], figure: Callable[[LaneFigures], float | None],
          highest: bool) -> LaneFigures | None:
    present = [lane for lane in lanes if figure(lane) is not None]
    if not present:
        return None
    return (max if highest else min)(present, key=figure)


def _describe(lane: LaneFigures) -> str:
    parts = []
    if lane.ttft_s is not None:
        parts.append(f"TTFT {lane.ttft_s * 1000:,.0f} ms" if lane.ttft_s < 1 else f"TTFT {lane.ttft_s:.2f} s")
    if lane.decode_tokens_per_s is not None:
        parts.append(f"{lane.decode_tokens_per_s:,.1f} tok/s")
    if lane.peak_rss_mb is not None:
        parts.append(f"{lane.peak_rss_mb:,.0f} MB")
    if lane.perplexity is not None:
        parts.append(f"perplexity {lane.perplexity:.2f}")
    elif lane.agreement_pct is not None and not lane.reference:
        parts.append(f"{lane.agreement_pct:.0f} % agreement")
    return ", ".join(parts)


def ranking_lines(lanes: Sequence[LaneFigures]) -> list[str]:
    """Fastest (decode and first token), smallest, most faithful, and the trade-off front."""
    by_perplexity = uses_perplexity(lanes)
    # by agreement, the reference is the yardstick (100 % by definition), not a contender
    contenders = [lane for lane in lanes if by_perplexity or not lane.reference]
    lines = []
    for title, candidates, figure, highest in (
        ("fastest decode", lanes, lambda lane: lane.decode_tokens_per_s, True),
        ("fastest first token", lanes, lambda lane: lane.ttft_s, False),
        ("smallest", lanes, lambda lane: lane.peak_rss_mb, False),
        ("most faithful (lowest perplexity)" if by_perplexity
         else "most faithful (agreement with the reference)", contenders,
         lambda lane: lane.quality(by_perplexity), True),
    ):
        best = _best(candidates, figure, highest)
        if best is not None:
            lines.append(f"{title}: {best.lane} ({_describe(best)})")
    if len(lanes) > 1:
        lines.append("trade-off front (no lane is faster, smaller and more faithful at once): "
                     + "; ".join(lane.lane for lane in pareto_front(lanes)))
    return lines


def recommend(lanes: Sequence[LaneFigures], max_ttft_s: float | None, min_decode: float | None) -> str:
    """A sentence: which lane meets the targets, by the stated rule, and why the others do not."""
    wanted = " and ".join(filter(None, [
        f"TTFT under {max_ttft_s:g} s" if max_ttft_s is not None else "",
        f"at least {min_decode:g} tok/s" if min_decode is not None else "",
    ]))
    meeting, missing = [], []
    for lane in lanes:
        misses = []
        if max_ttft_s is not None and (lane.ttft_s is None or lane.ttft_s >= max_ttft_s):
            misses.append("TTFT " + ("unknown" if lane.ttft_s is None else f"{lane.ttft_s:.2f} s"))
        rate = lane.decode_tokens_per_s
        if min_decode is not None and (rate is None or rate < min_decode):
            misses.append("decode " + ("unknown" if rate is None else f"{rate:,.1f} tok/s"))
        (missing if misses else meeting).append((lane, misses))
    if not meeting:
        return f"No lane meets {wanted}: " + "; ".join(f"{lane.lane} ({', '.join(m)})" for lane, m in missing)
    by_perplexity = uses_perplexity(lanes)
    rule = "the most faithful" if any(lane.quality(by_perplexity) is not None for lane, _ in meeting) \
        else "the fastest"

    def order(item: tuple[LaneFigures, list[str]]) -> tuple:
        lane = item[0]
        measured = lane.quality(by_perplexity)
        quality = measured if measured is not None else float("-inf")
        return (-quality if rule == "the most faithful" else 0.0, -(lane.decode_tokens_per_s or 0.0),
                lane.peak_rss_mb or float("inf"))

    chosen = sorted(meeting, key=order)[0][0]
    text = (f"For {wanted}: {chosen.lane} ({_describe(chosen)}), {rule} of the {len(meeting)} lane(s) "
            "that meet it")
    others = [lane.lane for lane, _ in meeting if lane is not chosen]
    if others:
        text += f"; also meeting it: {', '.join(others)}"
    if missing:
        text += "; not meeting it: " + "; ".join(f"{lane.lane} ({', '.join(m)})" for lane, m in missing)
    return text + "."


def write_tradeoff_chart(lanes: Sequence[LaneFigures], path: Path, title: str) -> ChartFile:
    """``tradeoff_figure`` as a self-contained HTML file (plotly.js inside: it opens offline) or a
    PNG (``chart_files``)."""
    return write_figure(tradeoff_figure(lanes, title), path)


def tradeoff_figure(lanes: Sequence[LaneFigures], title: str) -> Any:
    """Decode speed against memory, one point per lane, coloured by quality, the front outlined
    (the CLI's file and the page's chart). A lane whose quality is unknown (no logits, nothing to
    compare with) is grey and says so: never coloured as if it had scored."""
    import plotly.graph_objects as go

    front = {lane.lane for lane in pareto_front(lanes)}
    perplexity = uses_perplexity(lanes)
    measure = "perplexity" if perplexity else "agreement %"

    def value(lane: LaneFigures) -> float | None:
        score = lane.quality(perplexity)
        return None if score is None else (-score if perplexity else score)

    figure = go.Figure()
    for known in (True, False):
        group = [lane for lane in lanes if (value(lane) is not None) is known]
        if not group:
            continue
        outline = [3 if lane.lane in front else 0 for lane in group]
        marker: dict[str, Any] = {"size": 16, "line": {"width": outline, "color": "crimson"}}
        if known:
            marker.update(color=[value(lane) for lane in group], showscale=True,
                          colorscale="Viridis_r" if perplexity else "Viridis", colorbar={"title": measure})
        else:
            marker["color"] = "#9ca3af"
        figure.add_trace(go.Scatter(
            x=[lane.peak_rss_mb for lane in group], y=[lane.decode_tokens_per_s for lane in group],
            mode="markers+text", text=[lane.lane for lane in group], textposition="top center",
            marker=marker, hovertext=[_describe(lane) for lane in group],
            name=f"{measure} measured" if known else f"{measure} unknown (grey)",
        ))
    memory = [lane.peak_rss_mb for lane in lanes if lane.peak_rss_mb is not None]
    if memory:  # room for the labels of the outermost points
        pad = max((max(memory) - min(memory)) * 0.2, 80.0)
        figure.update_xaxes(range=[max(min(memory) - pad, 0.0), max(memory) + pad])
    figure.update_layout(title=f"{title} (outlined: the trade-off front)", xaxis_title="peak memory (MB)",
                         yaxis_title="decode tok/s", height=560, width=900,
                         legend={"orientation": "h", "y": -0.15})
    return figure
