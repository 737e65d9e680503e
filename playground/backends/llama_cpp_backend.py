"""llama.cpp through llama-cpp-python: the runtime under LM Studio, Ollama, Lemonade and AI Playground.

The library is built from source by ``scripts/install_llama_cpp.py`` (a CPU build here; Vulkan, SYCL,
CUDA or Metal with its CMAKE_ARGS, see the README). A model that came from a GGUF (SmolLM2, a GGUF
given as ``--model``) runs from that file at precision "auto"; an HF folder, or an explicit
precision, is converted with llama.cpp's converter and quantised through the conversion cache.

Generation is the token loop (``Llama.generate``): one token per step, so the engine's meter sees
each token when llama.cpp sampled it. The KV cache is reset before every run (llama-cpp-python
would reuse the previous run's prompt, which no other backend does), and llama.cpp's own
perf counters (prompt eval, eval) are recorded beside the engine's figures.
"""

from __future__ import annotations

import codecs
import contextlib
import importlib.util
import json
import os
import re
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

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
from playground.models.gguf_models import QUANTIZE_TYPES, converted_gguf, source_gguf
from playground.settings import GenerationSettings

AUTO = "auto"
# A build with AMX: its extra weight buffers (AMX, repacking) crashed every multi-token prefill on this
# project's AMX machine (a VM; SIGSEGV in decode), so they are off there unless this is "1".
EXTRA_BUFTS_ENV = "PLAYGROUND_LLAMA_CPP_EXTRA_BUFTS"
MAX_CONTEXT = 8192  # the KV cache is allocated for the whole context up front
INSTALL_HINT = ("llama-cpp-python is not built here: run `python scripts/install_llama_cpp.py` (needs a C++ "
                "compiler and CMake; a few minutes on 2 cores, cached afterwards)")
# ggml backends a build may carry, as llama_print_system_info / the build's libraries name them.
GPU_BACKENDS = ("CUDA", "Vulkan", "SYCL", "Metal", "HIP", "ROCm", "OpenCL", "MUSA", "CANN")


def system_info() -> str:
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode(errors="replace")


def gpu_backends(info: str) -> list[str]:
    """The GPU backends a build reports (its system info names each compiled-in backend)."""
    return [name for name in GPU_BACKENDS if re.search(rf"\b{name}\b", info, re.IGNORECASE)]


def has_amx(info: str) -> bool:
    return bool(re.search(r"\bAMX_INT8\s*=\s*1", info))


@contextlib.contextmanager
def model_params(**fields: Any) -> Iterator[None]:
    """Set ``llama_model_params`` fields that ``Llama()`` has no argument for, on the defaults it starts
    from, for one construction (it calls ``llama_model_default_params`` itself)."""
    import llama_cpp.llama_cpp as lib

    original = lib.llama_model_default_params

    def with_fields() -> Any:
        params = original()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    lib.llama_model_default_params = with_fields
    try:
        yield
    finally:
        lib.llama_model_default_params = original


def cpu_features(info: str) -> str:
    """The SIMD features llama.cpp uses on this CPU, e.g. "AVX2 AVX512"."""
    flags = re.findall(r"\b(AVX512|AVX2|AVX_VNNI|AVX|AMX_INT8|NEON|SVE)\s*=\s*1", info)
    return " ".join(dict.fromkeys(flags))


class LlamaCppBackend(Backend):
    name = "llama.cpp"
    label = "llama.cpp"
    precisions = (AUTO, *QUANTIZE_TYPES)
    default_precision = AUTO

    @classmethod
    def conversion_format(cls, device: str, precision: str) -> tuple[str, str] | None:
        """A quantisation of the model's GGUF (``auto``: the model's own file, unconverted)."""
        return None if precision in ("", AUTO) else ("gguf", precision)

    @classmethod
    def probe(cls) -> BackendProbe:
        result = cls.new_probe()
        if not importlib.util.find_spec("llama_cpp"):
            result.reason = INSTALL_HINT
            return result
        import llama_cpp

        try:
            result.version = f"llama-cpp-python {version('llama-cpp-python')}"
        except PackageNotFoundError:
            result.version = f"llama-cpp-python {llama_cpp.__version__}"
        info = system_info()
        result.installed = True
        result.devices.append(DeviceProbe("cpu", True, f"CPU ({cpu_features(info) or 'no SIMD reported'})"))
        offload = bool(llama_cpp.llama_supports_gpu_offload())
        found = gpu_backends(info)
        note = (f"GPU offload ({', '.join(found) or 'a GPU backend'})" if offload else
                "this build has no GPU backend: rebuild with CMAKE_ARGS for Vulkan, SYCL, CUDA or Metal "
                "(see the README)")
        result.devices.append(DeviceProbe("gpu", offload, note))
        return result

    def load(self, model_dir: Path, device: str, precision: str, progress: ProgressCallback) -> None:
        import llama_cpp

        self.device = (device or "cpu").lower()
        if self.device not in ("cpu", "gpu"):
            raise DeviceUnavailableError(f"llama.cpp runs on cpu or gpu, not {device!r}")
        if self.device == "gpu" and not llama_cpp.llama_supports_gpu_offload():
            raise DeviceUnavailableError("This llama-cpp-python build has no GPU backend: rebuild it with "
                                         "CMAKE_ARGS for Vulkan, SYCL, CUDA or Metal (see the README).")
        requested = self.check_precision(precision)
        path = self._model_file(model_dir, requested, progress)
        progress(f"Loading {path.name} ({self.device})")
        threads = thread_budget()
        info = system_info()
        extra_bufts = not has_amx(info) or os.environ.get(EXTRA_BUFTS_ENV) == "1"
        try:
            with model_params(use_extra_bufts=extra_bufts):
                self.llm: Any = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=_context(model_dir),
                    n_gpu_layers=-1 if self.device == "gpu" else 0,
                    n_threads=threads,
                    n_threads_batch=threads,
                    seed=0,
                    verbose=False,
                )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp could not load {path.name}: {exc}") from exc
        self.context_length = self.llm.n_ctx()
        self.eog = _end_of_generation(self.llm)
        if self.device == "gpu":
            used = f"GPU offload ({', '.join(gpu_backends(info)) or 'GPU backend'}), all layers"
        else:
            used = f"CPU {cpu_features(info)}".strip()
        self.device_note = f"{self.precision}; {used}" + ("" if extra_bufts else "; AMX/repack buffers off")

    def _model_file(self, model_dir: Path, precision: str, progress: ProgressCallback) -> Path:
        """The GGUF to load: the model's own file at "auto", else a conversion at that precision."""
        own = source_gguf(model_dir)
        if precision == AUTO and own is not None:
            self.precision = f"{AUTO} ({_file_type(own)})"
            return own
        wanted = QUANTIZE_TYPES[0] if precision == AUTO else precision
        from playground.models.exporters import _run_tool

        self.conversion = converted_gguf(model_dir, wanted, progress, self._quantize, _run_tool)
        self.precision = wanted
        return self.conversion.path / "model.gguf"

    @staticmethod
    def _quantize(source: Path, target: Path, quantize_type: str) -> None:
        import llama_cpp

        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quantize_type}")
        params.nthread = thread_budget() or 0
        code = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params)
        if code != 0 or not target.is_file():
            raise BackendError(f"llama_model_quantize to {quantize_type} failed (code {code}); "
                               "see the worker log")

    def generate(
        self, prompt: str, settings: GenerationSettings, on_tokens: TokenCallback
    ) -> GenerationOutput:
        import llama_cpp

        llm = self.llm
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        llm.reset()  # a fresh KV cache every run, as every other backend prefills every run
        llama_cpp.llama_perf_context_reset(llm.ctx)
        if settings.do_sample:
            llm.set_seed(settings.seed)
            sampling = {"temp": settings.temperature, "top_p": settings.top_p, "top_k": 0, "min_p": 0.0}
        else:
            sampling = {"temp": 0.0}
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        count = 0
        stopped = False
        for token in llm.generate(tokens, reset=True, repeat_penalty=1.0, **sampling):
            if settings.stop_at_eos and token in self.eog:
                break
            count += 1
            text = decoder.decode(llm.detokenize([token], special=False))
            if not on_tokens(text, 1, [token]):
                stopped = True
                break
            if count >= settings.max_new_tokens:
                break
        perf = llama_cpp.llama_perf_context(llm.ctx)
        timed = perf.n_eval > 1 and perf.t_eval_ms > 0
        decode_rate = perf.n_eval / (perf.t_eval_ms / 1000) if timed else None
        return GenerationOutput(
            len(tokens), count, stopped, prompt_ids=tokens,
            runtime_prefill_s=perf.t_p_eval_ms / 1000 if perf.n_p_eval else None,
            runtime_decode_tokens_per_s=decode_rate,
        )

    def perplexity(self, text: str, max_tokens: int) -> PerplexityResult:
        """Logits of every position through llama.cpp's batch API: ``Llama(logits_all=True)`` would
        keep n_ctx x vocab floats for the whole load (1.6 GB for SmolLM2's 8k context), and
        without it ``Llama.eval`` keeps only the last row, so each window is decoded here in
        ``n_batch`` pieces with logits asked for on every token (llama-cpp-python's own
        ``LlamaBatch.set_batch(logits_all=True)`` and context, as ``eval`` uses them)."""
        import numpy as np

        from playground.backends.perplexity import perplexity_of

        llm = self.llm
        n_vocab = llm.n_vocab()

        def logits_of(piece: Sequence[int]) -> np.ndarray:
            llm.reset()
            llm._ctx.kv_cache_clear()
            rows = []
            try:
                for start in range(0, len(piece), llm.n_batch):
                    batch = list(piece[start:start + llm.n_batch])
                    llm._batch.set_batch(batch=batch, n_past=start, logits_all=True)
                    llm._ctx.decode(llm._batch)
                    flat = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(batch) * n_vocab,))
                    rows.append(flat.reshape(len(batch), n_vocab).copy())
            finally:  # the next generate() starts from an empty cache either way
                llm.reset()
                llm._ctx.kv_cache_clear()
            return np.concatenate(rows)

        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return perplexity_of(ids, self.context_length, logits_of, max_tokens,
                             f"llama.cpp batch logits ({self.precision})")

    def unload(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            llm.close()
        self.llm = None


def _context(model_dir: Path) -> int:
    try:
        trained = int(json.loads((model_dir / "config.json").read_text()).get("max_position_embeddings") or 0)
    except (OSError, ValueError):
        trained = 0
    return min(trained or 2048, MAX_CONTEXT)


def _end_of_generation(llm: Any) -> set[int]:
    """Every end-of-generation token of the vocabulary (eos, eot, <|im_end|>...), as llama.cpp marks them."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    return {token for token in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, token)}


def _file_type(path: Path) -> str:
    """The GGUF's quantisation as its file name says it (e.g. Q4_1), else "GGUF"."""
    found = re.search(r"(I?Q\d_[A-Z0-9_]+|Q\d_\d|F16|BF16|F32)", path.name, re.IGNORECASE)
    return found.group(1).upper() if found else "GGUF"
