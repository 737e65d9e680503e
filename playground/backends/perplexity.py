"""Perplexity from a runtime's own logits: windows over the text, a stable log-softmax, the sum.

A backend gives ``perplexity_of`` its tokenizer's ids for the held-out text and a function
returning the runtime's logits for one window of ids (``[len(window), vocab]``, one row per
position, each row predicting the next token). The text is read in windows of at most the
model's context; when it is longer, windows overlap by half (stride = window / 2) and each
window scores only the tokens the previous one did not, with the context before them as
history: the usual strided evaluation. The first token is never scored (nothing predicts it).

Imported by backends inside their ``perplexity`` methods only (worker processes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from playground.backends.base import BackendError, PerplexityResult

MAX_WINDOW = 1024  # tokens per forward pass at most, whatever the model's context
Logits = Callable[[Sequence[int]], "np.ndarray"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64, shifted by each row's maximum (no overflow)."""
    rows = np.asarray(logits, dtype=np.float64)
    shifted = rows - rows.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def windows(count: int, window: int) -> list[tuple[int, int, int]]:
    """(begin, end, scored) per window over ``count`` ids: the window is ids[begin:end] and its
    last ``scored`` targets are new (the first window scores all but its first token)."""
    if count < 2:
        return []
    window = max(2, window)
    stride = max(1, window // 2)
    spans, done = [], 1  # ids[:done] need no score: the first is never predicted
    for begin in range(0, count, stride):
        end = min(begin + window, count)
        spans.append((begin, end, end - done))
        done = end
        if end == count:
            break
    return spans


def perplexity_of(
    ids: Sequence[int], context: int | None, logits_of: Logits, max_tokens: int, source: str
) -> PerplexityResult:
    """exp(mean negative log-likelihood) of ``ids[1:max_tokens]`` given what comes before each."""
    ids = list(ids)[:max_tokens]
    if len(ids) < 2:
        raise BackendError(f"the held-out text is {len(ids)} token(s): nothing to score")
    window = min(context or MAX_WINDOW, MAX_WINDOW)
    nll, scored = 0.0, 0
    spans = windows(len(ids), window)
    for begin, end, new in spans:
        piece = ids[begin:end]
        logits = np.asarray(logits_of(piece))
        if logits.shape[0] != len(piece):
            raise BackendError(f"{source}: {logits.shape[0]} rows of logits for {len(piece)} tokens")
        rows = log_softmax(logits[len(piece) - 1 - new : len(piece) - 1])
        targets = np.asarray(piece[len(piece) - new :])
        nll -= float(rows[np.arange(new), targets].sum())
        scored += new
    value = math.exp(nll / scored)
    if not math.isfinite(value):
        raise BackendError(f"{source}: the perplexity is not finite (the logits overflowed or are NaN)")
    return PerplexityResult(value, scored, len(spans), window, source)


def hf_perplexity(
    model: Any, tokenizer: Any, text: str, max_tokens: int, context: int | None, source: str, device: str = ""
) -> PerplexityResult:
    """A model with a Hugging Face forward (torch, optimum-intel's OpenVINO model, the NPU library's
    compiled one): its ``logits`` for each window, with the text tokenized as its tokenizer does."""
    import torch

    def logits_of(piece: Sequence[int]) -> np.ndarray:
        ids = torch.tensor([list(piece)], dtype=torch.long)
        if device:
            ids = ids.to(device)
        with torch.inference_mode():
            output = model(input_ids=ids, attention_mask=torch.ones_like(ids))
        logits = output.logits if hasattr(output, "logits") else output[0]
        return logits[0].float().cpu().numpy()

    return perplexity_of(tokenizer(text)["input_ids"], context, logits_of, max_tokens, source)
