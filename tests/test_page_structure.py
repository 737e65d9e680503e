"""The page's structure without a browser (fast): every declared chart (``charts.CHARTS``) becomes
a page component, an output of the run's stream and of the finish handler, and gets its figure in
a frame; adding one spec entry adds a chart."""

from __future__ import annotations

import json

import gradio as gr
import pytest

from playground.engine.comparison import ComparisonRequest
from playground.engine.events import StateEvent, TokensEvent
from playground.engine.protocol import LaneState
from playground.engine.records import BackendSpec
from playground.ui import AppOptions, charts, frames
from playground.ui.charts import ChartInput, ChartSpec, _figure, _scatter
from playground.ui.controller import Controller
from playground.ui.live import LiveRun
from playground.ui.monitoring import RunMonitor
from playground.ui.page import build_layout
from playground.ui.wiring import wire


def build():
    page = build_layout(AppOptions(), [], "test machine")
    controller = Controller(AppOptions(), [], RunMonitor())
    with page.blocks:
        wire(controller, page)
    return page, controller


def outputs_of(page, handler) -> list:
    """The output components of the listener whose function is ``handler``."""
    found = [fn for fn in page.blocks.fns.values() if getattr(fn.fn, "__func__", None) is handler.__func__]
    assert len(found) == 1, [fn.name for fn in page.blocks.fns.values()]
    return found[0].outputs


def live_run() -> LiveRun:
    """A comparison made (validated, model resolved) but never started: no worker runs."""
    request = ComparisonRequest(prompts=["hello"], specs=[BackendSpec("scripted")], model="demo")
    run = LiveRun(request)
    lane = next(iter(run.lanes.values()))
    for elapsed, tokens in [(0.1, 1), (0.4, 4), (0.7, 7), (1.0, 10)]:
        lane.apply(TokensEvent(lane=lane.key, run=1, text=" w", tokens=tokens, elapsed_s=elapsed))
    return run


def test_every_declared_chart_is_on_the_page_and_in_the_frames() -> None:
    page, controller = build()
    assert [chart.spec.key for chart in page.charts] == [spec.key for spec in charts.CHARTS]
    assert [chart.plot.elem_id for chart in page.charts] == ["tokens-chart", "util-chart"]
    assert [c.elem_id for c in page.chart_components()] == ["tokens-chart", "util-chart", "util-note"]
    stream, finish = outputs_of(page, controller.run_stream), outputs_of(page, controller.finish)
    for component in page.chart_components():
        assert component in stream and component in finish
    run = live_run()
    due = controller.frames.charts_due(run)
    assert list(due) == page.chart_components()
    tokens = json.loads(due[page.charts[0].plot].plot)["data"]
    assert tokens[0]["y"] == [10.0, 10.0, 10.0]  # the engine's live rate: 3 tokens per 0.3 s
    assert controller.frames.charts_due(run) == {}  # the cadence: not again within the second


def lanes_figure(data: ChartInput):
    return _figure([_scatter([0], [lane.tokens], lane.name, {}) for lane in data.lanes], "Tokens so far", {})


def test_one_spec_entry_adds_a_chart(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = ChartSpec("lanes", "Tokens so far", "lanes-chart", lanes_figure,
                      note=lambda data: f"{len(data.lanes)} lane(s)", note_elem_id="lanes-note")
    monkeypatch.setattr(charts, "CHARTS", [*charts.CHARTS, extra])
    page, controller = build()
    added = page.charts[-1]
    assert added.spec is extra and isinstance(added.plot, gr.Plot) and isinstance(added.note, gr.Markdown)
    assert (added.plot.elem_id, added.plot.label, added.note.elem_id) == ("lanes-chart", "Tokens so far",
                                                                           "lanes-note")
    assert added.plot in page.blocks.blocks.values()
    for handler in (controller.run_stream, controller.finish):
        outputs = outputs_of(page, handler)
        assert added.plot in outputs and added.note in outputs
    due = controller.frames.charts_due(live_run())
    assert json.loads(due[added.plot].plot)["data"][0]["y"] == [10]
    assert due[added.note] == "1 lane(s)"
    finish = controller.frames.charts(None)  # no run in this session: nothing is redrawn
    assert len(finish) == len(page.chart_components()) == 5


def test_page_is_built_with_keywords_and_one_form_mapping() -> None:
    page, _ = build()
    assert page.form_components() == list(page.form.values())  # zipped back by name, not position
    assert [c.elem_id for c in page.form_components()][:3] == ["prompt", "system-prompt", "model"]
    assert len(page.panels) == 6 and page.status.elem_id == "run-status"
    assert page.blocks.delete_cache == (900, 86400)  # gradio's served copies of downloads: a day


def test_fair_mode_charts_keep_their_15_s_in_the_pause_before_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both charts took the browser longer to redraw than the pause before a run lasts, so a fast
    backend's next run was drawn over; in the fair mode they keep the slow cadence in the pause."""
    _, controller = build()
    run = live_run()  # sequential (the fair mode) by default
    lane = next(iter(run.lanes.values()))
    lane.apply(StateEvent(lane=lane.key, state=LaneState.GENERATING))
    lane.streaming = False  # announced, in the pause before its tokens: nothing is timed yet
    assert run.generating_alone() and not run.measuring_alone()
    clock = [1000.0]
    monkeypatch.setattr(frames.time, "monotonic", lambda: clock[0])
    assert controller.frames.charts_due(run)  # never drawn: drawn now
    clock[0] += 2.0  # beyond the 1 s cadence, within the fair 15 s
    assert controller.frames.charts_due(run) == {}
    clock[0] += frames.FAIR_CHART_EVERY_S
    assert controller.frames.charts_due(run)
    run.comparison.request.mode = "parallel"  # all at once: nothing is timed alone, 1 s cadence
    clock[0] += frames.CHART_EVERY_S
    assert controller.frames.charts_due(run)
