"""Plotly figures for the live charts: tokens/s per backend, and what the machine is doing."""

from __future__ import annotations

import os
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from playground.monitor import Sample
from playground.ui.live import LaneView

HEIGHT = 420
PALETTE = qualitative.Plotly
CORES = os.cpu_count() or 1


def lane_colors(lanes: Sequence[LaneView]) -> dict[str, str]:
    """One color per backend in both charts, by name and by key (the monitor's labels)."""
    colors: dict[str, str] = {}
    for index, lane in enumerate(lanes):
        colors[lane.name] = colors[lane.key] = PALETTE[index % len(PALETTE)]
    return colors


def _layout(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 14}, "x": 0.01},
        height=HEIGHT,
        margin={"l": 55, "r": 10, "t": 40, "b": 10},
        template="plotly_white",
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0, "font": {"size": 11}},
        uirevision="keep",  # keep zoom / hidden traces across refreshes
    )
    return fig


def tokens_figure(lanes: Sequence[LaneView]) -> go.Figure:
    """Tokens/s against seconds since each backend's generate() began (engine clock)."""
    fig = go.Figure()
    colors = lane_colors(lanes)
    for lane in lanes:
        series = lane.rate_series()
        fig.add_trace(go.Scatter(
            x=[t for t, _ in series], y=[rate for _, rate in series],
            mode="lines+markers" if len(series) < 3 else "lines",
            name=lane.name, line={"color": colors[lane.key]},
        ))
    fig.update_xaxes(title_text="seconds since its generation started", rangemode="tozero")
    fig.update_yaxes(title_text="tokens / s (1 s window)", rangemode="tozero")
    return _layout(fig, "Generation speed")


def utilization_figure(samples: Sequence[Sample], t0: float,
                       lanes: Sequence[LaneView] = ()) -> go.Figure:
    """Total CPU, each worker's CPU (share of all cores) and memory, GPU / NPU when read."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.6, 0.4])
    colors = lane_colors(lanes)
    times = [sample.t - t0 for sample in samples]
    fig.add_trace(go.Scatter(x=times, y=[s.cpu_percent for s in samples], name="CPU total",
                             line={"color": "#333", "width": 2}), row=1, col=1)
    for index, label in enumerate(_keys(samples, "processes")):
        color = colors.get(label, PALETTE[index % len(PALETTE)])
        points = [(t, s.processes[label]) for t, s in zip(times, samples, strict=True)
                  if label in s.processes]
        xs = [t for t, _ in points]
        cpu = [None if p.cpu_percent is None else p.cpu_percent / CORES for _, p in points]
        fig.add_trace(go.Scatter(x=xs, y=cpu, name=label, legendgroup=label, line={"color": color}),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=xs, y=[p.rss_mb for _, p in points], name=f"{label} memory",
                                 legendgroup=label, showlegend=False, line={"color": color}),
                      row=2, col=1)
    for name in _keys(samples, "devices"):
        points = [(t, s.devices[name]) for t, s in zip(times, samples, strict=True) if name in s.devices]
        utils = [(t, d.util_percent) for t, d in points if d.util_percent is not None]
        if utils:
            fig.add_trace(go.Scatter(x=[t for t, _ in utils], y=[u for _, u in utils], name=name,
                                     legendgroup=name, line={"dash": "dash"}), row=1, col=1)
        mems = [(t, d.mem_used_mb) for t, d in points if d.mem_used_mb is not None]
        if mems:
            fig.add_trace(go.Scatter(x=[t for t, _ in mems], y=[m for _, m in mems],
                                     name=f"{name} memory", legendgroup=name, showlegend=False,
                                     line={"dash": "dash"}), row=2, col=1)
    fig.update_yaxes(title_text="% of all cores", range=[0, 105], row=1, col=1)
    fig.update_yaxes(title_text="memory (MB)", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="seconds since the comparison started", row=2, col=1)
    return _layout(fig, "Machine utilization (workers: solid = CPU, below = memory)")


def _keys(samples: Sequence[Sample], attribute: str) -> list[str]:
    """Labels in order of first appearance (workers come and go during a sequential run)."""
    seen: dict[str, None] = {}
    for sample in samples:
        for key in getattr(sample, attribute):
            seen.setdefault(key, None)
    return list(seen)
