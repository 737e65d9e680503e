"""Count prompt tokens in the app process, without loading any runtime.

Used to refuse a prompt longer than the model's context before any worker starts. The
``tokenizers`` library is small and has no thread pools; models without a
``tokenizer.json`` skip this check and rely on each backend's own.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any


@lru_cache(maxsize=4)
def _load(path: str) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)


def count_prompt_tokens(model_dir: Path, text: str) -> int | None:
    tokenizer_file = model_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        return None
    try:
        tokenizer = _load(str(tokenizer_file))
    except Exception:  # a tokenizer.json this version cannot read: leave it to the backends
        return None
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def encode(model_dir: Path, text: str) -> list[int] | None:
    """``text`` as the model folder's tokenizer.json splits it (None without a readable one):
    answers of runtimes whose own tokenizers differ are compared on these ids."""
    tokenizer_file = model_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        return None
    try:
        return list(_load(str(tokenizer_file)).encode(text, add_special_tokens=False).ids)
    except Exception:  # a tokenizer.json this version cannot read
        return None


def cut_to_tokens(model_dir: Path, text: str, tokens: int) -> str:
    """The start of ``text`` that the model folder's tokenizer reads as ``tokens`` tokens (all of
    it when shorter), cut at a token's end by its character offsets, not by decoding ids (a
    decode can differ from the source text in spaces and bytes). Needs a readable tokenizer.json."""
    encoding = _encoding(str(model_dir / "tokenizer.json"), text)
    if tokens >= len(encoding.ids):
        return text
    return text[: encoding.offsets[max(tokens, 1) - 1][1]]


@lru_cache(maxsize=2)
def _encoding(tokenizer_file: str, text: str) -> Any:
    """A long text's encoding, kept: a sweep cuts the same text at every length (twice each)."""
    return _load(tokenizer_file).encode(text, add_special_tokens=False)
