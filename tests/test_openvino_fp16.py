"""OpenVINO at fp16 on the CPU (found by the matrix, issue 13): OpenVINO 2026.4's CPU plugin computes
an fp16 IR in bf16 by default on CPUs with bf16 units, and on this Xeon (AMX) compiling any fp16 IR
that way died with SIGFPE, so both OpenVINO backends' fp16 lanes crashed. They now ask for f16
compute where the CPU has fp16 units (else f32), and say so in the device note."""

from __future__ import annotations

import pytest

from playground.backends.openvino_common import compute_note, fp16_cpu_compute, latency_config
from playground.engine.comparison import ComparisonRequest, run_comparison
from playground.engine.records import BackendSpec
from playground.settings import GenerationSettings


def test_only_an_fp16_ir_on_the_cpu_gets_a_compute_precision() -> None:
    assert latency_config("CPU", "fp16")["INFERENCE_PRECISION_HINT"] in ("f16", "f32")
    assert "INFERENCE_PRECISION_HINT" not in latency_config("CPU", "int8")
    assert "INFERENCE_PRECISION_HINT" not in latency_config("GPU", "fp16")
    assert compute_note(latency_config("CPU", "fp16")) == f"fp16 weights, {fp16_cpu_compute()} compute"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["openvino-genai", "optimum-intel"])
def test_openvino_fp16_runs_on_the_cpu(backend: str) -> None:
    request = ComparisonRequest(prompts=["What is the for statement?"],
                                specs=[BackendSpec(backend, "CPU", "fp16")],
                                settings=GenerationSettings(max_new_tokens=8), warmup=0, runs=1)
    (record,) = run_comparison(request)
    assert record.ok, record.error
    assert record.new_tokens and record.new_tokens > 0
    assert f"fp16 weights, {fp16_cpu_compute()} compute" in record.device_note, record.device_note
