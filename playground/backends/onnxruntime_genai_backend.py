"""ONNX Runtime GenAI: its model builder's ONNX model and its own generation loop.

The execution provider is picked at run time from what the installed wheel supports:
CPU everywhere, DirectML with ``onnxruntime-genai-directml`` (Windows), CUDA with
``onnxruntime-genai-cuda``, and with ``onnxruntime-genai-winml`` (Windows 11) DirectML plus every
provider Windows ML's catalog offers for this machine (OpenVINO for Intel NPU / GPU, QNN, VitisAI,
NvTensorRTRTX: ``winml_providers``), probed at run time. Only one of those wheels fits in an
environment. The Windows ML path is written against its documented API and has not run on real
hardware yet.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from playground.backends import winml_providers
from playground.backends.base import (
    Backend,
    BackendError,
    BackendProbe,
    DeviceProbe,
    DeviceUnavailableError,
    GenerationOutput,
    PerplexityResult,
    ProgressCallback,
    TokenCallback,
)
from playground.engine.threads import thread_budget
from playground.models.export_errors import load_failure
from playground.models.exporters import ort_block_size, ort_genai_folder, ort_genai_model
from playground.settings import GenerationSettings

WINML = "onnxruntime-genai-winml"
FLAVOURS = ("onnxruntime-genai", "onnxruntime-genai-cuda", "onnxruntime-genai-directml", WINML)
# fp16 kernels are for GPUs; the CPU provider runs fp32 and int4.
GPU_ONLY_PRECISIONS = ("fp16",)


def installed_flavour() -> str | None:
    for name in FLAVOURS:
        try:
            version(name)
            return name
        except PackageNotFoundError:
            continue
    return None


class ONNXRuntimeGenAIBackend(Backend):
    name = "onnxruntime-genai"
    label = "ONNX Runtime GenAI"
    precisions = ("int4", "fp32", "fp16")
    default_precision = "int4"
    runtime_mb = 90.0

    @classmethod
    def kv_bytes(cls, precision: str) -> float:
        return 2.0 if precision == "fp16" else 4.0  # fp32 on CPU

    @classmethod
    def conversion_format(cls, device: str, precision: str) -> tuple[str, str] | None:
        return "ort-genai", precision

    @classmethod
    def conversion_folder(cls, model_dir: Path, device: str, precision: str) -> Path | None:
        """The build for the device's execution provider (a Windows ML catalog lane's provider is
        only known once probed: it is looked for under the device's name)."""
        return ort_genai_folder(model_dir, precision, (device or "cpu").lower())

    @classmethod
    def probe(cls) -> BackendProbe:
        result = cls.new_probe()
        flavour = installed_flavour()
        if flavour is None or not importlib.util.find_spec("onnxruntime_genai"):
            result.reason = "onnxruntime-genai not installed: pip install -r requirements.txt"
            return result
        import onnxruntime_genai as og

        result.installed = True
        result.version = f"{flavour} {version(flavour)}"
        result.devices.append(DeviceProbe("cpu", True, "CPU execution provider"))
        dml = og.is_dml_available()
        result.devices.append(
            DeviceProbe(
                "dml",
                dml,
                "DirectML (DirectX 12 GPU)"
                if dml
                else "DirectML needs Windows and onnxruntime-genai-directml",
            )
        )
        cuda = og.is_cuda_available()
        result.devices.append(
            DeviceProbe(
                "cuda", cuda, "CUDA" if cuda else "CUDA needs an NVIDIA GPU and onnxruntime-genai-cuda"
            )
        )
        if flavour == WINML:
            result.devices.extend(winml_devices())
        return result

    def load(self, model_dir: Path, device: str, precision: str, progress: ProgressCallback) -> None:
        import onnxruntime_genai as og

        self.precision = self.check_precision(precision)
        self.device = (device or "cpu").lower()
        available = {"cpu": True, "dml": og.is_dml_available(), "cuda": og.is_cuda_available()}
        winml = installed_flavour() == WINML
        catalog_ep = winml_providers.lanes_by_device().get(self.device) if winml else None
        if catalog_ep is not None:
            progress(f"Windows ML: making {catalog_ep.catalog_name} ready (it may download it once)")
            try:
                winml_providers.register(catalog_ep)
            except (ImportError, LookupError, OSError, RuntimeError) as exc:
                raise DeviceUnavailableError(
                    f"Windows ML could not provide {catalog_ep.catalog_name}: {exc}") from exc
            available[self.device] = True
        if not available.get(self.device):
            raise DeviceUnavailableError(
                f"Execution provider {self.device!r} is not available in {installed_flavour()}: "
                "DirectML needs onnxruntime-genai-directml on Windows, CUDA needs onnxruntime-genai-cuda."
            )
        if self.device == "cpu" and self.precision in GPU_ONLY_PRECISIONS:
            raise BackendError("onnxruntime-genai on cpu runs int4 or fp32; fp16 needs dml or cuda.")
        builder_ep = self.device if catalog_ep is None else builder_target(catalog_ep)
        self.conversion = ort_genai_model(model_dir, self.precision, builder_ep, progress)
        model_path = self.conversion.path
        if self.precision == "int4":
            self.device_note = f"int4 block {ort_block_size(model_dir)}"
        progress(f"Creating session ({self.device})")
        try:
            config = og.Config(str(model_path))
            config.clear_providers()
            if catalog_ep is not None:  # a Windows ML provider, on the device type it was picked for
                config.append_provider(catalog_ep.genai_name)
                config.set_decoder_provider_options_hardware_device_type(catalog_ep.genai_name,
                                                                         catalog_ep.hardware)
                self.device_note = f"Windows ML {catalog_ep.catalog_name} on {catalog_ep.hardware} (untested)"
            elif self.device != "cpu":
                config.append_provider(self.device)
            threads = thread_budget()
            if threads:  # genai_config's session_options, as the model builder writes them
                config.overlay(json.dumps({"model": {"decoder": {"session_options": {
                    "intra_op_num_threads": threads}}}}))
            self.model: Any = og.Model(config)
        except RuntimeError as error:
            raise load_failure(self.name, self.precision, model_dir, error) from error
        self.tokenizer = og.Tokenizer(self.model)
        genai_config = json.loads((model_path / "genai_config.json").read_text())
        self.context_length = genai_config.get("model", {}).get("context_length")

    def generate(
        self, prompt: str, settings: GenerationSettings, on_tokens: TokenCallback
    ) -> GenerationOutput:
        import onnxruntime_genai as og

        tokens = self.tokenizer.encode(prompt)
        prompt_tokens = len(tokens)
        params = og.GeneratorParams(self.model)
        options: dict[str, Any] = {
            "max_length": prompt_tokens + settings.max_new_tokens,
            "do_sample": settings.do_sample,
        }
        if settings.do_sample:
            options.update(
                temperature=settings.temperature, top_p=settings.top_p, top_k=0, random_seed=settings.seed
            )
        if not settings.stop_at_eos:
            options["min_length"] = prompt_tokens + settings.max_new_tokens
        params.set_search_options(**options)
        generator = og.Generator(self.model, params)
        stream = self.tokenizer.create_stream()
        generator.append_tokens(tokens)
        count = 0
        stopped = False
        while not generator.is_done():
            generator.generate_next_token()
            ids = generator.get_next_tokens().tolist()  # batch size 1: [token]
            count += 1
            if not on_tokens(stream.decode(ids[0]), 1, ids):
                stopped = True
                break
        return GenerationOutput(prompt_tokens, count, stopped, prompt_ids=tokens.tolist())

    def perplexity(self, text: str, max_tokens: int) -> PerplexityResult:
        """A fresh og.Generator per window: ``append_tokens`` runs the window's prefill, and the
        model's "logits" output holds one row per appended token (``get_logits()`` gives only the
        last); an older build that keeps only the last row is read one token at a time."""
        import numpy as np
        import onnxruntime_genai as og

        from playground.backends.perplexity import perplexity_of

        def generator(length: int) -> Any:
            params = og.GeneratorParams(self.model)
            params.set_search_options(max_length=length + 1, do_sample=False)
            return og.Generator(self.model, params)

        def logits_of(piece: Sequence[int]) -> np.ndarray:
            ids = np.asarray(piece, dtype=np.int32)
            first = generator(len(ids))
            first.append_tokens(ids)
            rows = np.asarray(first.get_output("logits"))[0]
            if rows.shape[0] == len(ids):
                return rows
            stepped = generator(len(ids))  # one token per step: get_logits() after each
            out = []
            for token in ids:
                stepped.append_tokens(np.asarray([token], dtype=np.int32))
                out.append(np.asarray(stepped.get_logits())[0, -1])
            return np.stack(out)

        ids = self.tokenizer.encode(text).tolist()
        return perplexity_of(ids, self.context_length, logits_of, max_tokens,
                             f"og.Generator logits ({self.precision}, {self.device})")

    def unload(self) -> None:
        self.model = None


def builder_target(ep: winml_providers.CatalogEP) -> str:
    """The model builder's target for a Windows ML provider: its own where the builder has one, else
    the generic CPU graph (OpenVINO compiles it for the NPU / GPU; QNN and VitisAI usually want models
    prepared for them, e.g. by AI Toolkit, given as the model folder)."""
    return "NvTensorRtRtx" if ep.genai_name == "NvTensorRtRtx" else "cpu"


def winml_devices() -> list[DeviceProbe]:
    """One device per provider Windows ML's catalog offers here (listed, not downloaded)."""
    entries, reason = winml_providers.catalog()
    if not entries:
        why = reason or "its catalog offers no provider here"
        return [DeviceProbe("openvino.npu", False, f"Windows ML: {why}")]
    return [DeviceProbe(entry.ep.device, True, f"Windows ML {entry.ep.catalog_name} ({entry.ep.note}; "
                        f"{entry.ready_state}; untested on real hardware)") for entry in entries]
