"""Ranking a comparison's lanes (issue 13): fastest, smallest, most faithful, the trade-off front
and the recommendation for stated targets, from records alone; and the CLI's lines and chart on
the scripted backend. Milliseconds, but the CLI test (a subprocess) takes about a second."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from playground.backends.scripted_backend import ENABLE_ENV
from playground.bench.ranking import lane_figures, pareto_front, ranking_lines, recommend
from playground.engine.records import RunRecord
from playground.paths import REPO_ROOT


def record(backend: str, precision: str, decode: float, ttft: float, rss: float, *, ppl: float | None = None,
           agree: float | None = None, reference: bool = False, error: str = "") -> RunRecord:
    return RunRecord(backend, "CPU", precision, "demo", run=1, decode_tokens_per_s=decode, ttft_s=ttft,
                     peak_rss_mb=rss, perplexity=ppl, agreement_pct=agree, error=error,
                     agreement_note="reference" if reference else "")


LANES = [
    record("transformers", "fp32", 120, 0.020, 860, ppl=22.2, agree=100, reference=True),
    record("onnxruntime-genai", "int4", 1900, 0.007, 82, ppl=28.7, agree=40),
    record("openvino-genai", "int4", 450, 0.011, 143, agree=60),  # no logits: no perplexity
    record("llama.cpp", "Q8_0", 1400, 0.006, 150, ppl=22.3, agree=90),
    record("npu-library", "int4", 30, 0.300, 1000, ppl=90.0, agree=5),
]


def test_every_lane_is_judged_on_one_quality_measure() -> None:
    """With perplexity measured on some lanes, a lane without one is unknown on quality, not
    ranked by its agreement % against the others' perplexities (a 60 % would beat every -22)."""
    lines = "\n".join(ranking_lines(lane_figures(LANES)))
    assert "fastest decode: onnxruntime-genai CPU int4" in lines
    assert "fastest first token: llama.cpp CPU Q8_0" in lines
    assert "smallest: onnxruntime-genai CPU int4" in lines
    assert "most faithful (lowest perplexity): transformers CPU fp32" in lines
    front = {lane.lane for lane in pareto_front(lane_figures(LANES))}
    # ORT is fastest and smallest, transformers and llama.cpp the most faithful; npu-library and
    # openvino-genai (slower and bigger than ORT, and no better known quality) are beaten, and
    # openvino-genai, with no perplexity, cannot beat transformers though faster and smaller
    assert front == {"onnxruntime-genai CPU int4", "transformers CPU fp32", "llama.cpp CPU Q8_0"}


def test_without_perplexity_the_reference_is_the_yardstick_of_agreement() -> None:
    lanes = lane_figures([record("a", "fp32", 100, 0.02, 500, agree=100, reference=True),
                          record("b", "int4", 300, 0.01, 200, agree=95),
                          record("c", "int4", 400, 0.01, 200, agree=20)])
    lines = "\n".join(ranking_lines(lanes))
    assert "most faithful (agreement with the reference): b CPU int4" in lines  # not a, the yardstick


def test_the_recommendation_meets_the_targets_by_its_stated_rule() -> None:
    lanes = lane_figures(LANES)
    text = recommend(lanes, 0.05, 300)
    assert text.startswith("For TTFT under 0.05 s and at least 300 tok/s: llama.cpp CPU Q8_0"), text
    assert "the most faithful of the 3 lane(s)" in text
    assert "not meeting it: transformers CPU fp32 (decode 120.0 tok/s); npu-library CPU int4 (TTFT 0.30 s, " \
           "decode 30.0 tok/s)" in text
    assert recommend(lanes, 0.001, None).startswith("No lane meets TTFT under 0.001 s: ")
    failed = lane_figures([record("x", "int4", 0, 0, 0, error="boom"), LANES[0]])
    assert [lane.lane for lane in failed] == ["transformers CPU fp32"]  # a lane with no good run is left out


def test_the_cli_ranks_recommends_and_draws(tmp_path: Path) -> None:
    chart = tmp_path / "tradeoff.html"
    env = {**os.environ, ENABLE_ENV: "1", "PLAYGROUND_ONLY_BACKENDS": "scripted"}
    result = subprocess.run(
        [sys.executable, "-m", "playground.bench", "--backends", "scripted,scripted::load-slow", "--prompt",
         "tokens=20 delay=0.01 load-slow:delay=0.03", "--runs", "2", "--no-history", "--target-ttft", "1",
         "--target-decode", "50", "--chart", str(chart)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "fastest decode: scripted CPU scripted" in out and "trade-off front" in out
    assert "For TTFT under 1 s and at least 50 tok/s: scripted CPU scripted" in out
    assert "not meeting it: scripted CPU load-slow (decode" in out  # 30 ms between its tokens
    html = chart.read_text()
    assert "decode tok" in html and "trade-off front" in html and len(html) > 100_000
