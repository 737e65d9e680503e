"""Page updates: what each frame sends (lanes, status, charts) and how often.

The cadence here was tuned for measurement fidelity (README, "Fidelity"): every frame the page
draws takes memory bandwidth and cache from the run being timed, so a frame carries only what
changed, and while a backend is timed alone the text moves twice a second, its figures once a
second and the charts every five.
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr

from playground.ui.charts import ChartInput
from playground.ui.live import LiveRun
from playground.ui.monitoring import RunMonitor
from playground.ui.page import Page
from playground.ui.panels import header_markdown, metrics_markdown

UPDATE_INTERVAL_S = 0.1  # at most 10 page updates a second, whatever the backends do
# While a backend generates alone (the fair mode) every frame the page draws takes memory bandwidth
# and cache from the run being timed, even on a core of its own (pinning the browser away did not
# help on the 2-core machine; sending nothing while generating did). So text moves twice a second,
# the panel's figures once a second, and the charts only every few seconds.
FAIR_UPDATE_INTERVAL_S = 0.5
FAIR_METRICS_EVERY_S = 1.0
# The fair mode with a page: the engine pauses before each run while the page draws the last one's
# result, and the page sends nothing in a run's first quarter second (a short run is never drawn over).
PAGE_SETTLE_S = 0.5
PAGE_DRAW_S = 0.3  # the frame announcing the run always fits in
FAIR_FIRST_FRAME_S = 0.25
# Charts cost the browser a full plotly redraw each: once a second, and while a backend generates
# alone (its runs and the pauses between them) only every 15 s. Measured in headless Chromium on 2
# cores (scripted lane, fair mode): with the charts every 5 s the browser took 28-33 % of a core
# during a run, without them 18 % (13 % idle). Redrawing both charts took the renderer 0.4-0.6 s,
# longer than the pause before a run, so they are no longer redrawn in every pause: a fair
# comparison's charts move every 15 s and when a lane loads or the comparison ends.
CHART_EVERY_S = 1.0
FAIR_CHART_EVERY_S = 15.0


def update_interval(run: LiveRun) -> float:
    """The least time between two frames of ``run`` now (asked again before each frame)."""
    return FAIR_UPDATE_INTERVAL_S if run.measuring_alone() else UPDATE_INTERVAL_S


class Frames:
    """Builds the page's updates of one app: ``lanes`` (panels and status), ``charts_due``."""

    def __init__(self, page: Page, monitor: RunMonitor) -> None:
        self.page = page
        self.monitor = monitor

    def outputs(self) -> list[gr.components.Component]:
        """Every component a run's stream may update (the charts ride on it: no timer round trips
        while a backend is measured)."""
        page = self.page
        return [page.status, *page.panel_components(), page.table, page.quality, page.records, page.csv,
                page.json,
                *page.chart_components()]

    def lanes(self, run: LiveRun, shown: dict, first: bool) -> dict:
        """Only what changed since the last frame: the browser gets ~10 small diffs a second, and
        a component whose content is unchanged is not sent (nor re-rendered) at all."""
        page = self.page
        lanes = list(run.lanes.values())
        frame: dict = {}
        self._changed(frame, shown, page.status, self.progress(run))
        for index, panel in enumerate(page.panels):
            lane = lanes[index] if index < len(lanes) else None
            if lane is None:
                if first:
                    frame[panel.column] = gr.Column(visible=False)
                continue
            if first:
                frame[panel.column] = gr.Column(visible=True)
            if first or shown.get(lane.key) != lane.version:
                shown[lane.key] = lane.version
                self._changed(frame, shown, panel.header, header_markdown(lane))
                self._changed(frame, shown, panel.text, lane.text)
                # Live figures while a backend generates alone: once a second (the text streams on).
                now = time.monotonic()
                quiet = lane.state == "generating" and lane.streaming and run.measuring_alone()
                if (not quiet or shown.get((lane.key, "state")) != lane.state
                        or now - shown.get((lane.key, "metrics_at"), 0.0) >= FAIR_METRICS_EVERY_S):
                    shown[(lane.key, "state")], shown[(lane.key, "metrics_at")] = lane.state, now
                    self._changed(frame, shown, panel.metrics, metrics_markdown(lane))
                else:
                    shown[lane.key] = None  # metrics still owed: look at this lane again next frame
        return frame

    @staticmethod
    def _changed(frame: dict, shown: dict, component: Any, value: str) -> None:
        if shown.get(component) != value:
            shown[component] = frame[component] = value

    def progress(self, run: LiveRun) -> str:
        mode = "one after another" if run.comparison.request.mode == "sequential" else "all at once"
        if run.comparison.stopping:
            return "Stopping…"
        active = [f"{lane.label}: {lane.state}" for lane in run.lanes.values()
                  if lane.state not in ("queued", "done", "stopped", "error")]
        return f"Running {len(run.lanes)} backend(s) {mode}" + (f" — {', '.join(active)}" if active else "")

    def summary(self, run: LiveRun) -> str:
        lanes = list(run.lanes.values())
        failed = [lane for lane in lanes if lane.state == "error"]
        ok = len(lanes) - len(failed)
        if run.comparison.stopping:
            return "**Stopped.** Results so far are in the table below."
        flagged = sorted({r.backend for r in run.records if r.agreement_flag})
        warning = f" ⚠ Answer flagged as likely broken: {', '.join(flagged)}." if flagged else ""
        if failed:
            return (f"**Finished:** {ok} backend(s) ok, {len(failed)} with an error (see their panels)."
                    + warning)
        return f"**Finished:** {ok} backend(s), {len(run.records)} result row(s) added below." + warning

    def charts_due(self, run: LiveRun) -> dict:
        """Every chart when their cadence says so: slower while a backend generates alone, in the
        pause before each run too (redrawing two plotly charts took the browser longer than the
        pause on 2 cores, so the next run of a fast backend was drawn over)."""
        every = FAIR_CHART_EVERY_S if run.generating_alone() else CHART_EVERY_S
        now = time.monotonic()
        if now - run.charts_drawn_at < every:
            return {}
        run.charts_drawn_at = now
        return dict(zip(self.page.chart_components(), self.charts(run), strict=True))

    def charts(self, run: LiveRun | None) -> list:
        """One value per ``page.chart_components()``: each declared chart's figure (and note)."""
        components = self.page.chart_components()
        if run is None:
            return [gr.skip() for _ in components]
        samples, note = self.monitor.samples(run.started), self.monitor.describe()
        with run.lock:
            data = ChartInput(lanes=list(run.lanes.values()), samples=samples, t0=run.started,
                              monitor_note=note)
            locked = {chart.spec.key: chart.spec.figure(data)
                      for chart in self.page.charts if chart.spec.locked}
        values: list = []
        for chart in self.page.charts:
            spec = chart.spec
            values.append(locked[spec.key] if spec.locked else spec.figure(data))
            if chart.note is not None and spec.note is not None:
                values.append(spec.note(data))
        return values
