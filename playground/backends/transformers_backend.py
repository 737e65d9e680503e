"""PyTorch through Hugging Face transformers: the reference every other runtime is compared to."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playground.backends.base import (
    Backend,
    BackendProbe,
    DeviceProbe,
    DeviceUnavailableError,
    GenerationOutput,
    PerplexityResult,
    ProgressCallback,
    TokenCallback,
)
from playground.backends.hf_streaming import generate_streamed
from playground.settings import GenerationSettings

if TYPE_CHECKING:
    from playground.engine.memory import ModelShape

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


class TransformersBackend(Backend):
    name = "transformers"
    label = "PyTorch (transformers)"
    precisions = ("fp32", "bf16", "fp16")
    default_precision = "fp32"
    runtime_mb = 1110.0  # torch + transformers

    @classmethod
    def kv_bytes(cls, precision: str) -> float:
        from playground.engine.memory import PRECISION_BYTES

        return PRECISION_BYTES.get(precision, 4.0)

    @classmethod
    def weights_mb(cls, shape: ModelShape, precision: str) -> float | None:
        from playground.engine.memory import MB, PRECISION_BYTES

        return shape.params * PRECISION_BYTES[precision] / MB

    @classmethod
    def probe(cls) -> BackendProbe:
        result = cls.new_probe()
        if not (importlib.util.find_spec("torch") and importlib.util.find_spec("transformers")):
            result.reason = "torch / transformers not installed: pip install -r requirements.txt"
            return result
        import torch
        import transformers

        result.installed = True
        result.version = f"transformers {transformers.__version__}, torch {torch.__version__}"
        result.devices.append(DeviceProbe("cpu", True, f"{torch.get_num_threads()} threads"))
        if torch.cuda.is_available():
            for index in range(torch.cuda.device_count()):
                result.devices.append(DeviceProbe(f"cuda:{index}", True, torch.cuda.get_device_name(index)))
        else:
            result.devices.append(DeviceProbe("cuda", False, "no CUDA device (or CPU-only torch)"))
        xpu = getattr(torch, "xpu", None)
        if xpu is not None and xpu.is_available():
            result.devices.append(DeviceProbe("xpu", True, "Intel GPU (XPU)"))
        else:
            result.devices.append(DeviceProbe("xpu", False, "no Intel XPU device visible to torch"))
        return result

    def load(self, model_dir: Path, device: str, precision: str, progress: ProgressCallback) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.precision = self.check_precision(precision)
        device = (device or "cpu").lower()
        kind = device.split(":")[0]
        if kind == "cuda" and not torch.cuda.is_available():
            raise DeviceUnavailableError("CUDA is not available here (no NVIDIA GPU or a CPU-only torch).")
        if kind == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
            raise DeviceUnavailableError("No Intel XPU device is visible to torch here.")
        if kind not in ("cpu", "cuda", "xpu"):
            raise DeviceUnavailableError(f"transformers cannot run on {device!r}; use cpu, cuda or xpu.")
        progress(f"Loading weights ({self.precision}) on {device}")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model: Any = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=getattr(torch, DTYPES[self.precision])
        ).to(device)
        self.model.eval()
        self.device = device
        self.context_length = getattr(self.model.config, "max_position_embeddings", None)

    def generate(
        self, prompt: str, settings: GenerationSettings, on_tokens: TokenCallback
    ) -> GenerationOutput:
        return generate_streamed(self.model, self.tokenizer, prompt, settings, on_tokens, self.device)

    def perplexity(self, text: str, max_tokens: int) -> PerplexityResult:
        from playground.backends.perplexity import hf_perplexity

        return hf_perplexity(self.model, self.tokenizer, text, max_tokens, self.context_length,
                             f"torch forward logits ({self.precision})", self.device)

    def unload(self) -> None:
        self.model = None
