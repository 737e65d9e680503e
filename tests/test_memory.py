"""Memory: estimates before a load, refusals that say what would fit, out-of-memory kills reported.

The first tests check the estimator's arithmetic and the verdict logic (fast, no runtimes).
The ones marked ``slow`` run real workers: a real refusal under a limit the test sets, a real
out-of-memory kill (by the kernel in a cgroup where one can be created, and by the engine's
guard), and idle pooled workers freed to make room.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from playground.engine import memory
from playground.engine.admission import MemoryGate, estimate_lane
from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.launcher import WorkerProcess
from playground.engine.memory import MB, Budget, ModelShape, estimate, refusal_message
from playground.engine.oom import WorkerCgroup, judge_exit
from playground.engine.pool import WorkerPool
from playground.engine.records import BackendSpec
from playground.paths import DEMO_MODEL_DIR, REPO_ROOT
from playground.settings import GenerationSettings, SettingsError

# Llama-style: hidden 576, 30 layers, 3 KV heads of 64, tied embeddings (SmolLM2-135M's shape).
SMOL_CONFIG = {
    "hidden_size": 576,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "num_hidden_layers": 30,
    "intermediate_size": 1536,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
}


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A safetensors file with these headers and zero-filled data (only the header is read)."""
    header: dict = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = {"F32": 4, "F16": 2, "BF16": 2}[dtype]
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)


# -- arithmetic (fast) ---------------------------------------------------------------------------


def test_parameter_count_comes_from_safetensors_headers(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**SMOL_CONFIG, "num_hidden_layers": 1}))
    write_safetensors(
        tmp_path / "model-00001.safetensors",
        {"model.embed_tokens.weight": ("BF16", [49152, 576]), "model.norm.weight": ("F32", [576])},
    )
    up = {"layer.mlp.up_proj.weight": ("F16", [1536, 576])}
    write_safetensors(tmp_path / "model-00002.safetensors", up)
    shape = ModelShape.from_folder(tmp_path)
    assert shape.params == 49152 * 576 + 576 + 1536 * 576
    assert shape.embedding_params == 49152 * 576 and shape.lm_head_params == 0  # tied
    assert shape.linear_params == 576 + 1536 * 576


def test_config_arithmetic_matches_a_real_llama_count() -> None:
    # SmolLM2-135M stores 134,515,008 parameters; the config-only count must land on it.
    shape = ModelShape.from_config(SMOL_CONFIG)
    assert abs(shape.params - 134_515_008) / 134_515_008 < 0.001
    assert (shape.layers, shape.kv_heads, shape.head_dim) == (30, 3, 64)


def test_weights_per_precision() -> None:
    shape = ModelShape.from_config(SMOL_CONFIG)
    fp32 = estimate(DEMO_MODEL_DIR, "transformers", "fp32", shape=shape, tokens=0)
    bf16 = estimate(DEMO_MODEL_DIR, "transformers", "bf16", shape=shape, tokens=0)
    assert fp32.weights_mb == pytest.approx(shape.params * 4 / MB)
    assert bf16.weights_mb == pytest.approx(fp32.weights_mb / 2)
    int8 = estimate(DEMO_MODEL_DIR, "openvino-genai", "int8", shape=shape, tokens=0)
    int4 = estimate(DEMO_MODEL_DIR, "openvino-genai", "int4", shape=shape, tokens=0)
    npu4 = estimate(DEMO_MODEL_DIR, "openvino-genai", "int4", device="NPU", shape=shape, tokens=0)
    copies = memory.CONVERTED_RESIDENT_COPIES  # the IR's pages and the CPU plugin's repacked copy
    assert int8.weights_mb == pytest.approx(copies * shape.params / MB)
    # int4: 60% of block layers at 4 bits + an fp16 scale per 128 weights, the rest (and embeddings) int8.
    linear = shape.linear_params * (0.6 * (0.5 + 2 / 128) + 0.4)
    assert int4.weights_mb == pytest.approx(copies * (linear + shape.embedding_params) / MB)
    assert npu4.weights_mb < int4.weights_mb < int8.weights_mb
    ort4 = estimate(DEMO_MODEL_DIR, "onnxruntime-genai", "int4", shape=shape, tokens=0)
    # Tied: one int4 matrix (fp32 scale per 32 weights) serves embedding and head.
    assert ort4.weights_mb == pytest.approx(copies * shape.params * 0.625 / MB)
    untied = ModelShape.from_config({**SMOL_CONFIG, "tie_word_embeddings": False})
    ort4 = estimate(DEMO_MODEL_DIR, "onnxruntime-genai", "int4", shape=untied, tokens=0)
    # Untied: the embedding stays fp32 on CPU, a lookup table that is mmapped and barely touched;
    # blocks and head are int4 and held twice.
    expected = (untied.linear_params + untied.lm_head_params) * 0.625
    assert ort4.weights_mb == pytest.approx(copies * expected / MB)
    on_disk = untied.embedding_params * 4 + expected
    assert ort4.conversion_mb > on_disk / MB


def test_kv_cache_and_totals() -> None:
    shape = ModelShape.from_config(SMOL_CONFIG)
    one = estimate(DEMO_MODEL_DIR, "transformers", "fp32", shape=shape, tokens=1000)
    # layers x kv heads x head dim x (K and V) x 4 bytes x tokens
    assert one.kv_cache_mb == pytest.approx(30 * 3 * 64 * 2 * 4 * 1000 / MB)
    assert one.total_mb == pytest.approx(one.runtime_mb + one.weights_mb + one.kv_cache_mb)
    first = estimate(DEMO_MODEL_DIR, "onnxruntime-genai", "int4", shape=shape, tokens=1000)
    assert first.conversion_mb > first.weights_mb  # the exporter holds the fp32 model
    assert first.total_mb == pytest.approx(first.runtime_mb + first.conversion_mb)


def test_a_cached_conversion_is_measured_not_guessed(tmp_path: Path) -> None:
    converted = tmp_path / "ir"
    converted.mkdir()
    (converted / "openvino_model.bin").write_bytes(b"\0" * (3 * MB))
    shape = ModelShape.from_config(SMOL_CONFIG)
    found = estimate(DEMO_MODEL_DIR, "optimum-intel", "int8", shape=shape, converted=converted)
    assert found.weights_mb == pytest.approx(3.0 * memory.CONVERTED_RESIDENT_COPIES)
    assert found.conversion_mb == 0
    assert found.weights_source == "converted files"


def test_budget_counts_idle_workers_only_once_freed() -> None:
    budget = Budget(available_mb=1000, limit_mb=1500, busy_mb=300, idle_mb=400)
    assert budget.free_mb(with_idle=False) == 800  # limit - busy - idle
    assert budget.free_mb(with_idle=True) == 1200  # limit - busy; the machine has 1000 + 400
    assert Budget(available_mb=500, limit_mb=None, idle_mb=200).free_mb() == 700


def test_refusal_says_needed_available_and_what_fits() -> None:
    shape = ModelShape.from_config(SMOL_CONFIG)
    fp32 = estimate(DEMO_MODEL_DIR, "transformers", "fp32", shape=shape, tokens=100)
    bf16 = estimate(DEMO_MODEL_DIR, "transformers", "bf16", shape=shape, tokens=100)
    free = (fp32.total_mb + bf16.total_mb) / 2
    where = "under the 1.2 GB memory limit"
    text = refusal_message("transformers@cpu:fp32", fp32, free, where, [bf16], False)
    assert f"needs ~{memory.fmt_mb(fp32.total_mb)}" in text
    assert f"only ~{memory.fmt_mb(free)} is free under the 1.2 GB memory limit" in text
    assert f"bf16 needs ~{memory.fmt_mb(bf16.total_mb)}" in text
    parallel = refusal_message("x", fp32, 10, "on this machine", [bf16], alone_fits=True)
    assert "fewer backends at once or sequential mode" in parallel
    nothing = refusal_message("x", fp32, 10, "on this machine", [bf16], alone_fits=False)
    assert "nothing this backend offers fits" in nothing and "bf16" in nothing
    ort = memory.MemoryEstimate("onnxruntime-genai", "int4", weights_mb=80, kv_cache_mb=4, runtime_mb=90)
    text = refusal_message("x", fp32, ort.total_mb + 1, "on this machine", [bf16], False, [ort])
    assert f"What would fit: onnxruntime-genai int4 needs ~{memory.fmt_mb(ort.total_mb)}" in text


def test_limit_from_environment_and_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(memory.LIMIT_ENV, "2048")
    assert memory.user_limit_mb() == 2048
    assert memory.user_limit_mb(512) == 512  # the request wins
    monkeypatch.setenv(memory.LIMIT_ENV, "lots")
    with pytest.raises(ValueError, match=memory.LIMIT_ENV):
        memory.user_limit_mb()
    monkeypatch.delenv(memory.LIMIT_ENV)
    with pytest.raises(SettingsError, match="positive"):
        Comparison(ComparisonRequest(["hi"], [BackendSpec("transformers")], memory_limit_mb=-1))


def test_oom_verdict_needs_evidence() -> None:
    kill = -signal.SIGKILL
    assert judge_exit(kill, True, None, 0, 900).message is None  # the engine sent it
    assert judge_exit(-signal.SIGSEGV, False, None, 0, 900).message is None
    before = memory_vmstat()
    # A SIGKILL with no OOM-killer activity since the worker started is a plain crash.
    assert judge_exit(kill, False, None, before, 900).message is None
    if before is not None:
        verdict = judge_exit(kill, False, None, before - 1, 900).message
        assert verdict and verdict.startswith("killed: out of memory") and "900 MB" in verdict


def memory_vmstat() -> int | None:
    from playground.engine.oom import read_vmstat_oom_kills

    return read_vmstat_oom_kills()


# -- real workers (slow) -------------------------------------------------------------------------

ORT_INT4 = BackendSpec("onnxruntime-genai", "cpu", "int4")
QUICK = GenerationSettings(max_new_tokens=8, stop_at_eos=False)


def run(specs: list[BackendSpec], pool: WorkerPool | None = None, **fields) -> tuple[Comparison, list]:
    request = ComparisonRequest(prompts=["What is the for statement?"], specs=specs, settings=QUICK, **fields)
    comparison = Comparison(request, pool=pool)
    return comparison, list(comparison.events())


def lane_errors(comparison: Comparison, backend: str, precision: str) -> list[str]:
    return [r.error for r in comparison.records if r.backend == backend and r.precision == precision]


@pytest.fixture(scope="module")
def ort_converted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The demo model's ORT GenAI int4 conversion on disk, so that lane is small under a limit.

    A cache of this module's own: the fp32 lane must still face its first-time conversion (the
    peak these tests rely on), whatever other test modules converted before.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PLAYGROUND_CACHE", str(tmp_path_factory.mktemp("memory-cache")))
        comparison, _ = run([ORT_INT4])
        assert lane_errors(comparison, "onnxruntime-genai", "int4") == [""]
        yield


def cgroups_usable() -> bool:
    probe = WorkerCgroup.create(f"playground-probe-{os.getpid()}", 64)
    if probe is None:
        return False
    probe.remove()
    return True


@pytest.mark.slow
def test_a_load_over_the_limit_is_refused_and_the_other_lane_runs(ort_converted) -> None:
    fp32 = BackendSpec("onnxruntime-genai", "cpu", "fp32")
    needed, _ = estimate_lane(DEMO_MODEL_DIR, fp32, 64)
    small, _ = estimate_lane(DEMO_MODEL_DIR, ORT_INT4, 64)
    limit = 500.0
    assert small.total_mb < limit < needed.total_mb  # fp32's first-time conversion is the peak
    comparison, events = run([fp32, ORT_INT4], memory_limit_mb=limit)
    [refusal] = [e.message for e in events if e.kind == "error"]
    assert refusal.startswith(f"Not enough memory for {fp32.key}")
    assert f"fp32 needs ~{memory.fmt_mb(needed.total_mb)}" in refusal
    assert "is free under the 500 MB memory limit" in refusal
    assert f"What would fit: int4 needs ~{memory.fmt_mb(small.total_mb)}" in refusal
    assert lane_errors(comparison, "onnxruntime-genai", "int4") == [""]  # ran, under the same limit
    assert not any(e.lane == fp32.key and e.kind == "worker" for e in events)  # never started


@pytest.mark.slow
@pytest.mark.parametrize("enforcer", ["kernel cgroup", "engine guard"])
def test_a_worker_out_of_memory_is_killed_and_reported(ort_converted, enforcer, monkeypatch) -> None:
    """transformers needs ~1 GB; told to load anyway under a 400 MB limit, it really runs out."""
    if enforcer == "kernel cgroup" and not cgroups_usable():
        pytest.skip(reason="cannot create a memory cgroup here (needs root and a cgroup memory controller)")
    if enforcer == "engine guard":
        monkeypatch.setenv("PLAYGROUND_MEMORY_CGROUPS", "0")
    big = BackendSpec("transformers", "cpu", "fp32")
    comparison, events = run([big, ORT_INT4], memory_limit_mb=400, memory_check=False)
    [message] = [e.message for e in events if e.kind == "error"]
    assert f"{big.key}: killed: out of memory" in message or message.startswith("killed: out of memory")
    if enforcer == "kernel cgroup":
        assert "the kernel's OOM killer" in message and "400 MB limit" in message
    else:
        assert "of the 400 MB limit" in message and "used " in message
    assert "crashed" not in message and "signal" not in message
    assert lane_errors(comparison, "onnxruntime-genai", "int4") == [""]


@pytest.mark.slow
def test_idle_pooled_workers_are_freed_for_a_load_that_needs_them(ort_converted) -> None:
    pool = WorkerPool()
    fp32 = BackendSpec("transformers", "cpu", "fp32")
    bf16 = BackendSpec("transformers", "cpu", "bf16")
    pids: dict[str, int] = {}
    try:
        first, events = run([ORT_INT4, fp32], pool=pool)
        assert all(r.ok for r in first.records), [r.error for r in first.records]
        pids = {e.lane: e.pid for e in events if e.kind == "worker"}
        idle = pool.idle_rss_mb()
        needed, _ = estimate_lane(DEMO_MODEL_DIR, bf16, 64)
        # Room for bf16 only once the idle fp32 worker is gone; the small ORT one may stay.
        limit = needed.total_mb + idle - 300
        second, events = run([ORT_INT4, fp32, bf16], pool=pool, memory_limit_mb=limit)
        assert all(r.ok for r in second.records), [r.error for r in second.records]
        notes = [e.message for e in events if e.lane == bf16.key and e.kind == "state"]
        assert any("freed" in note and "idle backend" in note for note in notes), notes
        deadline = time.monotonic() + 10
        while psutil.pid_exists(pids[fp32.key]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not psutil.pid_exists(pids[fp32.key])  # the largest idle worker was closed...
        assert pids[ORT_INT4.key] in pool.idle_pids()  # ...and the small one kept
    finally:
        pool.close_all()


@pytest.mark.slow
def test_parallel_lanes_are_summed(ort_converted) -> None:
    """In parallel mode every lane loads at once: the second reserves after the first."""
    gate = MemoryGate(requested_limit_mb=None)
    small, alternatives = estimate_lane(DEMO_MODEL_DIR, ORT_INT4, 64)
    worker = WorkerProcess("parallel-probe")
    try:
        gate.started("first", worker, reserved_mb=memory.available_mb())  # holds all there is
        refusal, _ = gate.admit("second", small, alternatives)
        assert refusal and "fewer backends at once or sequential mode would fit" in refusal
        gate.ended("first")
        assert gate.admit("second", small, alternatives) == (None, "")
    finally:
        worker.close()


@pytest.mark.slow
def test_bench_cli_takes_a_memory_limit(ort_converted, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    command = [sys.executable, "-m", "playground.bench", "--backends",
               "onnxruntime-genai:cpu:fp32,onnxruntime-genai:cpu:int4", "--memory-limit", "500",
               "--runs", "1", "--warmup", "0", "--max-new-tokens", "8", "--json", str(out)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr  # one lane refused
    records = {r["precision"]: r for r in json.loads(out.read_text())}
    assert records["fp32"]["error"].startswith("Not enough memory") and "500 MB memory limit" in done.stderr
    assert records["int4"]["error"] == "" and records["int4"]["new_tokens"] == 8
