"""Intel NPU Acceleration Library: PyTorch model whose Linear layers run through OpenVINO on the NPU.

The library (archived by Intel in 2025, superseded by OpenVINO GenAI) is still the simplest
"PyTorch on the NPU" path on AI PCs, so the playground keeps it for comparison. With no NPU its
C++ core compiles every layer for the OpenVINO CPU device instead, which ``device_note`` reports.

It must live in its own worker process: importing it patches ``torch.nn.Module.to`` globally, it
writes ``./cache`` in the working directory (the worker ``chdir``s into the playground cache), and
two concurrent inferences abort the whole process.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playground.backends.base import (
    Backend,
    BackendError,
    BackendProbe,
    DeviceProbe,
    DeviceUnavailableError,
    GenerationOutput,
    MissingPackageError,
    ModelFormatError,
    PerplexityResult,
    ProgressCallback,
    TokenCallback,
)
from playground.backends.hf_streaming import generate_streamed
from playground.models.export_errors import load_failure
from playground.paths import cache_dir
from playground.settings import GenerationSettings

if TYPE_CHECKING:
    from playground.engine.memory import ModelShape

PACKAGE = "intel_npu_acceleration_library"
INSTALL_HINT = "run `python scripts/install_npu_library.py`"
STAMP_NAME = "_playground_install.json"  # written by scripts/install_npu_library.py
NPU_PRESENT = "NPU present"
CPU_FALLBACK = "no NPU: CPU fallback"
# The device a result really ran on when the library fell back (the requested device stays "NPU").
CPU_FALLBACK_DEVICE = "CPU (NPU library fallback)"


def _missing_reason() -> str:
    """Why the library cannot be used here, or "" if it looks installed (without importing it)."""
    if importlib.util.find_spec(PACKAGE) is None:
        return f"Intel NPU Acceleration Library not installed: {INSTALL_HINT}"
    if importlib.util.find_spec("neural_compressor") is None:
        return f"neural-compressor (imported by the library) not installed: {INSTALL_HINT}"
    return ""


def _version() -> str:
    try:
        version = importlib.metadata.version("intel-npu-acceleration-library")
    except importlib.metadata.PackageNotFoundError:
        return ""
    spec = importlib.util.find_spec(PACKAGE)
    if spec and spec.submodule_search_locations:
        stamp = Path(spec.submodule_search_locations[0], STAMP_NAME)
        with contextlib.suppress(OSError, ValueError):
            built_for = json.loads(stamp.read_text()).get("openvino")
            if built_for:
                version += f" (patched build for OpenVINO {built_for})"
    return version


def _openvino_sees_npu() -> bool:
    """Ask the pip OpenVINO for its devices.

    On Windows the library's DLL links OpenVINO 2024.4 by name: with the pip OpenVINO (2026)
    already loaded, Windows would hand it that one instead, so ask from a child process there.
    """
    if importlib.util.find_spec("openvino") is None:
        return False
    code = "import openvino; print('NPU' in openvino.Core().available_devices)"
    with contextlib.suppress(Exception):
        if sys.platform == "win32":
            answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
            return answer.stdout.strip() == "True"
        import openvino

        return "NPU" in openvino.Core().available_devices
    return False


def npu_note(library_sees_npu: bool | None = None) -> str:
    """What the library will really run on: it silently falls back to CPU without an NPU.

    ``library_sees_npu`` is the library's own answer once it is imported (its C++ core decides
    the fallback); before that, ask OpenVINO.
    """
    found = _openvino_sees_npu() if library_sees_npu is None else library_sees_npu
    if found:
        return NPU_PRESENT
    if glob.glob("/dev/accel/accel*"):
        return f"{NPU_PRESENT} (/dev/accel), but OpenVINO lists no NPU: check the driver; runs on CPU"
    return CPU_FALLBACK


class NPULibraryBackend(Backend):
    name = "npu-library"
    label = "Intel NPU Acceleration Library"
    precisions = ("int4", "int8", "fp16")
    default_precision = "int4"
    runtime_mb = 1290.0  # torch + transformers + openvino + neural-compressor

    @classmethod
    def weights_mb(cls, shape: ModelShape, precision: str) -> float | None:
        """The library loads the fp32 torch model, converts it holding a second fp32 copy at the
        peak (measured on SmolLM2-135M: ~1.9x the fp32 weights), and keeps a quantised copy of
        every Linear."""
        from playground.engine.memory import MB

        quantised = {"int4": 0.5, "int8": 1.0, "fp16": 2.0}[precision]
        return (2 * shape.params * 4 + (shape.linear_params + shape.lm_head_params) * quantised) / MB

    def __init__(self) -> None:
        super().__init__()
        self.model: Any = None
        self.tokenizer: Any = None
        # The library's OpenVINO infer requests abort the process on concurrent use.
        self._busy = threading.Lock()

    @classmethod
    def probe(cls) -> BackendProbe:
        result = cls.new_probe()
        reason = _missing_reason()
        if reason:
            result.reason = reason
            result.devices.append(DeviceProbe("NPU", False, reason))
            return result
        result.installed = True
        result.version = _version()
        result.devices.append(DeviceProbe("NPU", True, npu_note()))
        return result

    def load(self, model_dir: Path, device: str, precision: str, progress: ProgressCallback) -> None:
        self.precision = self.check_precision(precision)
        if device and device.upper() != "NPU":
            raise DeviceUnavailableError(f"{self.label} runs on 'NPU' only (CPU fallback is automatic).")
        reason = _missing_reason()
        if reason:
            raise MissingPackageError(reason)
        model_dir = Path(model_dir).resolve()  # before chdir below
        if not (model_dir / "config.json").is_file():
            raise ModelFormatError(f"{model_dir} is not a Hugging Face model folder (no config.json).")

        # The library pickles models to ./cache/models and OpenVINO writes compiled blobs to ./cache,
        # both relative to the working directory, lazily during generation too: keep it in our cache.
        work = cache_dir("npu-library")
        shutil.rmtree(work / "cache" / "models", ignore_errors=True)  # a stale pickle fails torch.load
        os.chdir(work)

        progress("Importing Intel NPU Acceleration Library")
        if sys.platform != "win32":
            # First, so the library (built against this very wheel) binds to it, not to its copy.
            # Never on Windows: the library's wheel bundles and needs OpenVINO 2024.4.
            import openvino  # noqa: F401
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with warnings.catch_warnings():
            # pkg_resources deprecation, "OpenVINO already loaded", "NPU is not available"
            warnings.simplefilter("ignore", UserWarning)
            import intel_npu_acceleration_library as npu_lib
            from intel_npu_acceleration_library import compiler
            from intel_npu_acceleration_library.backend import npu_available, runtime
            from intel_npu_acceleration_library.compiler import CompilerConfig

        # Its Llama attention rewrite needs `rotary_emb` on attention modules, gone since
        # transformers 4.48; only replacing Linear layers works with current transformers.
        compiler.optimize_llama_attention = lambda *args, **kwargs: None
        runtime.clear_cache()  # unpatched (Windows wheel) builds mix up layers across precisions
        dtype = {"int4": npu_lib.int4, "int8": npu_lib.int8, "fp16": torch.float16}[self.precision]
        quantised = self.precision in ("int4", "int8")
        tied = bool(json.loads((model_dir / "config.json").read_text()).get("tie_word_embeddings"))

        self.device_note = npu_note(bool(npu_available()))
        progress(f"Compiling {model_dir.name} at {self.precision} ({self.device_note})")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
            # The library print()s progress: keep stdout clean for whoever reads the worker's.
            with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                # What NPUModelForCausalLM.from_pretrained(export=False) does, with the LM head kept
                # apart (see _compile); no pickle: loading one back fails with torch >= 2.6.
                model = AutoModelForCausalLM.from_pretrained(
                    str(model_dir), use_cache=True, attn_implementation="sdpa"
                )
                self.model = _compile(npu_lib, CompilerConfig, model, dtype, quantised)
        except (OSError, ValueError, KeyError) as error:
            raise ModelFormatError(f"{self.label} cannot load {model_dir.name}: {error}") from error
        except RuntimeError as error:  # the library's C++ core or neural-compressor
            raise load_failure(self.name, self.precision, model_dir, error) from error
        if quantised and tied:
            # The head is always kept at fp16 when quantising; say it where it changes the model.
            self.device_note += "; tied LM head untied and kept fp16"
        self.model.eval()
        self.device = "NPU" if self.device_note == NPU_PRESENT else CPU_FALLBACK_DEVICE
        self.context_length = getattr(self.model.config, "max_position_embeddings", None)

    def generate(
        self, prompt: str, settings: GenerationSettings, on_tokens: TokenCallback
    ) -> GenerationOutput:
        if self.model is None:
            raise BackendError(f"{self.label}: no model loaded")
        with self._busy:
            return generate_streamed(self.model, self.tokenizer, prompt, settings, on_tokens)

    def perplexity(self, text: str, max_tokens: int) -> PerplexityResult:
        from playground.backends.perplexity import hf_perplexity

        if self.model is None:
            raise BackendError(f"{self.label}: no model loaded")
        with self._busy:  # the compiled model's forward gives the logits of every position
            return hf_perplexity(self.model, self.tokenizer, text, max_tokens, self.context_length,
                                 f"compiled model forward logits ({self.precision}, {self.device})")

    def unload(self) -> None:
        self.model = None


def _compile(npu_lib: Any, compiler_config: Any, model: Any, dtype: Any, quantised: bool) -> Any:
    """Compile ``model`` for the NPU, keeping the LM head out of int4 / int8 quantisation.

    The library quantises every Linear layer in place through neural-compressor. With tied
    embeddings (SmolLM2, Gemma, Qwen2-0.5B ...) the LM head's weight *is* the input embedding, so
    quantising the head overwrote the embedding table with integer codes (max change 126.7 on
    SmolLM2) and every answer was garbage ("and and and ...", newlines). The head is therefore
    taken out before quantising (which also unties it) and compiled on its own at fp16: channel-wise
    int4 on a 49k x 576 vocabulary projection costs more accuracy than it saves.
    """
    import torch

    if not quantised:
        return npu_lib.compile(model, compiler_config(dtype=dtype))
    head = model.get_output_embeddings()
    if head is None or not isinstance(head, torch.nn.Linear):
        return npu_lib.compile(model, compiler_config(dtype=dtype))
    head.weight = torch.nn.Parameter(head.weight.detach().clone())  # its own copy: untied
    model.config.tie_word_embeddings = False
    model.set_output_embeddings(torch.nn.Identity())
    model = npu_lib.compile(model, compiler_config(dtype=dtype))
    holder = npu_lib.compile(torch.nn.Sequential(head), compiler_config(dtype=torch.float16))
    model.set_output_embeddings(holder[0])
    return model
