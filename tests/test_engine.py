"""The comparison engine, for real: every backend loads the demo model in its own worker."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from playground.engine.comparison import Comparison, ComparisonRequest, run_comparison
from playground.engine.contention import busy_threshold
from playground.engine.events import LaneEvent
from playground.engine.policy import Policy
from playground.engine.pool import WorkerPool
from playground.engine.records import BackendSpec, RunRecord
from playground.engine.threads import thread_budget
from playground.models.resolve import ModelNotFoundError, needs_download
from playground.models.tokens import count_prompt_tokens
from playground.paths import DEMO_MODEL_DIR, REPO_ROOT
from playground.settings import GenerationSettings, SettingsError

ENGINE_BACKENDS = ("transformers", "openvino-genai", "optimum-intel", "onnxruntime-genai")
NPU_LIBRARY_INSTALLED = importlib.util.find_spec("intel_npu_acceleration_library") is not None
# The fifth backend joins the same comparison when its set-up step has run.
ALL_BACKENDS = ENGINE_BACKENDS + (("npu-library",) if NPU_LIBRARY_INSTALLED else ())
PROMPT = "What is the for statement?"


def collect(request: ComparisonRequest, **kwargs) -> tuple[Comparison, list[LaneEvent]]:
    comparison = Comparison(request, **kwargs)
    return comparison, list(comparison.events())


@pytest.fixture(scope="module")
def all_backends() -> tuple[Comparison, list[LaneEvent]]:
    """One greedy comparison of every backend, two measured runs each."""
    request = ComparisonRequest(
        prompts=[PROMPT],
        specs=[BackendSpec(name) for name in ALL_BACKENDS],
        settings=GenerationSettings(max_new_tokens=24, stop_at_eos=False),
        warmup=1,
        runs=2,
    )
    return collect(request)


def records_of(comparison: Comparison, backend: str) -> list[RunRecord]:
    return [r for r in comparison.records if r.backend == backend]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_backend_streams_text_and_measures(all_backends, backend: str) -> None:
    comparison, events = all_backends
    records = records_of(comparison, backend)
    assert [r.run for r in records] == [1, 2], [r.error for r in records]
    lane = next(e.lane for e in events if e.lane.startswith(backend + "@"))
    streamed = [e for e in events if e.lane == lane and e.kind == "tokens"]
    for record in records:
        assert record.ok, record.error
        assert record.text.strip(), "no text streamed"
        assert record.new_tokens == 24  # stop_at_eos=False forces the full length
        assert 0 < record.ttft_s <= record.e2e_s
        assert record.decode_tokens_per_s and record.decode_tokens_per_s > 1
        # decode rate is tokens after the first over the time after the first
        assert record.decode_tokens_per_s * (record.e2e_s - record.ttft_s) >= (24 - 1) * 0.9
        assert record.load_s is not None and record.load_s > 0
        assert 10 < record.peak_rss_mb < 8000
        assert record.prompt_tokens == count_prompt_tokens(DEMO_MODEL_DIR, comparison.prompts[0].templated)
    # the text the panel shows is the text recorded, batch by batch
    measured_runs = [e for e in streamed if e.run == 1]
    assert "".join(e.text for e in measured_runs) == records[0].text
    assert measured_runs[-1].tokens == 24
    # greedy decoding is repeatable
    assert records[0].text == records[1].text


@pytest.mark.slow
def test_runtimes_agree_on_prompt_tokens(all_backends) -> None:
    comparison, _ = all_backends
    counts = {r.backend: r.prompt_tokens for r in comparison.records}
    assert len(set(counts.values())) == 1, counts


@pytest.mark.slow
def test_every_run_is_compared_with_the_fp32_reference(all_backends) -> None:
    """Auto reference = transformers fp32; the ids streamed are the text streamed."""
    comparison, _ = all_backends
    tokenizer = Tokenizer.from_file(str(DEMO_MODEL_DIR / "tokenizer.json"))
    assert {r.reference for r in comparison.records} == {"transformers:cpu:fp32"}
    for record in comparison.records:
        assert len(record.token_ids) == record.new_tokens == 24, record.backend
        assert tokenizer.decode(record.token_ids, skip_special_tokens=True) == record.text, record.backend
        if record.backend == "transformers":
            assert (record.agreement_pct, record.first_divergence, record.agreement_note) == (
                100.0, None, "reference")
            assert not record.agreement_flag
            continue
        assert 0 <= record.agreement_pct <= 100 and 0 <= record.text_similarity <= 1
        assert (record.agreement_pct == 100) == (record.first_divergence is None)
        assert record.first_divergence is None or 0 <= record.first_divergence < 24
    # greedy runs repeat, and so do their figures
    for backend in ALL_BACKENDS:
        first, second = records_of(comparison, backend)
        assert (first.agreement_pct, first.text_similarity) == (second.agreement_pct, second.text_similarity)


@pytest.mark.slow
@pytest.mark.skipif(not NPU_LIBRARY_INSTALLED, reason="run `python scripts/install_npu_library.py` first")
def test_npu_library_is_labelled_as_its_cpu_fallback(all_backends) -> None:
    comparison, _ = all_backends
    records = records_of(comparison, "npu-library")
    notes = {r.device_note for r in records}
    expected = "NPU present" if Path("/dev/accel").exists() else "no NPU: CPU fallback"
    assert notes == {expected}
    # the result says where it really ran; "NPU" stays the requested device
    ran_on = "NPU" if expected == "NPU present" else "CPU (NPU library fallback)"
    assert {r.device for r in records} == {ran_on}


@pytest.mark.slow
def test_records_say_how_they_were_measured(all_backends) -> None:
    """Thread budget, runtime versions, no page attached headless, others' share of the CPU."""
    comparison, _ = all_backends
    budget = thread_budget()
    for record in comparison.records:
        assert record.threads == (budget or os.cpu_count()), record.backend
        assert record.versions and "python" in record.versions, record.backend
        assert record.page_attached is False
        assert record.other_cpu_percent is None or 0 <= record.other_cpu_percent <= 100
        assert record.busy_machine == (record.other_cpu_percent is not None
                                       and record.other_cpu_percent > busy_threshold(record.threads))
    versions = {r.backend: r.versions for r in comparison.records}
    assert versions["transformers"].startswith("transformers ") and "torch" in versions["transformers"]
    assert versions["onnxruntime-genai"].startswith("onnxruntime-genai ")


@pytest.mark.slow
def test_lanes_report_progress_states(all_backends) -> None:
    _, events = all_backends
    for backend in ALL_BACKENDS:
        states = [e.state for e in events if e.kind == "state" and e.lane.startswith(backend + "@")]
        assert states[0] == "queued" and states[-1] == "done", states
        assert "loading" in states and "generating" in states


@pytest.mark.slow
def test_conversion_is_reused_from_cache(all_backends) -> None:
    """The module fixture converted already; a second load must not convert again."""
    _, events = collect(
        ComparisonRequest(
            prompts=[PROMPT],
            specs=[BackendSpec("openvino-genai"), BackendSpec("onnxruntime-genai")],
            settings=GenerationSettings(max_new_tokens=4),
        )
    )
    messages = [e.message for e in events if e.kind == "state"]
    assert sum("Using cached" in m for m in messages) == 2, messages
    assert not any(m.startswith("Converting") for m in messages)


@pytest.mark.slow
def test_sampling_with_a_seed_is_repeatable() -> None:
    settings = GenerationSettings(max_new_tokens=24, do_sample=True, temperature=1.0, top_p=0.95, seed=7)
    request = ComparisonRequest(
        prompts=[PROMPT],
        specs=[BackendSpec("onnxruntime-genai"), BackendSpec("openvino-genai")],
        settings=settings,
        runs=2,
    )
    records = run_comparison(request)
    for backend in ("onnxruntime-genai", "openvino-genai"):
        texts = [r.text for r in records if r.backend == backend]
        assert len(texts) == 2 and texts[0] == texts[1] and texts[0].strip(), texts


@pytest.mark.slow
def test_tokens_reach_the_caller_in_batches() -> None:
    comparison, events = collect(
        ComparisonRequest(
            prompts=[PROMPT],
            specs=[BackendSpec("onnxruntime-genai")],
            settings=GenerationSettings(max_new_tokens=600, stop_at_eos=False),
        )
    )
    (record,) = comparison.records
    batches = [e for e in events if e.kind == "tokens"]
    assert record.new_tokens == 600
    assert len(batches) < 600 / 5, f"{len(batches)} messages for 600 tokens: not batched"


@pytest.mark.slow
def test_parallel_mode_runs_backends_at_the_same_time() -> None:
    live: set[int] = set()
    most_live = 0

    def on_worker(lane: str, pid: int, started: bool) -> None:
        nonlocal most_live
        (live.add if started else live.discard)(pid)
        most_live = max(most_live, len(live))

    comparison, _ = collect(
        ComparisonRequest(
            prompts=[PROMPT],
            specs=[BackendSpec("onnxruntime-genai"), BackendSpec("openvino-genai")],
            settings=GenerationSettings(max_new_tokens=16),
            mode="parallel",
        ),
        on_worker=on_worker,
    )
    assert most_live == 2
    assert {r.mode for r in comparison.records} == {"parallel"}
    assert all(r.ok and r.text for r in comparison.records)


@pytest.mark.slow
def test_stop_ends_a_long_generation_early() -> None:
    comparison = Comparison(
        ComparisonRequest(
            prompts=[PROMPT],
            specs=[BackendSpec("transformers")],
            settings=GenerationSettings(max_new_tokens=900, stop_at_eos=False),
        )
    )
    states = []
    for event in comparison.events():
        if event.kind == "tokens" and event.tokens >= 5:
            comparison.stop()
        if event.kind == "state":
            states.append(event.state)
    (record,) = comparison.records
    assert record.stopped and 0 < record.new_tokens < 900
    assert states[-1] == "stopped"


# -- bad input: a clear message for that backend or the run, and the others carry on ----------


@pytest.mark.slow
def test_unavailable_device_fails_only_its_lane() -> None:
    records = run_comparison(
        ComparisonRequest(
            prompts=[PROMPT],
            specs=[
                BackendSpec("openvino-genai", "NPU"),
                BackendSpec("transformers", "cuda"),
                BackendSpec("onnxruntime-genai", "dml"),
                BackendSpec("onnxruntime-genai", "cpu"),
            ],
            settings=GenerationSettings(max_new_tokens=4),
        )
    )
    by_device = {(r.backend, r.device): r for r in records}
    assert "NPU" in by_device["openvino-genai", "NPU"].error
    assert "not present" in by_device["openvino-genai", "NPU"].error
    assert "CUDA is not available" in by_device["transformers", "cuda"].error
    assert "DirectML" in by_device["onnxruntime-genai", "dml"].error
    assert by_device["onnxruntime-genai", "cpu"].ok and by_device["onnxruntime-genai", "cpu"].text


@pytest.mark.slow
def test_unknown_backend_and_precision_get_messages() -> None:
    records = run_comparison(
        ComparisonRequest(
            prompts=[PROMPT],
            specs=[
                BackendSpec("no-such-runtime"),
                BackendSpec("onnxruntime-genai", "cpu", "int3"),
                BackendSpec("onnxruntime-genai", "cpu", "fp16"),
                BackendSpec("openvino-genai"),
            ],
            settings=GenerationSettings(max_new_tokens=4),
        )
    )
    errors = {(r.backend, r.precision): r.error for r in records}
    assert "Unknown backend 'no-such-runtime'" in errors["no-such-runtime", ""]
    assert "does not support precision 'int3'" in errors["onnxruntime-genai", "int3"]
    assert "fp16 needs dml or cuda" in errors["onnxruntime-genai", "fp16"]
    assert errors["openvino-genai", "int4"] == ""


def bare_python() -> str | None:
    """The interpreter this venv was made from: it has none of the runtimes installed."""
    candidate = getattr(sys, "_base_executable", "")
    if not candidate or sys.prefix == sys.base_prefix:  # not in a venv: no bare interpreter
        return None
    probe = subprocess.run(
        [candidate, "-c", "import importlib.util as u; print(bool(u.find_spec('openvino_genai')))"],
        capture_output=True,
        text=True,
    )
    return candidate if probe.stdout.strip() == "False" else None


@pytest.mark.slow
def test_missing_runtime_package_is_explained() -> None:
    python = bare_python()
    if python is None:
        pytest.skip(reason="no interpreter without the runtimes installed to run a worker on")
    records = run_comparison(
        ComparisonRequest(
            prompts=[PROMPT],
            specs=[BackendSpec("openvino-genai"), BackendSpec("onnxruntime-genai")],
            settings=GenerationSettings(max_new_tokens=4),
            worker_python={"openvino-genai": python},
        )
    )
    errors = {r.backend: r.error for r in records}
    assert "openvino-genai not installed" in errors["openvino-genai"]
    assert "pip install" in errors["openvino-genai"]
    assert errors["onnxruntime-genai"] == ""


@pytest.mark.slow
def test_model_a_backend_cannot_convert(tmp_path: Path) -> None:
    """A Phi-3 config the ORT GenAI builder rejects (LongRoPE without factors): only ORT fails."""
    model = tmp_path / "odd-phi3"
    model.mkdir()
    for item in DEMO_MODEL_DIR.iterdir():
        if item.is_file():
            (model / item.name).write_bytes(item.read_bytes())
    config = json.loads((model / "config.json").read_text())
    config["original_max_position_embeddings"] = config["max_position_embeddings"] // 2
    (model / "config.json").write_text(json.dumps(config))
    records = run_comparison(
        ComparisonRequest(
            prompts=[PROMPT],
            specs=[BackendSpec("onnxruntime-genai"), BackendSpec("transformers")],
            model=str(model),
            settings=GenerationSettings(max_new_tokens=4),
        )
    )
    errors = {r.backend: r.error for r in records}
    assert "model builder failed" in errors["onnxruntime-genai"]
    assert errors["transformers"] == ""
    # the worker's traceback is kept in the record (JSON), the builder's full output in the worker log
    failed = next(r for r in records if r.backend == "onnxruntime-genai")
    assert failed.traceback.startswith("Traceback") and "ModelFormatError" in failed.traceback
    log_path = Path(errors["onnxruntime-genai"].split("Full output in ")[1].split()[0].rstrip(".)"))
    assert "----- ONNX Runtime GenAI model builder" in log_path.read_text()


@pytest.mark.slow
def test_crashed_worker_is_reported_and_others_carry_on() -> None:
    def on_worker(lane: str, pid: int, started: bool) -> None:
        if started and lane.startswith("onnxruntime-genai"):
            os.kill(pid, signal.SIGKILL)

    records = run_comparison_with(
        on_worker, [BackendSpec("onnxruntime-genai"), BackendSpec("openvino-genai")]
    )
    errors = {r.backend: r.error for r in records}
    assert "worker crashed" in errors["onnxruntime-genai"] or "worker is gone" in errors["onnxruntime-genai"]
    assert "signal 9" in errors["onnxruntime-genai"]
    assert errors["openvino-genai"] == ""


@pytest.mark.slow
def test_hung_worker_is_killed_after_the_idle_timeout() -> None:
    """SIGSTOP freezes the worker mid-generation, as a deadlocked native runtime would."""
    pids: dict[str, int] = {}
    request = ComparisonRequest(
        prompts=[PROMPT],
        specs=[BackendSpec("transformers"), BackendSpec("onnxruntime-genai")],
        settings=GenerationSettings(max_new_tokens=900, stop_at_eos=False),
        idle_timeout_s=3,
    )
    comparison = Comparison(request, on_worker=lambda lane, pid, started: pids.setdefault(lane, pid))
    frozen = False
    for event in comparison.events():
        if not frozen and event.kind == "tokens" and event.lane.startswith("transformers"):
            os.kill(pids[event.lane], signal.SIGSTOP)
            frozen = True
    errors = {r.backend: r.error for r in comparison.records}
    assert frozen
    assert "produced nothing for 3 s" in errors["transformers"]
    assert errors["onnxruntime-genai"] == ""


def run_comparison_with(on_worker, specs: list[BackendSpec]) -> list[RunRecord]:
    comparison = Comparison(
        ComparisonRequest(prompts=[PROMPT], specs=specs, settings=GenerationSettings(max_new_tokens=4)),
        on_worker=on_worker,
    )
    for _ in comparison.events():
        pass
    return comparison.records


@pytest.mark.parametrize(
    ("prompt", "settings", "expected"),
    [
        ("", GenerationSettings(), "prompt is empty"),
        ("   \n ", GenerationSettings(), "prompt is empty"),
        ("word " * 8_000, GenerationSettings(), "model's context is 1,024 tokens"),  # no char cap here
        (PROMPT, GenerationSettings(max_new_tokens=0), "between 1 and 4096"),
        (PROMPT, GenerationSettings(max_new_tokens=5000), "between 1 and 4096"),
        ("word " * 2000, GenerationSettings(max_new_tokens=64), "model's context is 1,024 tokens"),
        (PROMPT, GenerationSettings(do_sample=True, temperature=0), "temperature"),
    ],
)
def test_bad_run_settings_are_refused_before_any_worker(prompt, settings, expected) -> None:
    with pytest.raises(SettingsError, match=expected):
        Comparison(
            ComparisonRequest(prompts=[prompt], specs=[BackendSpec("transformers")], settings=settings)
        )


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("/nonexistent/model-folder", "does not exist"),
        (str(REPO_ROOT / "playground"), "no config.json"),
        ("not a model!", "neither 'demo'"),
        ("example-org/model-that-is-not-cached", "Cannot reach the Hugging Face hub"),
    ],
)
def test_bad_models_are_explained(model: str, expected: str, monkeypatch) -> None:
    # a closed local port stands in for the unreachable hub (fails fast, no real network)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    request = ComparisonRequest(prompts=[PROMPT], specs=[BackendSpec("transformers")], model=model)
    with pytest.raises(ModelNotFoundError, match=expected):  # the explicit step every caller takes
        Policy.local().admit(request.model, request.specs)
    # the constructor never downloads: a hub model it does not have is refused, the others explained
    unresolved = "resolve it first" if model.startswith("example-org/") else expected
    with pytest.raises(ModelNotFoundError, match=unresolved):
        Comparison(request)


def test_shared_pages_cannot_pick_local_folders() -> None:
    with pytest.raises(ModelNotFoundError, match="only be chosen by whoever started the app"):
        Comparison(
            ComparisonRequest(
                prompts=[PROMPT],
                specs=[BackendSpec("transformers")],
                model=str(DEMO_MODEL_DIR.parent),
                allow_local_paths=False,
            )
        )


@pytest.mark.slow
def test_worker_pool_keeps_models_loaded_between_comparisons() -> None:
    pool = WorkerPool()
    pids: list[int] = []
    try:
        for _ in range(2):
            comparison = Comparison(
                ComparisonRequest(
                    prompts=[PROMPT],
                    specs=[BackendSpec("onnxruntime-genai")],
                    settings=GenerationSettings(max_new_tokens=8),
                ),
                on_worker=lambda lane, pid, started: started and pids.append(pid),
                pool=pool,
            )
            messages = [e.message for e in comparison.events() if e.kind == "state"]
            assert comparison.records[0].ok and comparison.records[0].text
        assert pids[0] == pids[1]
        assert any("already loaded, reused" in m for m in messages), messages
        assert pool.idle_pids() == [pids[0]]
    finally:
        pool.close_all()
    assert pool.idle_pids() == []


def test_only_uncached_hub_ids_count_as_downloads() -> None:
    assert needs_download("example-org/model-that-is-not-cached")
    assert not needs_download("demo")
    assert not needs_download(str(DEMO_MODEL_DIR))
    assert not needs_download("not a model!")
