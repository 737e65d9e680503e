"""Perplexity from the real runtimes' own logits, through the engine (workers, Score / Scored): sane,
equal where the weights are equal, lower for fp32 than for int4 on a real model, and a runtime
without logits says so. Slow: each lane loads a runtime (the demo model's conversions are cached).
"""

from __future__ import annotations

import importlib.util
import math

import pytest
from test_smollm2 import smollm2_or_skip

from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.quality import ENGLISH_PROSE, PYTHON_DOCS
from playground.engine.records import RunRecord, parse_backend_specs
from playground.settings import GenerationSettings

pytestmark = pytest.mark.slow


def scored(model: str, backends: str) -> dict[str, RunRecord]:
    """One short measured run per lane, then its perplexity; the lane's record by backend:precision."""
    request = ComparisonRequest(
        prompts=["What is a list?"], specs=parse_backend_specs(backends), model=model,
        settings=GenerationSettings(max_new_tokens=4), quality=True,
    )
    comparison = Comparison(request)
    for _ in comparison.events():
        pass
    records = {f"{r.backend}:{r.precision}": r for r in comparison.records}
    assert all(r.ok for r in records.values()), [r.error for r in records.values()]
    return records


def test_demo_model_fp32_lanes_agree_and_int4_is_not_better() -> None:
    records = scored("demo", "transformers:cpu:fp32,onnxruntime-genai:cpu:fp32,onnxruntime-genai:cpu:int4,"
                             "optimum-intel:CPU:int8,optimum-intel:CPU:int4,openvino-genai:CPU:int4")
    fp32 = records["transformers:fp32"]
    for key in ("transformers:fp32", "onnxruntime-genai:fp32", "onnxruntime-genai:int4", "optimum-intel:int8",
                "optimum-intel:int4"):
        record = records[key]
        value = record.perplexity
        assert value is not None and math.isfinite(value) and value > 1, key
        assert record.perplexity_text == PYTHON_DOCS and (record.perplexity_tokens or 0) > 300
        assert record.perplexity_vs_reference == pytest.approx(record.perplexity / fp32.perplexity, rel=1e-3)
    assert fp32.perplexity_vs_reference == 1.0 and fp32.perplexity_note == "reference perplexity"
    # the same weights in fp32: the same perplexity up to kernel rounding
    assert records["onnxruntime-genai:fp32"].perplexity == pytest.approx(fp32.perplexity, rel=0.01)
    # quantised weights are not better, within a small tolerance (on a 5M-parameter model int4 can
    # land on either side of fp32 by a percent or two)
    for key in ("onnxruntime-genai:int4", "optimum-intel:int8", "optimum-intel:int4"):
        assert records[key].perplexity >= fp32.perplexity * 0.97, key
    pipeline = records["openvino-genai:int4"]
    assert pipeline.perplexity is None and pipeline.perplexity_vs_reference is None
    assert "LLMPipeline exposes no logits" in pipeline.perplexity_note


def test_smollm2_fp32_is_not_worse_than_int4() -> None:
    smollm2_or_skip()
    backends = "transformers:cpu:fp32,optimum-intel:CPU:int4,onnxruntime-genai:cpu:int4"
    if importlib.util.find_spec("llama_cpp"):
        backends += ",llama.cpp:cpu:auto"  # SmolLM2's own GGUF (Q4_1)
    records = scored("smollm2", backends)
    fp32 = records["transformers:fp32"].perplexity
    assert fp32 is not None and 1 < fp32 < 100  # a real model on plain English prose
    assert records["transformers:fp32"].perplexity_text == ENGLISH_PROSE
    for key in ("optimum-intel:int4", "onnxruntime-genai:int4"):
        assert records[key].perplexity is not None and fp32 <= records[key].perplexity, key
    llama = next((r for r in records.values() if r.backend == "llama.cpp"), None)
    if llama is not None:  # the packaged Q4_1 scores within a few % of fp32 (either side) on 408 tokens
        assert llama.perplexity is not None and llama.perplexity == pytest.approx(fp32, rel=0.1)
        assert llama.perplexity_tokens == records["transformers:fp32"].perplexity_tokens



@pytest.mark.skipif(not importlib.util.find_spec("llama_cpp"), reason="llama-cpp-python is not installed")
def test_llama_cpp_logits_on_the_demo_model() -> None:
    """The demo folder converted to an F16 GGUF: the same weights as fp32, so the same perplexity
    when llama.cpp's tokenizer splits the text as the folder's does; when it does not (here: 571
    tokens against 489), the note says so beside the ratio."""
    records = scored("demo", "transformers:cpu:fp32,llama.cpp:cpu:F16")
    fp32, llama = records["transformers:fp32"], records["llama.cpp:F16"]
    assert llama.perplexity is not None and math.isfinite(llama.perplexity) and llama.perplexity > 1
    if llama.perplexity_tokens == fp32.perplexity_tokens:
        assert llama.perplexity == pytest.approx(fp32.perplexity, rel=0.01)
    else:
        assert "tokenizers differ" in llama.perplexity_note
