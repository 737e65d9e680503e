"""Each runtime's own generation loop, timed the way the engine times its own runs.

The reference for "what does the engine cost": the same model, loaded by the same adapter
(same conversion, same compile options, same thread budget), driven by the loop a user of that
runtime would write — OpenVINO GenAI's ``generate`` with a streamer, ORT GenAI's generator loop
with its tokenizer stream, Hugging Face ``generate`` with a ``TextStreamer``, llama-cpp-python's
``Llama.generate`` — with no callback
into the playground, no batching and no pipe to a parent.

Timing matches ``TokenMeter``: the clock starts before tokenization, TTFT ends at the first
token, decode tok/s is (tokens - 1) / (last token - first token).

Run as a server (``python -m playground.bench.native``) that the fidelity benchmark keeps loaded
between interleaved runs: one JSON command per stdin line, one JSON answer per line on the
original stdout (runtimes that print are sent to stderr).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class NativeRun:
    new_tokens: int
    ttft_s: float | None
    decode_tokens_per_s: float | None
    e2e_s: float
    text: str


class Clock:
    """Token arrival times since ``start``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.times: list[float] = []

    def token(self, count: int = 1) -> None:
        now = time.perf_counter()
        self.times.extend([now] * count)

    def result(self, text: str) -> NativeRun:
        end = time.perf_counter()
        times = self.times
        ttft = times[0] - self.start if times else None
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        decode = (len(times) - 1) / span if span > 0 else None
        return NativeRun(len(times), ttft, decode, end - self.start, text)


def openvino_genai_loop(backend: Any, prompt: str, max_new_tokens: int) -> NativeRun:
    """``LLMPipeline.generate(inputs, config, streamer)`` with a token streamer that decodes."""
    import openvino_genai as ov_genai

    clock = Clock()
    inputs = backend.tokenizer.encode([prompt], add_special_tokens=False)
    config = backend.pipe.get_generation_config()
    config.max_new_tokens = max_new_tokens
    config.min_new_tokens = max_new_tokens
    config.ignore_eos = True
    config.do_sample = False
    config.apply_chat_template = False
    pieces: list[str] = []

    def collect(text: str) -> ov_genai.StreamingStatus:
        pieces.append(text)
        return ov_genai.StreamingStatus.RUNNING

    class Streamer(ov_genai.StreamerBase):
        def __init__(self) -> None:
            super().__init__()
            self.text = ov_genai.TextStreamer(backend.tokenizer, collect)

        def write(self, token: Any) -> ov_genai.StreamingStatus:
            clock.token(len(token) if isinstance(token, list) else 1)
            return self.text.write(token)

        def end(self) -> None:
            self.text.end()

    backend.pipe.generate(inputs, config, Streamer())
    return clock.result("".join(pieces))


def onnxruntime_genai_loop(backend: Any, prompt: str, max_new_tokens: int) -> NativeRun:
    """The generator loop of ORT GenAI's examples, decoding through its tokenizer stream."""
    import onnxruntime_genai as og

    clock = Clock()
    tokens = backend.tokenizer.encode(prompt)
    params = og.GeneratorParams(backend.model)
    length = len(tokens) + max_new_tokens
    params.set_search_options(max_length=length, min_length=length, do_sample=False)
    generator = og.Generator(backend.model, params)
    stream = backend.tokenizer.create_stream()
    generator.append_tokens(tokens)
    pieces = []
    while not generator.is_done():
        generator.generate_next_token()
        pieces.append(stream.decode(generator.get_next_tokens()[0]))
        clock.token()
    return clock.result("".join(pieces))


def hf_generate_loop(backend: Any, prompt: str, max_new_tokens: int) -> NativeRun:
    """``model.generate(**inputs, streamer=TextStreamer(...))``: transformers, optimum-intel and
    the NPU library all generate through it."""
    import torch
    from transformers import TextStreamer

    clock = Clock()
    tokenizer = backend.tokenizer
    pieces: list[str] = []

    class Streamer(TextStreamer):
        def put(self, value: Any) -> None:
            if not (self.skip_prompt and self.next_tokens_are_prompt):
                clock.token(int(value.shape[-1]) if value.ndim else 1)
            super().put(value)

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            pieces.append(text)

    torch_device = backend.device if backend.name == "transformers" else "cpu"  # others: OpenVINO's
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(torch_device)
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "min_new_tokens": max_new_tokens,
                              "do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    if tokenizer.pad_token_id is None:
        kwargs["pad_token_id"] = tokenizer.eos_token_id
    with torch.inference_mode():
        backend.model.generate(**inputs, streamer=Streamer(tokenizer, skip_prompt=True,
                                                           skip_special_tokens=True), **kwargs)
    return clock.result("".join(pieces))


def llama_cpp_loop(backend: Any, prompt: str, max_new_tokens: int) -> NativeRun:
    """llama-cpp-python's token loop, ``Llama.generate`` (what ``create_completion`` iterates),
    greedy, detokenizing each token as it comes; ``create_completion`` itself cannot be told to
    ignore the end of text, which every path here must."""
    import codecs

    llm = backend.llm
    clock = Clock()
    tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    llm.reset()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pieces: list[str] = []
    for token in llm.generate(tokens, reset=True, temp=0.0, repeat_penalty=1.0):
        clock.token()
        pieces.append(decoder.decode(llm.detokenize([token], special=False)))
        if len(clock.times) >= max_new_tokens:
            break
    return clock.result("".join(pieces))


LOOPS: dict[str, Callable[[Any, str, int], NativeRun]] = {
    "transformers": hf_generate_loop,
    "optimum-intel": hf_generate_loop,
    "npu-library": hf_generate_loop,
    "openvino-genai": openvino_genai_loop,
    "onnxruntime-genai": onnxruntime_genai_loop,
    "llama.cpp": llama_cpp_loop,
}


class NativeServer:
    """One backend, loaded once by its adapter; ``generate`` runs the runtime's own loop."""

    def __init__(self) -> None:
        self.backend: Any = None
        self.loop: Callable[[Any, str, int], NativeRun] | None = None

    def load(self, backend: str, model_dir: str, device: str, precision: str) -> dict:
        from playground.backends import get_backend_class
        from playground.engine.threads import recorded_threads, thread_budget

        if backend not in LOOPS:
            raise ValueError(f"no native loop for {backend!r}; known: {', '.join(LOOPS)}")
        cls = get_backend_class(backend)
        probe = cls.probe()
        self.backend = cls()
        self.backend.load(Path(model_dir), device or probe.default_device() or "", precision,
                          lambda text, stage="loading": None)
        self.loop = LOOPS[backend]
        return {"device": self.backend.device, "precision": self.backend.precision,
                "threads": recorded_threads(thread_budget()), "versions": probe.version}

    def generate(self, prompt: str, max_new_tokens: int) -> dict:
        """One run of the runtime's loop, with the machine's load measured as the engine's worker does."""
        from playground.engine.contention import OtherLoad, contended_host

        assert self.loop is not None, "load first"
        others = OtherLoad.start()
        run = asdict(self.loop(self.backend, prompt, max_new_tokens))
        run["other_cpu_percent"] = others.percent()
        run["host_steal_percent"] = others.steal_percent
        run["contended_host"] = contended_host(others.steal_percent)
        return run


def main() -> None:
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # runtimes' prints must not break the protocol
    logging.basicConfig(  # exporters' output and diagnostics: stderr, this server's log
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    server = NativeServer()
    for line in sys.stdin:
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "exit":
            break
        try:
            answer = {"ok": True, **getattr(server, name)(**command)}
        except Exception as exc:
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                      "trace": traceback.format_exc(limit=6)}
        protocol.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
