"""Turn a llama.cpp GGUF file into a normal Hugging Face folder that every backend can read.

transformers' GGUF loader dequantises the weights correctly, but its tokenizer conversion is wrong
for GPT-2-style byte-level vocabularies such as SmolLM2's (a CodeLlama tokenizer class, a decoder
that leaves ``Ġ`` in the text, the wrong eos). So the weights come from transformers and the
tokenizer is rebuilt here from the GGUF's own vocabulary, merges, pre-tokenizer name, special
tokens and chat template. The folder is written to a temporary sibling and renamed into place only
when complete, so a half-written one never counts as done.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

DONE_MARKER = ".import-complete.json"
CONTROL_TOKEN = 3  # llama.cpp's LLAMA_TOKEN_TYPE_CONTROL in tokenizer.ggml.token_type
USER_DEFINED_TOKEN = 4

# llama.cpp's pre-tokenizer names (tokenizer.ggml.pre) whose split is "each digit alone, then the
# GPT-2 regex": STARCODER, REFACT, COMMAND_R, SMOLLM, CODESHELL, EXAONE, MINERVA in llama-vocab.cpp.
DIGITS_THEN_GPT2 = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}
PLAIN_GPT2 = {"gpt-2", "default", "phi-2", "roberta-bpe", "mpt", "olmo", "jais"}


class GGUFImportError(Exception):
    """The GGUF cannot be turned into an HF folder; the message says why."""


@dataclass(frozen=True)
class GGUFTokenizerSpec:
    """What the GGUF says about its tokenizer (the keys llama.cpp itself reads)."""

    model: str  # tokenizer.ggml.model: "gpt2" for byte-level BPE
    pre: str  # tokenizer.ggml.pre: names the pre-tokenizer regex
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    bos_id: int | None
    eos_id: int | None
    unk_id: int | None
    pad_id: int | None
    add_bos: bool
    chat_template: str | None

    @property
    def special_ids(self) -> list[int]:
        return [i for i, kind in enumerate(self.token_types) if kind in (CONTROL_TOKEN, USER_DEFINED_TOKEN)]

    def token(self, token_id: int | None) -> str | None:
        return self.tokens[token_id] if token_id is not None else None


def read_tokenizer_spec(gguf_path: Path) -> GGUFTokenizerSpec:
    from gguf import GGUFReader

    fields = GGUFReader(str(gguf_path)).fields

    def value(key: str, default=None):
        field = fields.get(key)
        return field.contents() if field is not None else default

    return GGUFTokenizerSpec(
        model=value("tokenizer.ggml.model", ""),
        pre=value("tokenizer.ggml.pre", "default"),
        tokens=list(value("tokenizer.ggml.tokens", [])),
        token_types=[int(t) for t in value("tokenizer.ggml.token_type", [])],
        merges=list(value("tokenizer.ggml.merges", [])),
        bos_id=value("tokenizer.ggml.bos_token_id"),
        eos_id=value("tokenizer.ggml.eos_token_id"),
        unk_id=value("tokenizer.ggml.unknown_token_id"),
        pad_id=value("tokenizer.ggml.padding_token_id"),
        add_bos=bool(value("tokenizer.ggml.add_bos_token", False)),
        chat_template=value("tokenizer.chat_template"),
    )


def build_tokenizer(spec: GGUFTokenizerSpec):
    """A PreTrainedTokenizerFast equivalent to llama.cpp's tokenizer for this GGUF."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if spec.model != "gpt2":
        raise GGUFImportError(
            f"tokenizer.ggml.model is {spec.model!r}; only byte-level BPE ('gpt2') vocabularies are "
            "converted here."
        )
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    if spec.pre in DIGITS_THEN_GPT2:
        pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif spec.pre in PLAIN_GPT2:
        pre_tokenizer = byte_level
    else:
        raise GGUFImportError(
            f"tokenizer.ggml.pre is {spec.pre!r}, a pre-tokenizer regex this importer does not know yet "
            f"(known: {', '.join(sorted(DIGITS_THEN_GPT2 | PLAIN_GPT2))})."
        )
    vocab = {token: index for index, token in enumerate(spec.tokens)}
    merges = [tuple(merge.split(" ", 1)) for merge in spec.merges]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.add_special_tokens(
        [AddedToken(spec.tokens[i], special=True, normalized=False) for i in spec.special_ids]
    )
    fallback = spec.token(spec.eos_id)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=spec.token(spec.bos_id),
        eos_token=spec.token(spec.eos_id),
        unk_token=spec.token(spec.unk_id) or fallback,
        pad_token=spec.token(spec.pad_id) or fallback,
        add_bos_token=spec.add_bos,
        clean_up_tokenization_spaces=False,
    )


def _write_folder(gguf_path: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    spec = read_tokenizer_spec(gguf_path)
    tokenizer = build_tokenizer(spec)  # fails fast, before the slow weight load
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32, local_files_only=True
    )
    model.config.bos_token_id = spec.bos_id
    model.config.eos_token_id = spec.eos_id
    model.config.pad_token_id = spec.pad_id if spec.pad_id is not None else spec.eos_id
    model.save_pretrained(out, safe_serialization=True)
    if spec.chat_template:
        tokenizer.chat_template = spec.chat_template
    tokenizer.save_pretrained(out)
    # Written explicitly: the class every loader knows (transformers 4 and 5, openvino-tokenizers,
    # the ORT GenAI builder), the template also as chat_template.jinja, the context length.
    config_file = out / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config["add_bos_token"] = spec.add_bos
    if model.config.max_position_embeddings:
        config["model_max_length"] = int(model.config.max_position_embeddings)
    if spec.chat_template:
        config["chat_template"] = spec.chat_template
        (out / "chat_template.jinja").write_text(spec.chat_template)
    config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    GenerationConfig(
        bos_token_id=spec.bos_id, eos_token_id=spec.eos_id, pad_token_id=model.config.pad_token_id
    ).save_pretrained(out)
    for path in out.iterdir():
        path.chmod(0o644)  # safetensors writes 0600; the folder is shared with other users' tools


def is_complete(folder: Path) -> bool:
    return (folder / DONE_MARKER).is_file()


def import_gguf(gguf_path: Path, target: Path, provenance: dict | None = None) -> float:
    """Write the HF folder for ``gguf_path`` at ``target`` atomically; returns seconds taken."""
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if is_complete(target):
            return 0.0
        tmp = target.with_name(f"{target.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        started = time.perf_counter()
        try:
            _write_folder(gguf_path, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        seconds = time.perf_counter() - started
        record = {"gguf": gguf_path.name, "seconds": round(seconds, 2), **(provenance or {})}
        (tmp / DONE_MARKER).write_text(json.dumps(record, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)  # an interrupted or outdated earlier attempt
        os.replace(tmp, target)
        return seconds
