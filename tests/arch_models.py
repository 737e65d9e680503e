"""Small random-weight models of the common architectures, built locally from configs (no hub).

Each has the shape quirk real models bring (GQA with hidden 576 and tied embeddings like SmolLM2,
Qwen2's attention bias, Phi-3's LongRoPE, Gemma's head_dim and embedding scaling, Mistral's sliding
window, Llama 3's rope scaling) and a real tokenizer plus the chat template of its family: a
byte-level BPE trained with ``tokenizers`` or a SentencePiece ``tokenizer.model`` trained with
``sentencepiece``, both on text that ships with Python. Random weights: the models show whether a
runtime converts and runs the architecture, not answer quality.

Built once into the cache (``PLAYGROUND_CACHE/arch-models``), keyed by the spec; a build takes
a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from playground.paths import cache_dir

BUILDER_VERSION = 1
VOCAB_SIZE = 1024

CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
PHI3 = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)
GEMMA = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token }}{% endif %}{% endfor %}"
)


@dataclass(frozen=True)
class TokenizerSpec:
    kind: str  # "bpe" (byte-level, GPT-2 style) or "sentencepiece" (Llama / Mistral style)
    bos: str
    eos: str
    specials: tuple[str, ...]  # every special token, bos and eos included
    template: str
    pad: str = ""


@dataclass(frozen=True)
class ArchSpec:
    name: str  # short id used in test ids and the support matrix
    label: str  # what the matrix shows
    config: dict = field(hash=False)
    tokenizer: TokenizerSpec = field(hash=False)

    def key(self) -> str:
        blob = json.dumps([BUILDER_VERSION, self.config, self.tokenizer.__dict__], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


CHATML_TOKENS = TokenizerSpec(
    "bpe",
    "<|im_start|>",
    "<|im_end|>",
    ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
    CHATML,
    pad="<|endoftext|>",
)
LLAMA3_TOKENS = TokenizerSpec(
    "bpe",
    "<|begin_of_text|>",
    "<|eot_id|>",
    ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    LLAMA3,
)
PHI3_TOKENS = TokenizerSpec(
    "sentencepiece",
    "<s>",
    "<|end|>",
    ("<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"),
    PHI3,
)
GEMMA_TOKENS = TokenizerSpec(
    "sentencepiece",
    "<bos>",
    "<end_of_turn>",
    ("<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"),
    GEMMA,
    pad="<pad>",
)
MISTRAL_TOKENS = TokenizerSpec("sentencepiece", "<s>", "</s>", ("<s>", "</s>"), MISTRAL)

_COMMON = {"vocab_size": VOCAB_SIZE, "num_hidden_layers": 2, "rms_norm_eps": 1e-5, "use_cache": True}

ARCHITECTURES: tuple[ArchSpec, ...] = (
    ArchSpec(
        "llama-gqa-576",
        "Llama, GQA 9/3 heads, hidden 576, tied embeddings (SmolLM2's shape)",
        {
            **_COMMON,
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": 576,
            "intermediate_size": 1536,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "head_dim": 64,
            "max_position_embeddings": 2048,
            "rope_theta": 100000.0,
            "tie_word_embeddings": True,
        },
        CHATML_TOKENS,
    ),
    ArchSpec(
        "llama3-rope-scaling",
        "Llama 3, llama3 rope scaling, GQA",
        {
            **_COMMON,
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": 256,
            "intermediate_size": 512,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_theta": 500000.0,
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 1024,
            },
            "tie_word_embeddings": False,
        },
        LLAMA3_TOKENS,
    ),
    ArchSpec(
        "qwen2-bias",
        "Qwen2, attention bias, GQA",
        {
            **_COMMON,
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "hidden_size": 256,
            "intermediate_size": 512,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 2048,
            "rope_theta": 1000000.0,
            "tie_word_embeddings": False,
        },
        CHATML_TOKENS,
    ),
    ArchSpec(
        "phi3-longrope",
        "Phi-3, LongRoPE (short/long factors), SentencePiece",
        {
            **_COMMON,
            "architectures": ["Phi3ForCausalLM"],
            "model_type": "phi3",
            "hidden_size": 256,
            "intermediate_size": 512,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 4096,
            "original_max_position_embeddings": 1024,
            "rope_theta": 10000.0,
            "rope_scaling": {
                "type": "longrope",
                "short_factor": [1.0 + 0.02 * i for i in range(32)],
                "long_factor": [1.0 + 0.3 * i for i in range(32)],
            },
            "tie_word_embeddings": False,
        },
        PHI3_TOKENS,
    ),
    ArchSpec(
        "gemma",
        "Gemma, head_dim 64 x 4 heads, MQA, SentencePiece",
        {
            **_COMMON,
            "architectures": ["GemmaForCausalLM"],
            "model_type": "gemma",
            "hidden_size": 256,
            "intermediate_size": 512,
            "num_attention_heads": 4,
            "num_key_value_heads": 1,
            "head_dim": 64,
            "hidden_act": "gelu_pytorch_tanh",
            "max_position_embeddings": 2048,
            "tie_word_embeddings": True,
        },
        GEMMA_TOKENS,
    ),
    ArchSpec(
        "mistral-sliding-window",
        "Mistral, sliding window 128, GQA, SentencePiece",
        {
            **_COMMON,
            "architectures": ["MistralForCausalLM"],
            "model_type": "mistral",
            "hidden_size": 256,
            "intermediate_size": 512,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 2048,
            "sliding_window": 128,
            "tie_word_embeddings": False,
        },
        MISTRAL_TOKENS,
    ),
    ArchSpec(
        "gpt2",
        "GPT-2, Conv1D layers, learned positions (no ORT GenAI builder)",
        {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": VOCAB_SIZE,
            "n_embd": 256,
            "n_layer": 2,
            "n_head": 4,
            "n_positions": 1024,
            "tie_word_embeddings": True,
            "use_cache": True,
        },
        TokenizerSpec(
            "bpe",
            "<|endoftext|>",
            "<|endoftext|>",
            ("<|endoftext|>",),
            CHATML.replace("<|im_start|>", "").replace("<|im_end|>", "<|endoftext|>"),
        ),
    ),
)


def arch_by_name(name: str) -> ArchSpec:
    return next(spec for spec in ARCHITECTURES if spec.name == name)


def training_text() -> list[str]:
    """English text that ships with Python: the language reference topics."""
    from pydoc_data.topics import topics

    return [text for _, text in sorted(topics.items())]


def build_model(spec: ArchSpec, root: Path | None = None) -> Path:
    """The model's HF folder (config, safetensors, tokenizer, chat template), built once."""
    root = root or cache_dir("arch-models")
    target = root / f"{spec.name}-{spec.key()}"
    if (target / "config.json").is_file():
        return target
    tmp = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _write_tokenizer(spec.tokenizer, tmp)
    _write_weights(spec, tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def _write_weights(spec: ArchSpec, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    ids = json.loads((out / "special_ids.json").read_text())
    config_dict = {**spec.config, "bos_token_id": ids["bos"], "eos_token_id": ids["eos"]}
    config_dict["pad_token_id"] = ids["pad"] if ids.get("pad") is not None else ids["eos"]
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    # Keep the config exactly as written (e.g. Phi-3's "rope_scaling" with "type": "longrope") so
    # the exporters read what a hub model's config.json says.
    saved = json.loads((out / "config.json").read_text())
    saved.update({key: config_dict[key] for key in ("bos_token_id", "eos_token_id", "pad_token_id")})
    saved.update(spec.config)
    (out / "config.json").write_text(json.dumps(saved, indent=2))
    generation = {"bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "do_sample": False}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2))
    (out / "special_ids.json").unlink()


def _write_tokenizer(spec: TokenizerSpec, out: Path) -> None:
    fast = _byte_level_bpe(spec) if spec.kind == "bpe" else _sentencepiece(spec, out)
    fast.chat_template = spec.template
    fast.save_pretrained(out)
    (out / "chat_template.jinja").write_text(spec.template)
    ids = {
        "bos": fast.convert_tokens_to_ids(spec.bos),
        "eos": fast.convert_tokens_to_ids(spec.eos),
        "pad": fast.convert_tokens_to_ids(spec.pad) if spec.pad else None,
    }
    (out / "special_ids.json").write_text(json.dumps(ids))


def _byte_level_bpe(spec: TokenizerSpec):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(spec.specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_text(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=spec.bos,
        eos_token=spec.eos,
        pad_token=spec.pad or None,
        additional_special_tokens=[t for t in spec.specials if t not in (spec.bos, spec.eos, spec.pad)],
    )


def _sentencepiece(spec: TokenizerSpec, out: Path):
    """A real ``tokenizer.model`` (BPE with byte fallback, as Llama 2 / Mistral / Phi-3 ship)."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    corpus = out / "corpus.txt"
    corpus.write_text("\n".join(line for text in training_text() for line in text.splitlines() if line))
    extra = [t for t in spec.specials if t not in ("<s>", "</s>", "<unk>")]
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(out / "tokenizer"),
        vocab_size=VOCAB_SIZE,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1 if spec.bos == "<s>" else -1,
        eos_id=2 if "</s>" in spec.specials else -1,
        pad_id=-1,
        user_defined_symbols=extra,
        num_threads=2,
        minloglevel=2,
    )
    corpus.unlink()
    (out / "tokenizer.vocab").unlink()
    # Let transformers convert tokenizer.model itself, as it does for a hub Llama / Mistral folder.
    settings = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": spec.bos,
        "eos_token": spec.eos,
        "unk_token": "<unk>",
        "pad_token": spec.pad or None,
        "add_bos_token": False,
        "add_eos_token": False,
        "legacy": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(settings))
    fast = AutoTokenizer.from_pretrained(out)
    fast.add_special_tokens({"additional_special_tokens": extra})
    return fast
