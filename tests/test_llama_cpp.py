"""The llama.cpp backend on real models: SmolLM2's own GGUF, a GGUF file given as the model, and a tiny
random-weight HF folder converted with llama.cpp's converter and quantised through the cache."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.records import BackendSpec, RunRecord
from playground.models.catalog import SMOLLM2
from playground.models.gguf_models import converter_script, source_gguf
from playground.models.resolve import resolve_model
from playground.settings import GenerationSettings

PROMPT = "What is the for statement?"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not "
                       "built here: run `python scripts/install_llama_cpp.py`"),
]


@pytest.fixture(scope="module")
def smollm2() -> Path:
    if not SMOLLM2.is_ready() or SMOLLM2.gguf_path is None or not SMOLLM2.gguf_path.is_file():
        pytest.skip(reason="SmolLM2 is not set up here: run `bash scripts/setup.sh`")
    return SMOLLM2.gguf_path


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLAYGROUND_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def run(specs: list[str], model: str, max_new_tokens: int = 16, stop_at_eos: bool = False,
        runs: int = 1) -> list[RunRecord]:
    comparison = Comparison(ComparisonRequest(
        prompts=[PROMPT], specs=[BackendSpec.parse(spec) for spec in specs], model=model, runs=runs,
        settings=GenerationSettings(max_new_tokens=max_new_tokens, stop_at_eos=stop_at_eos),
    ))
    for _ in comparison.events():
        pass
    return comparison.records


def test_the_probe_reports_the_build_and_its_devices() -> None:
    from playground.backends.llama_cpp_backend import LlamaCppBackend

    probe = LlamaCppBackend.probe()
    assert probe.installed and probe.version.startswith("llama-cpp-python 0.3.36")
    devices = {d.device: d for d in probe.devices}
    assert devices["cpu"].available and devices["cpu"].note.startswith("CPU (")
    if not devices["gpu"].available:  # this CPU build: the page says how to get a GPU one
        assert "CMAKE_ARGS" in devices["gpu"].note


def test_smollm2_runs_from_its_own_gguf_with_llama_cpps_timings_beside_ours(smollm2: Path) -> None:
    records = run(["llama.cpp", "openvino-genai:CPU:int8"], "smollm2", runs=2)
    lanes = [r for r in records if r.backend == "llama.cpp"]
    assert len(lanes) == 2 and all(r.ok for r in lanes), [r.error for r in lanes]
    for record in lanes:
        assert record.precision == "auto (Q4_1)" and record.device == "cpu"
        assert "CPU" in record.device_note
        assert record.new_tokens == 16 and len(record.token_ids) == 16 and record.text.strip()
        assert 0 < record.ttft_s <= record.e2e_s and record.decode_tokens_per_s > 0
        # llama.cpp's own perf counters: prefill within our TTFT, its own decode rate
        assert 0 < record.runtime_prefill_s <= record.ttft_s
        assert record.runtime_decode_tokens_per_s > 0
        assert record.threads and record.conversion_s == 0  # no conversion: the file ran as it is
    # the KV cache is reset each run: the second run prefilled again, as every other backend does
    assert lanes[1].runtime_prefill_s > 0
    other = next(r for r in records if r.backend == "openvino-genai")
    assert other.ok  # and both tokenised the prompt alike: their answers are compared id by id
    assert lanes[0].extra["prompt_ids_digest"] == other.extra["prompt_ids_digest"]


def test_a_gguf_file_is_a_model(smollm2: Path) -> None:
    source = resolve_model(str(smollm2))
    assert (source.path / "config.json").is_file() and source_gguf(source.path) == smollm2.resolve()
    (record,) = run(["llama.cpp"], str(smollm2), max_new_tokens=8)
    assert record.ok and record.precision == "auto (Q4_1)" and record.new_tokens == 8, record.error


def test_a_wrong_gguf_file_says_so(tmp_path: Path) -> None:
    from playground.models.resolve import ModelNotFoundError

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf at all")
    with pytest.raises(ModelNotFoundError, match="could not be read as a GGUF model"):
        resolve_model(str(broken))


def tiny_llama(folder: Path) -> Path:
    """A 2-layer random Llama with SmolLM2's tokenizer (llama.cpp's converter knows its pre-tokenizer)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if not SMOLLM2.is_ready():
        pytest.skip(reason="SmolLM2's tokenizer is needed: run `bash scripts/setup.sh`")
    folder.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        if (SMOLLM2.folder / name).is_file():
            shutil.copy(SMOLLM2.folder / name, folder / name)
    smol = json.loads((SMOLLM2.folder / "config.json").read_text())
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=smol["vocab_size"], hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=smol.get("bos_token_id"),
                         eos_token_id=smol.get("eos_token_id"))
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_an_hf_folder_is_converted_and_quantised_through_the_cache(tmp_path: Path, own_cache: Path) -> None:
    try:
        converter_script()
    except Exception as exc:
        pytest.skip(reason=str(exc))
    model = tiny_llama(tmp_path / "tiny-llama")
    # Q8_0, and auto: a folder without a GGUF of its own gets Q4_K_M (F16 is the step between)
    first = run(["llama.cpp:cpu:Q8_0", "llama.cpp"], str(model), max_new_tokens=6)
    assert all(r.ok for r in first), [r.error for r in first]
    for record in first:
        assert record.new_tokens == 6 and record.conversion_s > 0 and record.conversion_reused is False
    assert [r.precision for r in first] == ["Q8_0", "Q4_K_M"]
    converted = sorted(p.name for p in (own_cache / "conversions" / "gguf").iterdir() if p.is_dir())
    assert len(converted) == 2 and all(name.endswith(("-Q8_0", "-Q4_K_M")) for name in converted), converted
    (again,) = run(["llama.cpp:cpu:Q8_0"], str(model), max_new_tokens=6)
    assert again.ok and again.conversion_reused is True and again.conversion_s == 0


def test_bad_choices_get_one_line_each_while_the_good_lane_runs(smollm2: Path) -> None:
    records = run(["llama.cpp:cpu:Q5_K", "llama.cpp:npu", "llama.cpp:gpu", "llama.cpp:cpu"], "smollm2",
                  max_new_tokens=4)
    errors = {(r.device, r.precision): r.error for r in records if not r.ok}
    assert any("does not support precision 'Q5_K'" in e for e in errors.values()), errors
    assert any("runs on cpu or gpu, not 'npu'" in e for e in errors.values()), errors
    assert any("no GPU backend" in e and "CMAKE_ARGS" in e for e in errors.values()) or any(
        r.ok and r.device == "gpu" for r in records), errors
    assert all("\n" not in e and "Traceback" not in e for e in errors.values())
    assert any(r.ok and r.device == "cpu" and r.new_tokens == 4 for r in records)


def test_the_demo_model_converts_with_its_tokenizer_json_alone(own_cache: Path) -> None:
    """Phi-3 with a SentencePiece-style tokenizer.json and no tokenizer.model: llama.cpp's converter
    refuses it, ``gguf_convert`` gives it the converter's own Llama-HF vocabulary; the GGUF then
    tokenises the prompt exactly as the HF tokenizer does."""
    (record,) = run(["llama.cpp:cpu:F16"], "demo", max_new_tokens=8)
    assert record.ok and record.precision == "F16" and record.new_tokens == 8, record.error
    import llama_cpp

    from playground.models.chat import render_prompt
    from playground.models.tokens import encode
    from playground.paths import DEMO_MODEL_DIR

    (folder,) = [p for p in (own_cache / "conversions" / "gguf").iterdir() if p.is_dir()]
    llm = llama_cpp.Llama(model_path=str(folder / "model.gguf"), n_ctx=256, verbose=False)
    prompt = render_prompt(DEMO_MODEL_DIR, PROMPT)
    assert llm.tokenize(prompt.encode(), add_bos=False, special=True) == list(encode(DEMO_MODEL_DIR, prompt))
