"""Each panel's phase timeline (issue 13): conversion, load, prefill and decode of a finished run on
one time axis, drawn from the records the engine made for the scripted backend (its ``converts``
precision goes through the real conversion cache). Fast layer: three comparisons, a few seconds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.pool import WorkerPool
from playground.engine.protocol import LaneState
from playground.engine.records import PHASES, BackendSpec, RunRecord
from playground.settings import GenerationSettings
from playground.ui.live import LaneView
from playground.ui.panels import metrics_markdown
from playground.ui.phases import MIN_WIDTH_PCT, phase_bars, timeline_html, widths

pytestmark = pytest.mark.usefixtures("scripted_backend")  # tests/conftest.py

PROMPT = "tokens=12 delay=0.03 first_delay=0.08 scripted:tokens=1"
BAR = re.compile(r'<span class="phase phase-(\w+)( phase-cached)?" style="width:([0-9.]+)%" title="([^"]+)">')


def records(pool: WorkerPool | None, *specs: str) -> list[RunRecord]:
    request = ComparisonRequest(
        prompts=[PROMPT],
        specs=[BackendSpec.parse(s) for s in specs],
        settings=GenerationSettings(max_new_tokens=64, stop_at_eos=False),
    )
    comparison = Comparison(request, pool=pool)
    list(comparison.events())
    assert comparison.records and all(r.ok for r in comparison.records), [r.error for r in comparison.records]
    return comparison.records


def drawn(record: RunRecord) -> dict[str, tuple[bool, float, str]]:
    """The panel's bars as the page gets them: phase -> (cached, width %, tooltip)."""
    view = LaneView(
        "k",
        record.backend,
        record.backend,
        record.device,
        record.precision,
        state=LaneState.DONE,
        record=record,
    )
    panel = metrics_markdown(view)
    assert panel.count('class="phase-timeline"') == 1, panel
    return {name: (bool(cached), float(width), title) for name, cached, width, title in BAR.findall(panel)}


def test_widths_are_linear_with_a_floor_and_keep_the_order() -> None:
    seconds = [0.0004, 2.0, 0.5, 10.0]
    shown = widths(seconds)
    assert sum(shown) == pytest.approx(100)
    assert shown[0] == MIN_WIDTH_PCT and min(shown) >= MIN_WIDTH_PCT
    assert sorted(range(4), key=lambda i: seconds[i]) == sorted(range(4), key=lambda i: shown[i])
    assert shown[3] / shown[1] == pytest.approx(5)  # linear above the floor, not log
    assert widths([]) == [] and widths([0.0, 0.0]) == [50, 50]


def test_the_panel_draws_each_runs_phases_from_its_record(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PLAYGROUND_CACHE", str(tmp_path))  # a cache of this test's own: converted once
    pool = WorkerPool()
    try:
        converted, plain = records(pool, "scripted::converts", "scripted")
        pooled = records(pool, "scripted::converts")[0]
    finally:
        pool.close_all()
    from_cache = records(None, "scripted::converts")[0]

    # A first conversion: all four phases, in order, widths ordered as the seconds are
    assert (
        converted.conversion_reused is False and converted.conversion_s >= 0.2 and not converted.load_reused
    )
    bars = drawn(converted)
    assert list(bars) == [phase.label for phase in PHASES] == ["convert", "load", "prefill", "decode"]
    assert not any(cached for cached, _, _ in bars.values())
    seconds = {
        "convert": converted.conversion_s,
        "load": converted.load_s,
        "prefill": converted.ttft_s,
        "decode": converted.decode_s,
    }
    by_seconds = sorted(seconds, key=seconds.get)
    assert [bars[name][1] for name in by_seconds] == sorted(bars[name][1] for name in by_seconds)
    assert sum(width for _, width, _ in bars.values()) == pytest.approx(100, abs=0.5)
    for name, value in seconds.items():
        assert f"{name}: {value:.3f} s" in bars[name][2]  # the exact seconds in the tooltip
    assert converted.decode_s == pytest.approx(11 * 0.03, rel=0.5) and converted.ttft_s >= 0.08

    # No conversion needed (conversion_reused None) and one token (decode_s None): those phases are absent
    assert plain.conversion_reused is None and plain.decode_s is None and plain.new_tokens == 1
    assert list(drawn(plain)) == ["load", "prefill"]

    # The pooled worker loaded (and converted) nothing in its comparison: both say "cached"
    assert pooled.load_reused is True
    bars = drawn(pooled)
    assert bars["convert"][0] and bars["load"][0] and not bars["decode"][0]
    assert bars["load"][1] == MIN_WIDTH_PCT and "cached" in bars["load"][2]
    assert f"it took {pooled.load_s:.3f} s when it was done" in bars["load"][2]
    html = timeline_html(pooled)
    assert ">convert cached<" in html and ">load cached<" in html

    # A new worker finds the conversion in the cache: converting is cached, loading is not
    assert (
        from_cache.conversion_reused is True and from_cache.conversion_s == 0 and not from_cache.load_reused
    )
    assert [bar.cached for bar in phase_bars(from_cache)] == [True, False, False, False]


def test_a_failed_run_draws_no_timeline() -> None:
    failed = RunRecord("scripted", "CPU", "scripted", "demo", error="boom")
    assert phase_bars(failed) == [] and timeline_html(failed) == ""
    view = LaneView("k", "scripted", "scripted", "CPU", "scripted", state=LaneState.ERROR, record=failed)
    assert "phase-timeline" not in metrics_markdown(view)
