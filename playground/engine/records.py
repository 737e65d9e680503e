"""What the engine measures, one record per backend and run (the benchmark's JSON rows)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class BackendSpec:
    """One lane of a comparison: a backend on a device at a precision."""

    backend: str
    device: str = ""  # "" = the backend's first available device
    precision: str = ""  # "" = the backend's default precision

    @property
    def key(self) -> str:
        return f"{self.backend}@{self.device or 'auto'}:{self.precision or 'default'}"

    @classmethod
    def parse(cls, text: str) -> BackendSpec:
        """``name[:device[:precision]]``, e.g. ``openvino-genai:NPU:int4``."""
        parts = [part.strip() for part in text.split(":")]
        if not parts[0] or len(parts) > 3:
            raise ValueError(f"Backend spec {text!r} is not name[:device[:precision]]")
        parts += [""] * (3 - len(parts))
        return cls(parts[0], parts[1], parts[2])


@dataclass
class RunRecord:
    backend: str
    device: str
    precision: str
    model: str
    prompt_tokens: int | None = None
    new_tokens: int | None = None
    load_s: float | None = None  # loading + compiling, excluding a first-time conversion
    convert_s: float | None = None  # first-time conversion (0 when reused from the cache)
    ttft_s: float | None = None
    decode_tokens_per_s: float | None = None
    e2e_s: float | None = None
    peak_rss_mb: float | None = None
    text: str = ""
    run: int = 0  # 1-based index among measured runs; warm-ups are not recorded
    prompt_index: int = 0
    mode: str = "sequential"
    device_note: str = ""
    stopped: bool = False
    error: str = ""
    token_ids: list[int] = field(default_factory=list)  # the generated ids, as the runtime made them
    # Answer agreement with the comparison's reference lane (playground.engine.agreement):
    reference: str = ""  # the reference run's backend:device:precision ("" = nothing to compare with)
    agreement_pct: float | None = None  # % of token positions equal to the reference's
    first_divergence: int | None = None  # 0-based token index of the first difference; None = none
    text_similarity: float | None = None  # 0-1, word-level similarity of the two texts
    agreement_flag: bool = False  # far below its peers: the answer is likely broken
    agreement_note: str = ""  # why flagged, "reference", or what limits the numbers
    # How the figures were taken (issue 9): the runtimes' thread budget, their versions, whether a
    # browser page was streaming this run, and how much of the machine everything else used.
    threads: int | None = None
    versions: str = ""
    page_attached: bool = False
    other_cpu_percent: float | None = None  # others' share of all cores during generate (0-100)
    busy_machine: bool = False  # others took more than the budget leaves free: figures understate
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.error

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "extra"]
