"""OpenVINO GenAI's LLMPipeline: the C++ generation loop, on CPU, GPU or NPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from playground.backends.base import (
    Backend,
    BackendError,
    BackendProbe,
    GenerationOutput,
    NotSupportedError,
    PerplexityResult,
    ProgressCallback,
    TokenCallback,
)
from playground.backends.openvino_common import (
    compute_note,
    latency_config,
    probe_openvino_devices,
    require_openvino_device,
)
from playground.models.export_errors import load_failure
from playground.models.exporters import openvino_ir, openvino_ir_folder, openvino_precision_note
from playground.settings import GenerationSettings

# NPU pipelines are compiled for static shapes: the prompt may not exceed MAX_PROMPT_LEN.
NPU_MAX_PROMPT_LEN = 1024
NPU_MIN_RESPONSE_LEN = 128


def measuring_scheduler(ov_genai: Any) -> Any:
    """LLMPipeline's own latency-oriented scheduler (its paged-attention default on CPU and GPU)
    without its prefix cache. That cache is on by default "for better TTFT in chat scenarios"
    (openvino.genai ``utils::get_latency_oriented_scheduler_config``): a prompt sent again reuses
    its KV cache, so every run after a warm-up timed a cache hit (2,048 tokens of SmolLM2 "read" in
    50 ms where the prefill takes 3 s) and TTFT stopped meaning what it means for other runtimes."""
    scheduler = ov_genai.SchedulerConfig()
    scheduler.enable_prefix_caching = False
    scheduler.max_num_batched_tokens = 2**63 - 1  # as the default: a long prompt in one step
    return scheduler


class OpenVINOGenAIBackend(Backend):
    name = "openvino-genai"
    label = "OpenVINO GenAI"
    precisions = ("int4", "int8", "fp16")
    default_precision = "int4"
    runtime_mb = 165.0  # openvino + openvino-genai, no torch

    @classmethod
    def kv_bytes(cls, precision: str) -> float:
        return 2.0  # OpenVINO keeps its KV cache in bf16 / f16

    @classmethod
    def conversion_format(cls, device: str, precision: str) -> tuple[str, str] | None:
        """The NPU's int4 is its own export (channel-wise, ``int4-npu``)."""
        npu = device.upper().startswith("NPU")
        return "openvino", "int4-npu" if npu and precision == "int4" else precision

    @classmethod
    def conversion_folder(cls, model_dir: Path, device: str, precision: str) -> Path | None:
        fmt = cls.conversion_format(device, precision)
        return openvino_ir_folder(model_dir, fmt[1]) if fmt else None

    @classmethod
    def probe(cls) -> BackendProbe:
        result = cls.new_probe()
        if not importlib.util.find_spec("openvino_genai"):
            result.reason = "openvino-genai not installed: pip install -r requirements.txt"
            return result
        import openvino_genai

        result.installed = True
        result.version = f"openvino-genai {openvino_genai.__version__}"
        result.devices = probe_openvino_devices()
        return result

    def load(self, model_dir: Path, device: str, precision: str, progress: ProgressCallback) -> None:
        import openvino_genai as ov_genai

        self.precision = self.check_precision(precision)
        self.device = require_openvino_device(device)
        npu = self.device.startswith("NPU")
        _, variant = self.conversion_format(self.device, self.precision)  # type: ignore[misc]
        self.conversion = openvino_ir(model_dir, variant, progress, self.name)
        ir_dir = self.conversion.path
        config: dict[str, Any] = latency_config(self.device, self.precision)
        notes = [openvino_precision_note(ir_dir, self.precision), compute_note(config)]
        if npu:
            config.update(MAX_PROMPT_LEN=NPU_MAX_PROMPT_LEN, MIN_RESPONSE_LEN=NPU_MIN_RESPONSE_LEN)
            notes.append(f"NPU static shapes: prompt <= {NPU_MAX_PROMPT_LEN} tokens")
        else:
            config["scheduler_config"] = measuring_scheduler(ov_genai)
            notes.append("prefix cache off: every run prefills its whole prompt")
        self.device_note = "; ".join(note for note in notes if note)
        progress(f"Compiling for {self.device}")
        try:
            self.pipe = ov_genai.LLMPipeline(str(ir_dir), self.device, **config)
        except RuntimeError as error:
            raise load_failure(self.name, self.precision, model_dir, error) from error
        self.tokenizer = self.pipe.get_tokenizer()
        self.context_length = NPU_MAX_PROMPT_LEN + NPU_MIN_RESPONSE_LEN if npu else None

    def generate(
        self, prompt: str, settings: GenerationSettings, on_tokens: TokenCallback
    ) -> GenerationOutput:
        import openvino_genai as ov_genai

        inputs = self.tokenizer.encode([prompt], add_special_tokens=False)
        prompt_tokens = int(inputs.input_ids.get_shape()[-1])
        if self.device.startswith("NPU") and prompt_tokens > NPU_MAX_PROMPT_LEN:
            raise BackendError(
                f"The prompt has {prompt_tokens} tokens; the NPU pipeline is compiled for at most "
                f"{NPU_MAX_PROMPT_LEN} (MAX_PROMPT_LEN)."
            )
        config = self.pipe.get_generation_config()
        config.max_new_tokens = settings.max_new_tokens
        config.apply_chat_template = False
        config.do_sample = settings.do_sample
        if settings.do_sample:
            config.temperature = settings.temperature
            config.top_p = settings.top_p
            config.top_k = 0
            config.rng_seed = settings.seed
        if not settings.stop_at_eos:
            config.ignore_eos = True
            config.min_new_tokens = settings.max_new_tokens
        streamer = make_counting_streamer(ov_genai, self.tokenizer, on_tokens)
        self.pipe.generate(inputs, config, streamer)
        prompt_ids = inputs.input_ids.data[0].tolist()
        return GenerationOutput(prompt_tokens, streamer.count, streamer.stopped, prompt_ids=prompt_ids)

    def perplexity(self, text: str, max_tokens: int) -> PerplexityResult:
        raise NotSupportedError(
            "OpenVINO GenAI's LLMPipeline exposes no logits (it returns tokens, and scores of the chosen "
            "tokens only); optimum-intel's lane reads the logits of the same kind of IR"
        )


def make_counting_streamer(ov_genai: Any, tokenizer: Any, on_tokens: TokenCallback) -> Any:
    """Counts tokens and hands their ids on itself; openvino-genai's TextStreamer does the
    incremental decoding."""

    class CountingStreamer(ov_genai.StreamerBase):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0
            self.stopped = False
            self.text = ""
            self.decoder = ov_genai.TextStreamer(tokenizer, self._collect)

        def _collect(self, text: str) -> ov_genai.StreamingStatus:
            self.text += text
            return ov_genai.StreamingStatus.RUNNING

        def write(self, token: Any) -> ov_genai.StreamingStatus:
            ids = token if isinstance(token, list) else (token,)
            self.count += len(ids)
            self.decoder.write(token)
            text, self.text = self.text, ""
            if not on_tokens(text, len(ids), ids):
                self.stopped = True
                return ov_genai.StreamingStatus.STOP
            return ov_genai.StreamingStatus.RUNNING

        def end(self) -> None:
            self.decoder.end()
            if self.text:
                on_tokens(self.text, 0, ())
                self.text = ""

    return CountingStreamer()
