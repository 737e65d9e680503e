"""The matrix (issue 13): every usable backend x device x precision from one model as one run,
with the plan (conversions, an estimate from this machine's history), progress, and the ranking.

The expansion and the estimate are milliseconds; the CLI runs on the scripted backend take about a
second each; one slow test runs a real matrix of two runtimes on the demo model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from playground.backends.base import BackendProbe, DeviceProbe
from playground.backends.scripted_backend import ENABLE_ENV
from playground.bench.matrix import (
    MatrixError,
    MatrixPlan,
    MatrixProgress,
    PlannedLane,
    expand,
    plan,
    with_own_files,
)
from playground.engine.events import StateEvent
from playground.engine.protocol import LaneState
from playground.engine.records import BackendSpec, RunRecord
from playground.paths import REPO_ROOT


def probe(
    name: str, devices: list[tuple[str, bool]], precisions: list[str], usable: bool = True
) -> BackendProbe:
    return BackendProbe(
        name,
        name,
        installed=usable,
        version="1",
        devices=[DeviceProbe(device, ok, "" if ok else f"no {device} here") for device, ok in devices],
        precisions=precisions,
        default_precision=precisions[0],
    )


PROBES = {
    "onnxruntime-genai": probe(
        "onnxruntime-genai", [("cpu", True), ("dml", False)], ["int4", "fp32", "fp16"]
    ),
    "llama.cpp": probe("llama.cpp", [("cpu", True), ("gpu", False)], ["auto", "Q4_K_M", "Q8_0"]),
    "openvino-genai": probe(
        "openvino-genai", [("CPU", True), ("GPU", True), ("NPU", False)], ["int4", "int8"]
    ),
    "npu-library": probe("npu-library", [("NPU", False)], ["int4"], usable=False),
}


def test_bare_names_expand_to_usable_devices_and_precisions_and_say_what_is_left_out() -> None:
    lanes, skipped = expand([BackendSpec(name) for name in PROBES], PROBES)
    assert [(s.backend, s.device, s.precision) for s in lanes] == [
        ("onnxruntime-genai", "cpu", "int4"),
        ("onnxruntime-genai", "cpu", "fp32"),  # cpu fp16: refused
        ("llama.cpp", "cpu", "Q4_K_M"),
        ("llama.cpp", "cpu", "Q8_0"),  # "auto" repeats one of them
        ("openvino-genai", "CPU", "int4"),
        ("openvino-genai", "CPU", "int8"),
        ("openvino-genai", "GPU", "int4"),
        ("openvino-genai", "GPU", "int8"),
    ]
    text = "\n".join(skipped)
    assert "onnxruntime-genai cpu fp16: the device refuses it" in text
    assert "onnxruntime-genai dml: no dml here" in text and "openvino-genai NPU: no NPU here" in text
    assert "npu-library:" in text  # not usable at all


def test_a_named_device_or_precision_narrows_the_expansion() -> None:
    lanes, _ = expand([BackendSpec("openvino-genai", "gpu"), BackendSpec("llama.cpp", "", "Q8_0")], PROBES)
    assert [s.key for s in lanes] == [
        "openvino-genai@GPU:int4",
        "openvino-genai@GPU:int8",
        "llama.cpp@cpu:Q8_0",
    ]
    lanes, skipped = expand([BackendSpec("openvino-genai", "NPU")], PROBES)
    assert lanes == [] and skipped == ["openvino-genai NPU: not a usable device here"]
    with pytest.raises(MatrixError, match="Unknown backend 'nope'"):
        expand([BackendSpec("nope")], PROBES)


def history_record(
    precision: str, *, load: float, ttft: float, decode: float, convert: float = 0.0
) -> RunRecord:
    return RunRecord(
        "onnxruntime-genai",
        "cpu",
        precision,
        "demo",
        load_s=load,
        ttft_s=ttft,
        decode_tokens_per_s=decode,
        conversion_s=convert,
        conversion_reused=convert == 0.0,
    )


def test_the_estimate_comes_from_the_lanes_own_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """int4 ran here before (load 2 s, 10 ms TTFT, 100 tok/s, converted once in 30 s); fp32 never
    did: it is counted as unknown, not guessed."""
    monkeypatch.setenv("PLAYGROUND_CACHE", str(tmp_path / "cache"))  # an empty conversion cache
    history = [
        history_record("int4", load=2.0, ttft=0.01, decode=100.0, convert=30.0),
        history_record("int4", load=2.0, ttft=0.01, decode=100.0),
    ]
    lanes = [BackendSpec("onnxruntime-genai", "cpu", "int4"), BackendSpec("onnxruntime-genai", "cpu", "fp32")]
    made = plan(tmp_path, lanes, history, runs=4, new_tokens=100, scoring=False)
    int4, fp32 = made.lanes
    assert int4.converts is True and fp32.converts is True
    assert int4.estimate_s == pytest.approx(30.0 + 2.0 + 4 * (0.01 + 1.0))
    assert fp32.estimate_s is None
    assert made.known_estimate() == (pytest.approx(int4.estimate_s), 1)
    assert "2 convert first" in made.summary() and "plus 1 lane(s) never run here" in made.summary()


def test_progress_reestimates_from_the_lanes_measured_in_this_run() -> None:
    now = [0.0]
    lanes = [
        PlannedLane(BackendSpec("a", "cpu", "x"), None, None),
        PlannedLane(BackendSpec("b", "cpu", "y"), True, None),
        PlannedLane(BackendSpec("c", "cpu", "z"), None, 600.0),
    ]
    progress = MatrixProgress(MatrixPlan(lanes), clock=lambda: now[0])
    assert progress.observe(StateEvent("a@cpu:x", LaneState.STARTING, "")) == "matrix: lane 1/3 a cpu x"
    now[0] = 50.0
    line = progress.observe(StateEvent("a@cpu:x", LaneState.DONE, ""))
    # b has no history: the 50 s lane measured so far stands in for it; c keeps its own 600 s
    assert line == "matrix: lane 1/3 a cpu x done in 50 s; about 11 min left"
    assert (
        progress.observe(StateEvent("b@cpu:y", LaneState.CONVERTING, ""))
        == "matrix: lane 2/3 b cpu y (converts first)"
    )
    assert progress.observe(StateEvent("zz@cpu:q", LaneState.DONE, "")) is None  # not a matrix lane


def run_cli(args: list[str], data_dir: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        ENABLE_ENV: "1",
        "PLAYGROUND_ONLY_BACKENDS": "scripted",
        "PLAYGROUND_DATA_DIR": str(data_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "playground.bench", "--matrix", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_runs_the_matrix_plans_it_from_history_and_ranks_it(tmp_path: Path) -> None:
    """Three scripted lanes, one failing to load: the others are measured and ranked, and the second
    matrix estimates its time from the first one's records."""
    lanes = "scripted::scripted,scripted::load-slow,scripted::load-fails"
    prompt = "tokens=12 delay=0.01 load-slow:delay=0.03 perplexity=5"
    first = run_cli(
        ["--backends", lanes, "--prompt", prompt, "--runs", "1", "--warmup", "0", "--target-decode", "50"],
        tmp_path,
    )
    assert first.returncode == 1, first.stderr[-3000:]  # one lane failed, and says so
    err, out = first.stderr, first.stdout
    assert "matrix: 3 lanes" in err and "no history of this model on this machine" in err
    assert (
        "matrix: lane 1/3 scripted CPU scripted" in err
        and "matrix: lane 3/3 scripted CPU load-fails error" in err
    )
    assert "fastest decode: scripted CPU scripted" in out
    assert "For at least 50 tok/s: scripted CPU scripted" in out
    assert "ppl" in out  # the matrix measures perplexity without being asked

    second = run_cli(
        ["--backends", lanes, "--prompt", prompt, "--runs", "1", "--warmup", "0", "--no-quality"], tmp_path
    )
    late = second.stderr
    assert "estimated" in late and "from this machine's history" in late, late[-2000:]
    assert "plus 1 lane(s) never run here" in second.stderr  # the failed lane has no good record


def test_the_cli_refuses_a_matrix_it_cannot_run(tmp_path: Path) -> None:
    both = run_cli(["--backends", "scripted", "--sweep", "128"], tmp_path)
    assert both.returncode == 2 and "use one at a time" in both.stderr
    raced = run_cli(["--backends", "scripted", "--mode", "parallel"], tmp_path)
    assert raced.returncode == 2 and "one after another" in raced.stderr and "sequential" in raced.stderr


@pytest.mark.slow
def test_a_real_matrix_of_two_runtimes_on_the_demo_model(tmp_path: Path) -> None:
    """transformers (fp32, bf16, fp16) and ORT GenAI (int4, fp32; fp16 refused on CPU) on the demo
    model: every lane measured, perplexity where the runtime has logits, ranked; the chart written."""
    chart = tmp_path / "matrix.html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "playground.bench",
            "--matrix",
            "--backends",
            "transformers,onnxruntime-genai",
            "--model",
            "demo",
            "--max-new-tokens",
            "16",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--no-history",
            "--target-ttft",
            "5",
            "--chart",
            str(chart),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PLAYGROUND_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out, err = result.stdout, result.stderr
    assert "matrix: 5 lanes" in err and "left out onnxruntime-genai cpu fp16: the device refuses it" in err
    for index in range(1, 6):
        assert f"matrix: lane {index}/5 " in err
    rows = [line for line in out.splitlines() if line.startswith(("transformers ", "onnxruntime-genai "))]
    assert len(rows) == 5, out
    assert "most faithful (lowest perplexity):" in out and "For TTFT under 5 s:" in out
    assert chart.is_file() and "trade-off front" in chart.read_text()


def test_the_plan_finds_conversions_under_the_exporters_own_names() -> None:
    """OpenVINO's int4 recipe picks a group size per model (SmolLM2's 576-wide layers: 64), and the
    cache keeps it as "int4-g64": the plan (and the memory estimate) must look there, not "int4"."""
    from playground.engine.memory import conversion_folder
    from playground.models.catalog import SMOLLM2
    from playground.models.exporters import openvino_recipe

    if not SMOLLM2.is_ready():
        pytest.skip(reason=f"SmolLM2 is not set up here: {SMOLLM2.setup_hint}")
    model = SMOLLM2.folder
    assert openvino_recipe(model, "int4")[0] == "int4-g64"
    folder = conversion_folder(model, "openvino-genai", "CPU", "int4")
    assert folder is not None and folder.name.endswith("-int4-g64")
    assert conversion_folder(model, "llama.cpp", "cpu", "Q8_0").name.endswith("-Q8_0")
    assert conversion_folder(model, "llama.cpp", "cpu", "auto") is None  # the model's own GGUF
    assert conversion_folder(model, "transformers", "cpu", "fp32") is None
    given = [BackendSpec("llama.cpp", "cpu", "Q8_0"), BackendSpec("transformers", "cpu", "fp32")]
    keys = [lane.key for lane in with_own_files(given, model)]
    assert keys == ["llama.cpp@cpu:Q8_0", "llama.cpp@cpu:auto", "transformers@cpu:fp32"]


def test_the_tradeoff_chart_never_colours_an_unknown_quality_as_a_score() -> None:
    """OpenVINO GenAI has no logits: in a chart coloured by perplexity its point is grey and named
    unknown (it was drawn as perplexity 0, the best colour, before)."""
    from playground.bench.ranking import lane_figures, tradeoff_figure

    def run(backend: str, rss: float, ppl: float | None) -> RunRecord:
        return RunRecord(backend, "CPU", "int4", "smollm2", run=1, decode_tokens_per_s=30.0, ttft_s=0.1,
                         peak_rss_mb=rss, perplexity=ppl)

    records = [run("a", 300, 22.2), run("b", 400, 26.5), run("openvino-genai", 350, None)]
    figure = tradeoff_figure(lane_figures(records), "t")
    known, unknown = figure.data
    assert list(known.marker.color) == [22.2, 26.5] and list(known.text) == ["a CPU int4", "b CPU int4"]
    assert list(unknown.text) == ["openvino-genai CPU int4"] and unknown.marker.color == "#9ca3af"
    assert "unknown" in unknown.name
    low, high = figure.layout.xaxis.range
    assert low < 300 and high > 400  # room for the outermost labels


def test_the_sweep_chart_draws_a_lane_in_one_colour_in_both_plots() -> None:
    """The page's sweep of two lanes drew the decode lines in the third and fourth colours, which
    the legend (prefill's) did not name: a reader matched them to the wrong runtimes."""
    from playground.bench.sweep import sweep_figure

    rows = [{"backend": b, "device": "CPU", "precision": "int4", "prompt_tokens": n,
             "prefill_tokens_per_s": 100.0, "decode_tokens_per_s": 10.0}
            for b in ("a", "b") for n in (128, 512)]
    traces = sweep_figure(rows, "t").data
    colours = {(t.name, t.xaxis): t.line.color for t in traces}
    assert colours[("a CPU int4", "x")] == colours[("a CPU int4", "x2")]
    assert colours[("b CPU int4", "x")] == colours[("b CPU int4", "x2")]
    assert colours[("a CPU int4", "x")] != colours[("b CPU int4", "x")]


def test_each_backend_names_its_conversion_folder_as_its_exporter_does(tmp_path: Path) -> None:
    """The plan and the memory estimate ask the backend where its conversion is (no list of
    backends elsewhere): ORT GenAI's int4 build of a model whose layers 32 does not divide is
    built with block 16 and cached as "int4-b16-cpu", OpenVINO's int4 with group 64 as
    "int4-g64"; the NPU's int4 is an export of its own; llama.cpp's "auto" converts nothing."""
    import json

    from playground.engine.memory import conversion_folder, conversion_format

    model = tmp_path / "odd-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"hidden_size": 80, "num_attention_heads": 5,
                                                   "intermediate_size": 192}))
    assert conversion_folder(model, "onnxruntime-genai", "cpu", "int4").name.endswith("-int4-b16-cpu")
    assert conversion_folder(model, "onnxruntime-genai", "cpu", "fp32").name.endswith("-fp32-cpu")
    assert conversion_folder(model, "openvino-genai", "CPU", "int4").name.endswith("-int4-gadjust")
    assert conversion_folder(model, "openvino-genai", "NPU", "int4").name.endswith("-int4-npu")
    assert conversion_folder(model, "optimum-intel", "CPU", "int8").name.endswith("-int8")
    assert conversion_folder(model, "llama.cpp", "cpu", "auto") is None
    assert conversion_folder(model, "no-such-backend", "cpu", "int4") is None
    # the memory model sizes the exporters' formats only (a GGUF quantisation: not yet)
    assert conversion_format("openvino-genai", "NPU", "int4") == ("openvino", "int4-npu")
    assert conversion_format("llama.cpp", "cpu", "Q8_0") is None
    unreadable = tmp_path / "no-config"
    unreadable.mkdir()
    assert conversion_folder(unreadable, "onnxruntime-genai", "cpu", "int4").name.endswith("-int4-cpu")
