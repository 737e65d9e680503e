"""How much memory a load will take, and whether it fits, decided before a worker starts.

A 4B model at fp32 needs ~15 GB; five backends kept loaded would not fit a 16 GB laptop, and
the OS's answer to that is to kill a process. So the engine estimates each load (weights at
the chosen precision, KV cache for the requested length, the runtime's own footprint, and a
first-time conversion, which is often the peak) and refuses what cannot fit, saying what would.

The per-runtime constants below were measured here on the demo model (where weights are
negligible, so the worker's peak RSS is the runtime itself); the README compares the estimates
with measured peaks on the demo model and SmolLM2-135M.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from playground.backends.base import Backend

LIMIT_ENV = "PLAYGROUND_MEMORY_LIMIT_MB"
SAFETY_MARGIN_MB = 1024.0  # left to the OS, the browser and the app itself by default
MB = 2**20

# A worker's resident memory without the weights (``Backend.runtime_mb``, measured per runtime with
# scripts/measure_memory.py), its KV cache's element size (``Backend.kv_bytes``) and, where the
# backend knows them, its weights (``Backend.weights_mb``) are the backend's to declare; this
# module sizes the exporters' formats and adds it all up. A backend it cannot find counts as torch.
UNKNOWN_RUNTIME_MB = 1110.0
# A first-time conversion runs the exporter as a child process: it imports torch, loads the
# model at fp32, traces it and writes the converted copy. Base cost measured on the demo model.
EXPORTER_BASE_MB: dict[str, float] = {"openvino": 1390.0, "ort-genai": 1350.0}
# fp32 copies of the weights the exporter holds at its peak: optimum-cli's OpenVINO export keeps
# about one (the torch model; the traced graph shares it), the ORT model builder about two (the
# torch model plus the graph it builds). Slopes measured between the demo model and SmolLM2-135M.
EXPORTER_WEIGHT_COPIES: dict[str, float] = {"openvino": 1.0, "ort-genai": 2.0}
# OpenVINO and ONNX Runtime hold a converted model about twice: the file's pages (mmapped / read,
# resident) and the CPU kernels' repacked copy. Measured on SmolLM2-135M (int8 IR, int4 ONNX).
CONVERTED_RESIDENT_COPIES = 2.0

PRECISION_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0}


@dataclass(frozen=True)
class ModelShape:
    """The numbers the arithmetic needs, from config.json and the safetensors headers."""

    params: int  # every stored parameter (tied embeddings counted once)
    embedding_params: int  # the input embedding (vocab x hidden)
    lm_head_params: int  # a separate output projection; 0 when tied to the embedding
    layers: int
    kv_heads: int
    head_dim: int
    vocab: int
    hidden: int

    @property
    def linear_params(self) -> int:
        """Parameters of the transformer blocks (what int4 / int8 compress)."""
        return max(self.params - self.embedding_params - self.lm_head_params, 0)

    @classmethod
    def from_config(cls, config: dict, params: int | None = None) -> ModelShape:
        text = config.get("text_config") or config  # multimodal configs nest the LM's
        hidden = int(text["hidden_size"])
        heads = int(text["num_attention_heads"])
        layers = int(text["num_hidden_layers"])
        vocab = int(text["vocab_size"])
        kv_heads = int(text.get("num_key_value_heads") or heads)
        head_dim = int(text.get("head_dim") or hidden // heads)
        tied = bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False)))
        embedding = vocab * hidden
        lm_head = 0 if tied else vocab * hidden
        if params is None:  # no weights on disk: count a Llama-style block
            intermediate = int(text.get("intermediate_size") or 4 * hidden)
            attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
            params = layers * (attention + 3 * hidden * intermediate + 2 * hidden) + embedding + lm_head
        return cls(params, embedding, lm_head, layers, kv_heads, head_dim, vocab, hidden)

    @classmethod
    def from_folder(cls, model_dir: Path) -> ModelShape:
        config = json.loads((model_dir / "config.json").read_text())
        return cls.from_config(config, count_parameters(model_dir))


def _safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file: names, dtypes, shapes, without reading weights."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > 100 * MB:
            raise ValueError(f"{path.name}: implausible safetensors header")
        return json.loads(handle.read(length))


def count_parameters(model_dir: Path) -> int | None:
    """Parameters stored in the folder's safetensors files (None when there are none)."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        for name, info in _safetensors_header(path).items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in info["shape"]:
                count *= int(dim)
            total += count
    return total


@cache
def _shape_cached(model_dir: str, stamp: float) -> ModelShape:
    return ModelShape.from_folder(Path(model_dir))


def model_shape(model_dir: Path) -> ModelShape:
    config = model_dir / "config.json"
    return _shape_cached(str(model_dir), config.stat().st_mtime)


@dataclass(frozen=True)
class MemoryEstimate:
    """What one backend needs to load one model at one precision, in MB (2^20 bytes)."""

    backend: str
    precision: str
    weights_mb: float  # the weights as the runtime holds them (an mmapped IR's touched pages count)
    kv_cache_mb: float  # layers x kv heads x head dim x 2 (K and V) x bytes x tokens
    runtime_mb: float  # the runtime's own footprint in a worker (imports, thread pools, arenas)
    conversion_mb: float = 0.0  # a first-time exporter run (a child of the worker); 0 when cached
    weights_source: str = "arithmetic"  # or "converted files" when the cached conversion is on disk

    @property
    def load_mb(self) -> float:
        """The worker itself once loaded: what its peak RSS should show."""
        return self.runtime_mb + self.weights_mb + self.kv_cache_mb

    @property
    def total_mb(self) -> float:
        """The peak: the worker's runtime plus the larger of the exporter and the loaded model."""
        return self.runtime_mb + max(self.weights_mb + self.kv_cache_mb, self.conversion_mb)

    def describe(self) -> str:
        parts = [f"weights {fmt_mb(self.weights_mb)}", f"KV cache {fmt_mb(self.kv_cache_mb)}"]
        parts.append(f"runtime {fmt_mb(self.runtime_mb)}")
        if self.conversion_mb:
            parts.append(f"first-time conversion {fmt_mb(self.conversion_mb)}")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {**asdict(self), "load_mb": round(self.load_mb, 1), "total_mb": round(self.total_mb, 1)}


def fmt_mb(value: float) -> str:
    return f"{value / 1024:.1f} GB" if value >= 1024 else f"{value:.0f} MB"


# -- weights per backend and precision ------------------------------------------------------


def openvino_weights_mb(shape: ModelShape, variant: str) -> float:
    """The IR's .bin as optimum-cli writes it (see playground.models.exporters).

    NNCF keeps the embedding and the output projection at int8 in every int4 recipe; the
    playground's int4 puts 60% of block layers at int4 (group 128, fp16 scale per group) and the
    rest at int8; the NPU's int4 is channel-wise on every block layer.
    """
    outer = shape.embedding_params + shape.lm_head_params
    linear = shape.linear_params
    if variant == "int4":
        per_param = 0.6 * (0.5 + 2 / 128) + 0.4 * 1.0
    elif variant == "int4-npu":
        per_param = 0.5
    elif variant in PRECISION_BYTES:
        per_param = PRECISION_BYTES[variant]
        outer_bytes = per_param
        return (linear * per_param + outer * outer_bytes) / MB
    else:
        raise ValueError(f"unknown OpenVINO variant {variant!r}")
    return (linear * per_param + outer * 1.0) / MB


def ort_weights_mb(shape: ModelShape, precision: str) -> float:
    """The model builder's output: int4 = MatMulNBits, block 32, fp32 scales, on every block
    layer and the output head; a separate embedding stays at fp32 on CPU, a tied one shares the
    head's int4 copy."""
    if precision == "int4":
        if shape.lm_head_params == 0:  # tied
            return shape.params * (0.5 + 4 / 32) / MB
        blocks = shape.linear_params + shape.lm_head_params
        return (shape.embedding_params * 4 + blocks * (0.5 + 4 / 32)) / MB
    return shape.params * PRECISION_BYTES[precision] / MB


def kv_cache_mb(shape: ModelShape, tokens: int, bytes_per_value: float) -> float:
    return shape.layers * shape.kv_heads * shape.head_dim * 2 * bytes_per_value * tokens / MB


# The conversions whose size this module models (the exporters' outputs); another format (a GGUF
# quantisation, a plugin's own) is sized like fp32 torch weights until it is measured.
SIZED_FORMATS = ("openvino", "ort-genai")


def conversion_format(backend: str, device: str, precision: str) -> tuple[str, str] | None:
    """(cache format, variant) of the conversion a lane loads that this module can size, as its
    backend names it (``Backend.conversion_format``); None for an unknown backend too."""
    cls = _backend_class(backend)
    fmt = cls.conversion_format(device, precision) if cls is not None else None
    return fmt if fmt is not None and fmt[0] in SIZED_FORMATS else None


def conversion_folder(model_dir: Path, backend: str, device: str, precision: str) -> Path | None:
    """Where the conversion cache keeps this lane's converted model, as its backend names it
    (OpenVINO's int4 recipe picks a group size per model: "int4-g64"); None when the backend loads
    the model as it is."""
    cls = _backend_class(backend)
    return cls.conversion_folder(model_dir, device, precision) if cls is not None else None


def _backend_class(name: str) -> type[Backend] | None:
    from playground.backends import get_backend_class

    try:
        return get_backend_class(name)
    except KeyError:
        return None


def _converted_size_mb(folder: Path) -> float:
    weights = [p for p in folder.iterdir() if p.suffix in (".bin", ".data", ".onnx") and p.is_file()]
    return sum(p.stat().st_size for p in weights) / MB


def estimate(
    model_dir: Path,
    backend: str,
    precision: str,
    device: str = "",
    tokens: int = 512,
    shape: ModelShape | None = None,
    converted: Path | None = None,
) -> MemoryEstimate:
    """Estimate one load; ``converted`` is the cached conversion folder when there is one."""
    shape = shape or model_shape(model_dir)
    conversion = 0.0
    source = "arithmetic"
    fmt = conversion_format(backend, device, precision)
    cls = _backend_class(backend)
    declared = cls.weights_mb(shape, precision) if cls is not None else None
    if declared is not None:
        weights = declared
    elif fmt is not None:
        if converted is not None and converted.is_dir():
            on_disk = _converted_size_mb(converted)
            source = "converted files"
        else:
            if fmt[0] == "openvino":
                on_disk = openvino_weights_mb(shape, fmt[1])
            else:
                on_disk = ort_weights_mb(shape, precision)
            fp32 = shape.params * 4 / MB
            conversion = EXPORTER_BASE_MB[fmt[0]] + EXPORTER_WEIGHT_COPIES[fmt[0]] * fp32 + on_disk
        lookup = shape.embedding_params * 4 / MB if fmt[0] == "ort-genai" and shape.lm_head_params else 0.0
        # A separate fp32 embedding is a lookup table in the mmapped data: only rows of tokens seen
        # become resident (measured: a 151 MB table added ~nothing), so it is not counted.
        weights = max(on_disk - lookup, 0.0) * CONVERTED_RESIDENT_COPIES
    else:  # nothing declared and no conversion (or an unknown backend): fp32 torch weights
        weights = shape.params * 4 / MB
    return MemoryEstimate(
        backend=backend,
        precision=precision,
        weights_mb=weights,
        kv_cache_mb=kv_cache_mb(shape, tokens, cls.kv_bytes(precision) if cls is not None else 4.0),
        runtime_mb=cls.runtime_mb if cls is not None else UNKNOWN_RUNTIME_MB,
        conversion_mb=conversion,
        weights_source=source,
    )


# -- what there is ---------------------------------------------------------------------------


def available_mb() -> float:
    """Memory the OS could hand out now (reclaimable page cache counts, as psutil reports it)."""
    return psutil.virtual_memory().available / MB


def user_limit_mb(requested: float | None = None) -> float | None:
    """The cap the user set: the request's field first, then ``PLAYGROUND_MEMORY_LIMIT_MB``."""
    if requested is not None:
        if requested <= 0:
            raise ValueError(f"the memory limit must be a positive number of MB, got {requested}")
        return float(requested)
    text = os.environ.get(LIMIT_ENV, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise ValueError(f"{LIMIT_ENV} must be a number of MB, got {text!r}") from exc
    if value <= 0:
        raise ValueError(f"{LIMIT_ENV} must be a positive number of MB, got {text!r}")
    return value


@dataclass(frozen=True)
class Budget:
    """What a new load may use: the tighter of the user's cap and what the OS has spare.

    Without a cap the default is what is available now minus a safety margin. Idle pooled
    workers count as room only once they are freed (``with_idle``).
    """

    available_mb: float  # the OS's available memory minus the safety margin
    limit_mb: float | None  # the user's cap on everything the playground's workers hold
    busy_mb: float = 0.0  # this comparison's running workers (they stay)
    idle_mb: float = 0.0  # pooled idle workers that could be freed
    pending_mb: float = 0.0  # what running workers are estimated to take on top of what they hold

    def free_mb(self, with_idle: bool = True) -> float:
        physical = self.available_mb - self.pending_mb + (self.idle_mb if with_idle else 0.0)
        if self.limit_mb is None:
            return max(physical, 0.0)
        cap = self.limit_mb - self.busy_mb - (0.0 if with_idle else self.idle_mb)
        return max(min(physical, cap), 0.0)

    def describe(self) -> str:
        if self.limit_mb is not None and self.free_mb() < self.available_mb - self.pending_mb + self.idle_mb:
            others = f", {fmt_mb(self.busy_mb)} of it held by other backends" if self.busy_mb >= 1 else ""
            return f"under the {fmt_mb(self.limit_mb)} memory limit{others}"
        return f"on this machine (after leaving {fmt_mb(SAFETY_MARGIN_MB)} to the system)"


def make_budget(
    limit_mb: float | None, busy_mb: float = 0.0, idle_mb: float = 0.0, pending_mb: float = 0.0
) -> Budget:
    return Budget(available_mb() - SAFETY_MARGIN_MB, limit_mb, busy_mb, idle_mb, pending_mb)


def refusal_message(
    lane: str,
    needed: MemoryEstimate,
    free_mb: float,
    where: str,
    alternatives: list[MemoryEstimate],
    alone_fits: bool,
    elsewhere: Sequence[MemoryEstimate] = (),
) -> str:
    """The panel's text for a refused load: what it needs, what there is, and what would fit."""
    fits = [alt for alt in alternatives if alt.total_mb <= free_mb]
    hints = [f"{alt.precision} needs ~{fmt_mb(alt.total_mb)}" for alt in fits]
    if alone_fits:
        hints.append("fewer backends at once or sequential mode would fit")
    if not hints:  # nothing of this backend: a lighter runtime at its default precision?
        lighter = sorted((alt for alt in elsewhere if alt.total_mb <= free_mb), key=lambda alt: alt.total_mb)
        hints += [f"{alt.backend} {alt.precision} needs ~{fmt_mb(alt.total_mb)}" for alt in lighter[:2]]
    if not hints:
        smallest = min([*alternatives, needed], key=lambda alt: alt.total_mb)
        hints.append(
            f"nothing this backend offers fits (the smallest, {smallest.precision}, needs "
            f"~{fmt_mb(smallest.total_mb)}): close other programs, raise the limit, or pick a smaller model"
        )
    return (
        f"Not enough memory for {lane}: {needed.precision} needs ~{fmt_mb(needed.total_mb)} "
        f"({needed.describe()}), but only ~{fmt_mb(free_mb)} is free {where}. "
        f"What would fit: {'; '.join(hints)}."
    )
