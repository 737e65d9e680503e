"""OpenVINO through optimum-intel's OVModelForCausalLM, exactly as the Phi-3 AI PC guide runs it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from playground.backends.base import (
    Backend,
    BackendProbe,
    DeviceProbe,
    GenerationOutput,
    PerplexityResult,
    ProgressCallback,
    TokenCallback,
)
from playground.backends.hf_streaming import generate_streamed
from playground.backends.openvino_common import (
    compute_note,
    latency_config,
    probe_openvino_devices,
    require_openvino_device,
)
from playground.models.export_errors import load_failure
from playground.models.exporters import openvino_ir, openvino_ir_folder, openvino_precision_note
from playground.settings import GenerationSettings

NPU_NOT_TARGETED = "optimum-intel does not target the NPU; use openvino-genai or the NPU library"


class OptimumIntelBackend(Backend):
    name = "optimum-intel"
    label = "OpenVINO (optimum-intel)"
    precisions = ("int4", "int8", "fp16")
    default_precision = "int4"
    runtime_mb = 1210.0  # optimum imports torch and transformers besides openvino

    @classmethod
    def kv_bytes(cls, precision: str) -> float:
        return 2.0  # OpenVINO keeps its KV cache in bf16 / f16

    @classmethod
    def conversion_format(cls, device: str, precision: str) -> tuple[str, str] | None:
        return "openvino", precision

    @classmethod
    def conversion_folder(cls, model_dir: Path, device: str, precision: str) -> Path | None:
        return openvino_ir_folder(model_dir, precision)

    @classmethod
    def probe(cls) -> BackendProbe:
        result = cls.new_probe()
        if not importlib.util.find_spec("optimum") or not importlib.util.find_spec("optimum.intel"):
            result.reason = "optimum-intel not installed: pip install -r requirements.txt"
            return result
        from importlib.metadata import version

        result.installed = True
        result.version = f"optimum-intel {version('optimum-intel')}"
        # Dynamic-shape models through optimum-intel are not meant for the NPU.
        result.devices = [
            DeviceProbe(probe.device, False, NPU_NOT_TARGETED) if probe.device.startswith("NPU") else probe
            for probe in probe_openvino_devices()
        ]
        return result

    def load(self, model_dir: Path, device: str, precision: str, progress: ProgressCallback) -> None:
        from optimum.intel import OVModelForCausalLM
        from transformers import AutoTokenizer

        self.precision = self.check_precision(precision)
        self.device = require_openvino_device(device)
        self.conversion = openvino_ir(model_dir, self.precision, progress, self.name)
        ir_dir = self.conversion.path
        config = latency_config(self.device, self.precision)
        self.device_note = "; ".join(filter(None, [openvino_precision_note(ir_dir, self.precision),
                                                   compute_note(config)]))
        progress(f"Compiling for {self.device}")
        self.tokenizer = AutoTokenizer.from_pretrained(ir_dir)
        try:
            self.model: Any = OVModelForCausalLM.from_pretrained(ir_dir, device=self.device, ov_config=config)
        except (RuntimeError, ValueError) as error:
            raise load_failure(self.name, self.precision, model_dir, error) from error
        self.context_length = getattr(self.model.config, "max_position_embeddings", None)

    def generate(
        self, prompt: str, settings: GenerationSettings, on_tokens: TokenCallback
    ) -> GenerationOutput:
        return generate_streamed(self.model, self.tokenizer, prompt, settings, on_tokens)

    def perplexity(self, text: str, max_tokens: int) -> PerplexityResult:
        from playground.backends.perplexity import hf_perplexity

        # OVModelForCausalLM's forward without past key values starts from an empty (stateful) cache
        return hf_perplexity(self.model, self.tokenizer, text, max_tokens, self.context_length,
                             f"OVModelForCausalLM forward logits ({self.precision})")

    def unload(self) -> None:
        self.model = None
