"""The embedded demo model (``assets/demo-model``): loads offline, is a small Phi-3, chats in English.

Rebuild it with ``.venv/bin/python scripts/train_demo_model.py`` (see its TRAINING.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from playground.paths import DEMO_MODEL_DIR

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

pytestmark = pytest.mark.skipif(
    not (DEMO_MODEL_DIR / "config.json").is_file(),
    reason=f"no demo model at {DEMO_MODEL_DIR}: run scripts/train_demo_model.py",
)

SYSTEM = "You are a helpful AI assistant."
CHAT_TOKENS = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(DEMO_MODEL_DIR, local_files_only=True)


@pytest.fixture(scope="module")
def model() -> PreTrainedModel:
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(DEMO_MODEL_DIR, local_files_only=True)
    return loaded.eval()


def _config() -> dict:
    return json.loads((DEMO_MODEL_DIR / "config.json").read_text())


def test_folder_is_complete_and_small() -> None:
    names = {p.name for p in DEMO_MODEL_DIR.iterdir()}
    for required in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json", "chat_template.jinja", "TRAINING.md"):
        assert required in names, f"{required} missing from {DEMO_MODEL_DIR}"
    size = sum(p.stat().st_size for p in DEMO_MODEL_DIR.rglob("*") if p.is_file())
    assert size < 15 * 1024 * 1024, f"demo model folder is {size / 2**20:.1f} MiB"
    card = (DEMO_MODEL_DIR / "TRAINING.md").read_text()
    for fact in ("parameters", "held-out loss", "perplexity", "scripts/train_demo_model.py"):
        assert fact in card


def test_config_takes_the_plain_phi3_export_paths() -> None:
    """Untied, no RoPE scaling, 4k-style positions, int4-friendly widths: what the exporters need."""
    config = _config()
    assert config["architectures"] == ["Phi3ForCausalLM"]
    assert config["model_type"] == "phi3"
    assert "auto_map" not in config  # built-in class, no trust_remote_code
    assert config["tie_word_embeddings"] is False
    assert config.get("rope_scaling") is None
    assert config["original_max_position_embeddings"] == config["max_position_embeddings"]
    for key in ("hidden_size", "intermediate_size"):
        assert config[key] % 128 == 0, f"{key} must split into int4 groups of 128"


@pytest.mark.slow
def test_loads_offline_as_small_phi3(model: PreTrainedModel) -> None:
    assert type(model).__name__ == "Phi3ForCausalLM"
    n_params = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < n_params < 10_000_000
    assert model.config.vocab_size == model.get_output_embeddings().weight.shape[0]


@pytest.mark.slow  # transformers' tokenizer imports torch (~6-8 s)
def test_special_tokens_and_eos(tokenizer: PreTrainedTokenizerBase) -> None:
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in ["<unk>", "<s>", "</s>", *CHAT_TOKENS]}
    assert len(set(ids.values())) == len(ids), ids
    assert tokenizer.unk_token_id not in [ids[t] for t in CHAT_TOKENS]
    for tok in CHAT_TOKENS:  # each marker is one token, never split
        assert tokenizer(tok, add_special_tokens=False)["input_ids"] == [ids[tok]]
    assert tokenizer.pad_token is not None
    generation = json.loads((DEMO_MODEL_DIR / "generation_config.json").read_text())
    eos = generation["eos_token_id"]
    assert isinstance(eos, list) and {ids["<|end|>"], ids["<|endoftext|>"]} <= set(eos)
    assert set(_config()["eos_token_id"]) == set(eos)


@pytest.mark.slow  # transformers' tokenizer imports torch (~6-8 s)
def test_no_bos_added_and_text_round_trips(tokenizer: PreTrainedTokenizerBase) -> None:
    text = 'The "assert" statement checks 2 + 2 == 4, naïvely. 🙂'
    ids = tokenizer(text)["input_ids"]
    assert ids[0] != tokenizer.bos_token_id
    assert tokenizer.unk_token_id not in ids  # byte fallback covers anything
    assert tokenizer.decode(ids) == text


@pytest.mark.slow  # transformers' tokenizer imports torch (~6-8 s)
def test_chat_template_renders_phi3_format(tokenizer: PreTrainedTokenizerBase) -> None:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is a list?"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == f"<|system|>\n{SYSTEM}<|end|>\n<|user|>\nWhat is a list?<|end|>\n<|assistant|>\n"
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": "A sequence."}], tokenize=False
    )
    assert full.endswith("<|assistant|>\nA sequence.<|end|>\n<|endoftext|>")
    # The app renders the template itself for every runtime: it must agree with transformers.
    from playground.models.chat import render_prompt

    assert render_prompt(Path(DEMO_MODEL_DIR), "What is a list?", SYSTEM) == prompt


@pytest.mark.slow
@pytest.mark.parametrize("question", ['What is the "assert" statement?', "Tell me about the json module."])
def test_greedy_chat_reply_is_english_words(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, question: str
) -> None:
    import torch

    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=48, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    reply = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    words = reply.split()
    assert len(words) >= 5, f"reply too short: {reply!r}"
    alphabetic = [w for w in words if re.fullmatch(r"[A-Za-z]+(['-][A-Za-z]+)*", w.strip(".,;:!?()\"'*`"))]
    assert len(alphabetic) / len(words) > 0.7, f"not English-like: {reply!r}"
    ascii_share = sum(c.isascii() for c in reply) / len(reply)
    assert ascii_share > 0.95, f"not mostly ASCII: {reply!r}"
