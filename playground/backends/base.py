"""The one interface every inference runtime adapter implements.

An adapter lives in its own module (ours under ``playground/backends/``, a plugin's in its
own package), registered as an ``ai_pc_playground.backends`` entry point, and its runtime is
only ever imported inside a worker process (see ``playground.engine.worker``), so heavy runtime
imports belong inside its methods, never at module top level: the app process stays
free of torch / OpenVINO / ORT thread pools.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

# Re-exported: adapters and plugins import every name of the interface from here.
from playground.errors import BackendError, DeviceUnavailableError, MissingPackageError, ModelFormatError
from playground.progress import Conversion, ProgressCallback
from playground.settings import GenerationSettings

if TYPE_CHECKING:
    from playground.engine.memory import ModelShape

__all__ = [
    "Backend",
    "BackendError",
    "BackendProbe",
    "Conversion",
    "DeviceProbe",
    "DeviceUnavailableError",
    "GenerationOutput",
    "MissingPackageError",
    "ModelFormatError",
    "NotSupportedError",
    "PerplexityResult",
    "ProgressCallback",
    "TokenCallback",
]

# Called by an adapter for every generated token (or small group of tokens) with the
# text those tokens decode to (may be ""), how many tokens it covers, and their token ids
# (the ids the runtime generated, so answers can be compared token by token; may be empty
# when a call only flushes text). Returns False when the caller wants generation to stop.
# Must stay cheap: it runs per token (the meter only extends a list with the ids).
TokenCallback = Callable[[str, int, Sequence[int]], bool]


@dataclass
class DeviceProbe:
    """One device a backend may run on, as found by probing this machine."""

    device: str  # the identifier the user picks, e.g. "CPU", "GPU.0", "NPU", "cuda", "dml"
    available: bool
    note: str = ""  # why not available, or what it really runs on ("no NPU: CPU fallback")


@dataclass
class BackendProbe:
    """What a backend can do here: installed or not, which devices, which precisions."""

    backend: str
    label: str
    installed: bool
    version: str = ""
    reason: str = ""  # when not installed / not usable: why, and how to fix it
    devices: list[DeviceProbe] = field(default_factory=list)
    precisions: list[str] = field(default_factory=list)
    default_precision: str = ""

    @property
    def usable(self) -> bool:
        return self.installed and any(d.available for d in self.devices)

    def default_device(self) -> str | None:
        for probe in self.devices:
            if probe.available:
                return probe.device
        return None


@dataclass
class GenerationOutput:
    """What an adapter reports after a generation; timing is measured by the caller."""

    prompt_tokens: int
    new_tokens: int
    stopped: bool = False  # the caller asked to stop before the end
    # The templated prompt's token ids as this runtime's tokenizer made them: lanes whose
    # prompt ids are equal share a tokenizer, so their generated ids are comparable.
    prompt_ids: Sequence[int] = ()
    # The runtime's own figures, when it reports them (llama.cpp's perf counters, a server's usage),
    # recorded beside the engine's: prefill time, its decode speed, the tokens a server counted.
    runtime_prefill_s: float | None = None
    runtime_decode_tokens_per_s: float | None = None
    server_completion_tokens: int | None = None


class NotSupportedError(BackendError):
    """This backend cannot do what was asked (its runtime exposes no logits); the message says why."""


@dataclass
class PerplexityResult:
    """A held-out text's perplexity, from the runtime's own logits (``backends/perplexity.py``)."""

    perplexity: float
    tokens: int  # tokens scored (the text's tokens but the first, which nothing predicts)
    windows: int = 1  # forward passes over the text (strided when it is longer than a window)
    window: int = 0  # tokens per window at most
    source: str = ""  # what the logits came from, e.g. "torch forward"


class Backend(ABC):
    """A runtime that loads one model at one precision on one device and streams tokens.

    Lifecycle inside a worker: ``probe()`` (class level) -> ``load()`` once ->
    ``generate()`` any number of times -> ``unload()``.
    """

    name: ClassVar[str]  # registry key, e.g. "openvino-genai"
    label: ClassVar[str]  # what the UI shows
    precisions: ClassVar[tuple[str, ...]]
    default_precision: ClassVar[str]
    runs_remotely: ClassVar[bool] = False  # a server computes: no weights in this machine's memory
    # Resident MB of one worker with the runtime imported and the demo model loaded, minus its
    # weights (scripts/measure_memory.py); the default is a torch runtime's (torch + transformers).
    runtime_mb: ClassVar[float] = 1110.0

    def __init__(self) -> None:
        self.device: str = ""
        self.device_note: str = ""  # shown next to results, e.g. "no NPU: CPU fallback"
        self.precision: str = ""
        self.context_length: int | None = None
        self.conversion: Conversion | None = None  # set by load() when it converts (or reuses one)

    @classmethod
    def offered(cls) -> bool:
        """Whether the registry offers this backend here; a test-only backend says no unless asked.

        Must be cheap and import nothing heavy: the app process calls it.
        """
        return True

    @classmethod
    def variants(cls) -> list[type[Backend]]:
        """The backends this registered class stands for: itself, or one subclass per launch
        configuration (each ``--endpoint`` is a backend of its own). Cheap, like ``offered``."""
        return [cls]

    @classmethod
    def kv_bytes(cls, precision: str) -> float:
        """Bytes per cached K/V element, for the memory estimate (default: fp32, a torch model's)."""
        return 4.0

    @classmethod
    def weights_mb(cls, shape: ModelShape, precision: str) -> float | None:
        """MB the loaded weights hold, when the backend knows better than its conversion
        (``engine.memory.estimate``); None: sized from the converted files or their format, and as
        fp32 torch weights when there is no conversion."""
        return None

    @classmethod
    def conversion_format(cls, device: str, precision: str) -> tuple[str, str] | None:
        """(conversion format, variant) this backend converts a model to for a lane, e.g.
        ("openvino", "int4-npu"); None when it loads the model as it is. The engine sizes a
        lane's memory and finds its cached conversion from this, without knowing the backend."""
        return None

    @classmethod
    def conversion_folder(cls, model_dir: Path, device: str, precision: str) -> Path | None:
        """Where the conversion cache keeps this lane's converted model, named exactly as
        ``load`` names it (a backend whose exporter adapts the variant to the model says so
        here); None when the backend loads the model as it is."""
        fmt = cls.conversion_format(device, precision)
        if fmt is None:
            return None
        from playground.models.convert_cache import conversion_dir

        return conversion_dir(model_dir, *fmt)

    @classmethod
    def new_probe(cls) -> BackendProbe:
        """A probe result for this backend, not installed until ``probe()`` finds otherwise."""
        return BackendProbe(
            cls.name,
            cls.label,
            installed=False,
            precisions=list(cls.precisions),
            default_precision=cls.default_precision,
        )

    @classmethod
    @abstractmethod
    def probe(cls) -> BackendProbe:
        """Find out whether the runtime is installed and which devices it can use here."""

    @abstractmethod
    def load(self, model_dir: Path, device: str, precision: str, progress: ProgressCallback) -> None:
        """Convert (through the cache) and load ``model_dir`` for ``device`` at ``precision``."""

    @abstractmethod
    def generate(
        self, prompt: str, settings: GenerationSettings, on_tokens: TokenCallback
    ) -> GenerationOutput:
        """Generate from an already chat-templated ``prompt``; stream through ``on_tokens``."""

    def perplexity(self, text: str, max_tokens: int) -> PerplexityResult:
        """Perplexity of ``text`` (its first ``max_tokens`` tokens) from the runtime's own logits.

        Optional: a runtime that exposes no logits raises ``NotSupportedError`` saying so."""
        raise NotSupportedError(f"{self.label} does not compute perplexity")

    def unload(self) -> None:  # noqa: B027 - optional hook
        """Release the model; the worker process exits right after, so this may be a no-op."""

    def check_precision(self, precision: str) -> str:
        precision = precision or self.default_precision
        if precision not in self.precisions:
            raise BackendError(
                f"{self.label} does not support precision {precision!r}; "
                f"choose one of {', '.join(self.precisions)}"
            )
        return precision
