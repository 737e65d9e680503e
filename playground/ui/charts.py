"""The live charts as plotly JSON: tokens/s per backend, and what the machine is doing.

Built as plain dicts and serialised once, not through ``plotly.graph_objects``: validating a
figure object and embedding its template took ~180 ms of the app's CPU per refresh on a 2-core
machine (both charts), while the backends were being measured; the dicts take about 1 ms and
the page parses a few KB instead of ~35 KB. The layout mirrors ``plotly_white``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gradio.components.plot import PlotData
from plotly.colors import qualitative

from playground.monitor import Sample
from playground.monitor.browser import LABEL as BROWSER_LABEL
from playground.monitor.shares import machine_share
from playground.ui.live import LaneView
from playground.ui.monitoring import APP_LABEL

HEIGHT = 420
PALETTE = qualitative.Plotly
# What showing the page costs, in fixed colors of their own (dotted: not a backend).
PAGE_COST_COLORS = {APP_LABEL: "#9ca3af", BROWSER_LABEL: "#a16207"}
GRID = "#EBF0F8"
AXIS = {"gridcolor": GRID, "zerolinecolor": GRID, "linecolor": GRID, "automargin": True}


def lane_colors(lanes: Sequence[LaneView]) -> dict[str, str]:
    """One color per backend in both charts, by name and by key (the monitor's labels)."""
    colors: dict[str, str] = {}
    for index, lane in enumerate(lanes):
        colors[lane.name] = colors[lane.key] = PALETTE[index % len(PALETTE)]
    return colors


def _figure(traces: list[dict], title: str, axes: dict[str, dict], legend_y: float = -0.2) -> PlotData:
    layout: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 14}, "x": 0.01},
        "height": HEIGHT,
        "margin": {"l": 55, "r": 10, "t": 40, "b": 10},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"color": "#2a3f5f"},
        "hovermode": "closest",
        "legend": {"orientation": "h", "yanchor": "top", "y": legend_y, "x": 0, "font": {"size": 11}},
        "uirevision": "keep",  # keep zoom / hidden traces across refreshes
        **{name: {**AXIS, **axis} for name, axis in axes.items()},
    }
    return PlotData(type="plotly", plot=json.dumps({"data": traces, "layout": layout}, separators=(",", ":")))


def _scatter(xs: list, ys: list, name: str, line: dict, **extra: Any) -> dict:
    return {"type": "scatter", "mode": "lines", "x": xs, "y": ys, "name": name, "line": line, **extra}


def tokens_figure(lanes: Sequence[LaneView]) -> PlotData:
    """Tokens/s against seconds since each backend's generate() began (engine clock)."""
    colors = lane_colors(lanes)
    traces = []
    for lane in lanes:
        series = lane.rates.series()
        traces.append(_scatter([round(t, 3) for t, _ in series], [round(rate, 2) for _, rate in series],
                               lane.name, {"color": colors[lane.key]},
                               mode="lines+markers" if len(series) < 3 else "lines"))
    return _figure(traces, "Generation speed", {
        "xaxis": {"title": {"text": "seconds since its generation started"}, "rangemode": "tozero"},
        "yaxis": {"title": {"text": "tokens / s (1 s window)"}, "rangemode": "tozero"},
    })


def utilization_figure(samples: Sequence[Sample], t0: float,
                       lanes: Sequence[LaneView] = ()) -> PlotData:
    """Total CPU, each worker's CPU (share of all cores) and memory, the app's and the browser's
    share (what the page costs), GPU / NPU when read. Top: CPU / device %, bottom: memory."""
    colors = lane_colors(lanes)
    times = [round(sample.t - t0, 2) for sample in samples]
    cpu_axes = {"xaxis": "x", "yaxis": "y"}
    mem_axes = {"xaxis": "x2", "yaxis": "y2"}
    traces = [_scatter(times, [round(s.cpu_percent, 1) for s in samples], "CPU total",
                       {"color": "#333", "width": 2}, **cpu_axes)]
    for index, label in enumerate(_keys(samples, "processes")):
        color = PAGE_COST_COLORS.get(label) or colors.get(label, PALETTE[index % len(PALETTE)])
        line = {"color": color, "dash": "dot" if label in PAGE_COST_COLORS else "solid"}
        points = [(t, s.processes[label]) for t, s in zip(times, samples, strict=True)
                  if label in s.processes]
        xs = [t for t, _ in points]
        shares = [machine_share(p.cpu_percent) for _, p in points]
        cpu = [None if share is None else round(share, 1) for share in shares]
        traces.append(_scatter(xs, cpu, label, line, legendgroup=label, **cpu_axes))
        traces.append(_scatter(xs, [round(p.rss_mb, 1) for _, p in points], f"{label} memory", line,
                               legendgroup=label, showlegend=False, **mem_axes))
    for name in _keys(samples, "devices"):
        points = [(t, s.devices[name]) for t, s in zip(times, samples, strict=True) if name in s.devices]
        utils = [(t, d.util_percent) for t, d in points if d.util_percent is not None]
        dashed = {"dash": "dash"}
        if utils:
            traces.append(_scatter([t for t, _ in utils], [u for _, u in utils], name, dashed,
                                   legendgroup=name, **cpu_axes))
        mems = [(t, d.mem_used_mb) for t, d in points if d.mem_used_mb is not None]
        if mems:
            traces.append(_scatter([t for t, _ in mems], [m for _, m in mems], f"{name} memory", dashed,
                                   legendgroup=name, showlegend=False, **mem_axes))
    return _figure(traces, "Machine utilization (workers: solid = CPU, below = memory; dotted: the page)", {
        "xaxis": {"anchor": "y", "domain": [0, 1], "matches": "x2", "showticklabels": False},
        "yaxis": {"anchor": "x", "domain": [0.44, 1.0], "range": [0, 105],
                  "title": {"text": "% of all cores"}},
        "xaxis2": {"anchor": "y2", "domain": [0, 1],
                   "title": {"text": "seconds since the comparison started"}},
        "yaxis2": {"anchor": "x2", "domain": [0, 0.36], "rangemode": "tozero",
                   "title": {"text": "memory (MB)"}},
    }, legend_y=-0.3)  # below the x-axis title


def _keys(samples: Sequence[Sample], attribute: str) -> list[str]:
    """Labels in order of first appearance (workers come and go during a sequential run)."""
    seen: dict[str, None] = {}
    for sample in samples:
        for key in getattr(sample, attribute):
            seen.setdefault(key, None)
    return list(seen)


@dataclass(frozen=True)
class ChartInput:
    """What every chart may draw from: the lanes, the monitor's samples since ``t0``, its note."""

    lanes: Sequence[LaneView] = ()
    samples: Sequence[Sample] = ()
    t0: float = 0.0
    monitor_note: str = ""


@dataclass(frozen=True)
class ChartSpec:
    """One chart on the page. ``CHARTS`` below is the only list: the page makes a plot (and a note
    under it when ``note`` is set) per entry, and the frames send them on the charts' cadence.
    ``locked``: the figure reads streaming lane data, so it is built under the run's lock."""

    key: str
    label: str
    elem_id: str
    figure: Callable[[ChartInput], PlotData]
    note: Callable[[ChartInput], str] | None = None
    note_elem_id: str = ""
    locked: bool = False


CHARTS: list[ChartSpec] = [
    ChartSpec("tokens", "Tokens/s", "tokens-chart", lambda data: tokens_figure(data.lanes), locked=True),
    ChartSpec("utilization", "Utilization", "util-chart",
              lambda data: utilization_figure(data.samples, data.t0, data.lanes),
              note=lambda data: data.monitor_note, note_elem_id="util-note"),
]
