"""Answer agreement through the real engine: the demo model, and SmolLM2 with a broken lane."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.records import BackendSpec, RunRecord
from playground.engine.reference import SAMPLING_NOTE
from playground.models.resolve import ModelNotFoundError, needs_download, resolve_model
from playground.settings import GenerationSettings

pytestmark = pytest.mark.slow
PROMPT = "What is the for statement?"
NPU_LIBRARY_INSTALLED = importlib.util.find_spec("intel_npu_acceleration_library") is not None


def by_backend(records: list[RunRecord]) -> dict[str, RunRecord]:
    return {f"{r.backend}:{r.precision}": r for r in records}


def test_reference_that_finishes_last_updates_the_lanes_before_it() -> None:
    """Sequential, the fp32 reference last: the int4 lane agrees less than the fp32 one, and the
    earlier lanes get their agreement in an event when the reference's answer arrives."""
    request = ComparisonRequest(
        prompts=[PROMPT],
        specs=[
            BackendSpec("onnxruntime-genai", "cpu", "int4"),
            BackendSpec("onnxruntime-genai", "cpu", "fp32"),
            BackendSpec("transformers", "cpu", "fp32"),
        ],
        settings=GenerationSettings(max_new_tokens=24, stop_at_eos=False),
    )
    comparison = Comparison(request)
    events = list(comparison.events())
    records = by_backend(comparison.records)
    reference = records["transformers:fp32"]
    assert reference.agreement_note == "reference" and reference.agreement_pct == 100.0
    int4, fp32 = records["onnxruntime-genai:int4"], records["onnxruntime-genai:fp32"]
    assert fp32.reference == int4.reference == "transformers:cpu:fp32"
    assert fp32.agreement_pct >= 95  # the same arithmetic in another runtime
    assert int4.agreement_pct < fp32.agreement_pct  # 4-bit weights drift
    assert int4.first_divergence is not None and int4.text_similarity < 1.0
    kinds = [(e.kind, e.lane) for e in events if e.kind in ("result", "agreement")]
    reference_result = kinds.index(("result", request.specs[2].key))
    updated = {lane for kind, lane in kinds[reference_result:] if kind == "agreement"}
    assert updated == {request.specs[0].key, request.specs[1].key}, kinds
    assert not any(r.agreement_flag for r in comparison.records)


def test_a_chosen_reference_and_sampling() -> None:
    """An explicit reference lane; sampled answers are compared but never flagged."""
    request = ComparisonRequest(
        prompts=[PROMPT],
        specs=[
            BackendSpec("onnxruntime-genai", "cpu", "fp32"),
            BackendSpec("onnxruntime-genai", "cpu", "int4"),
        ],
        settings=GenerationSettings(max_new_tokens=24, stop_at_eos=False, do_sample=True, temperature=2.0),
        reference="onnxruntime-genai:cpu:int4",
    )
    comparison = Comparison(request)
    list(comparison.events())
    records = by_backend(comparison.records)
    assert records["onnxruntime-genai:int4"].agreement_note.startswith("reference")
    other = records["onnxruntime-genai:fp32"]
    assert other.reference == "onnxruntime-genai:cpu:int4"
    assert other.agreement_pct is not None and other.agreement_pct < 100  # temperature 2 scatters
    assert SAMPLING_NOTE in other.agreement_note and not other.agreement_flag


def smollm2_dir() -> Path | None:
    """SmolLM2-135M-Instruct as an HF folder: the playground's own model id once set up, or the
    folder named by PLAYGROUND_SMOLLM2_DIR or by the set-up marker on the development machine."""
    try:
        if not needs_download("smollm2"):  # never reach for the hub from a test
            return resolve_model("smollm2").path
    except (ModelNotFoundError, OSError, ValueError):
        pass
    candidates = [os.environ.get("PLAYGROUND_SMOLLM2_DIR", "")]
    ready = Path("/work/models/READY")
    if ready.is_file():
        candidates.append(ready.read_text().strip())
    for candidate in candidates:
        if candidate and (Path(candidate) / "config.json").is_file():
            return Path(candidate)
    return None


@pytest.mark.skipif(not NPU_LIBRARY_INSTALLED, reason="run `python scripts/install_npu_library.py` first")
def test_smollm2_garbage_lane_is_flagged_and_the_sensible_ones_are_not() -> None:
    model = smollm2_dir()
    if model is None:
        pytest.skip(reason="SmolLM2 is not set up here (set-up fetches it; or set PLAYGROUND_SMOLLM2_DIR)")
    request = ComparisonRequest(
        prompts=["What is the capital of France?"],
        specs=[BackendSpec("transformers"), BackendSpec("onnxruntime-genai"), BackendSpec("npu-library")],
        model=str(model),
        settings=GenerationSettings(max_new_tokens=32),
    )
    comparison = Comparison(request)
    list(comparison.events())
    records = {r.backend: r for r in comparison.records}
    assert all(r.ok for r in records.values()), [r.error for r in records.values()]
    assert "Paris" in records["transformers"].text and records["transformers"].agreement_note == "reference"
    # The flag says what a reader sees: an answer without "Paris" is broken here (the NPU
    # library's int4 streams "-al-al-al- and and and…"), one with it is not.
    for backend, record in records.items():
        broken = "Paris" not in record.text
        assert record.agreement_flag == broken, (backend, record.text, record.agreement_note)
        if broken:
            assert record.agreement_pct < 50 and record.agreement_note, record
