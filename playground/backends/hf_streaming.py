"""Streaming for backends that generate through ``transformers``' ``generate()``.

Shared by the transformers, optimum-intel and NPU-library adapters: they all call a
``generate()`` that accepts a ``streamer`` and ``stopping_criteria``.
"""

from __future__ import annotations

from typing import Any

from playground.backends.base import GenerationOutput, TokenCallback


def make_streamer(tokenizer: Any, on_tokens: TokenCallback) -> Any:
    """A TextStreamer that forwards decoded words, token counts and ids to ``on_tokens``.

    TextStreamer already solves incremental decoding (whole words, UTF-8 safety); we only
    collect the ids of each ``put`` (one small tensor per step) until TextStreamer hands over
    the text they finish, and remember when the caller asks to stop.
    """
    from transformers import TextStreamer

    class CallbackStreamer(TextStreamer):
        def __init__(self) -> None:
            super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
            self.pending_ids: list[int] = []
            self.stop_requested = False

        def put(self, value: Any) -> None:
            if not (self.skip_prompt and self.next_tokens_are_prompt):
                self.pending_ids.extend(value.reshape(-1).tolist())  # batch size 1
            super().put(value)

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            ids = self.pending_ids
            if text or ids:
                self.pending_ids = []
                if not on_tokens(text, len(ids), ids):
                    self.stop_requested = True

    return CallbackStreamer()


def make_stopping_criteria(streamer: Any) -> Any:
    """Stops ``generate()`` at the next step once the streamer's caller asked to stop."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopWhenAsked(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full(
                (input_ids.shape[0],), streamer.stop_requested, dtype=torch.bool, device=input_ids.device
            )

    return StoppingCriteriaList([StopWhenAsked()])


def hf_generate_kwargs(settings: Any, tokenizer: Any) -> dict[str, Any]:
    """Generation arguments equivalent to the other runtimes' for the same settings."""
    kwargs: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens, "do_sample": settings.do_sample}
    if settings.do_sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=0)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if not settings.stop_at_eos:
        kwargs["min_new_tokens"] = settings.max_new_tokens
    if tokenizer.pad_token_id is None:
        kwargs["pad_token_id"] = tokenizer.eos_token_id
    return kwargs


def generate_streamed(
    model: Any, tokenizer: Any, prompt: str, settings: Any, on_tokens: TokenCallback, device: str = "cpu"
) -> GenerationOutput:
    """Tokenize the already templated prompt (no extra special tokens, like every other
    backend), seed when sampling, and run ``model.generate()`` streaming into ``on_tokens``."""
    import torch

    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(device)
    prompt_tokens = int(inputs["input_ids"].shape[-1])
    streamer = make_streamer(tokenizer, on_tokens)
    if settings.do_sample:
        torch.manual_seed(settings.seed)
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            streamer=streamer,
            stopping_criteria=make_stopping_criteria(streamer),
            **hf_generate_kwargs(settings, tokenizer),
        )
    return GenerationOutput(
        prompt_tokens,
        int(output.shape[-1]) - prompt_tokens,
        streamer.stop_requested,
        prompt_ids=inputs["input_ids"][0].tolist(),
    )
