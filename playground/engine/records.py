"""What the engine measures, one record per backend and run (the benchmark's JSON rows).

Every figure is declared once, as a field of ``LoadReport`` (what loading measured, sent in the
worker's ``Loaded`` message) or ``RunReport`` (what one generation measured, sent in its
``Result``). ``RunRecord`` inherits both, so the engine builds records from the messages by field,
and a field's ``Metric`` metadata says how the results table, the CSV/JSON downloads, the panel
and the CLI table show it: adding a metric is one field here (plus the code that measures it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from typing import Any

METRIC = "metric"  # the key of a field's Metric in dataclasses.Field.metadata
JSON_ONLY = ("token_times_ms",)  # fields too long for a CSV cell: in the JSON records alone


@dataclass(frozen=True)
class Metric:
    """How one measured figure is shown. Without it a field still reaches the CSV and JSON."""

    title: str  # the results table's column, e.g. "TTFT (s)"
    digits: int | None = None  # rounding in the table and the panel (None: shown as is)
    table: bool = True  # a column of the results table
    panel: str | None = None  # the panel's label ("" = the value alone); None: not in the panel
    unit: str = ""  # after the value in the panel, e.g. "s"
    panel_line: int = 0  # the panel's figures come in lines: 0 the run, 1 the lane
    panel_zero: bool = True  # False: a zero is not worth a mention (no conversion happened)
    cli: str | None = None  # the CLI table's column (median per lane); None: not in it
    cli_scale: float = 1.0  # e.g. 1000 for seconds shown as ms
    cli_digits: int | None = None  # None: ``digits``
    # The comparison's headline: the CLI also shows its spread and each lane's ratio to the first.
    headline: bool = False


def metric(title: str, **how: Any) -> Any:
    """A figure's field: ``None`` until measured, with how to show it."""
    return field(default=None, metadata={METRIC: Metric(title, **how)})


def metric_fields(record_type: type | None = None) -> list[tuple[Field, Metric]]:
    """The declared metrics of a record class, in declaration order (the order every view uses)."""
    return [(f, f.metadata[METRIC]) for f in fields(record_type or RunRecord) if METRIC in f.metadata]


def lane_figures() -> set[str]:
    """Names of the figures a lane measures once (at load) rather than per run."""
    return {f.name for f in fields(LoadReport)}


def figures_of(report: Any, part: type) -> dict[str, Any]:
    """The fields ``part`` declares, read from ``report`` (a message that inherits ``part``)."""
    return {f.name: getattr(report, f.name) for f in fields(part)}


@dataclass(kw_only=True)
class RunReport:
    """What one generation measured in the worker (timing by ``TokenMeter``, next to the runtime)."""

    prompt_tokens: int | None = metric("prompt tokens")
    new_tokens: int | None = metric("new tokens", panel="", unit="tokens", digits=0, cli="new tok")
    ttft_s: float | None = metric(
        "TTFT (s)", digits=3, panel="TTFT", unit="s", cli="TTFT ms", cli_scale=1000, cli_digits=1
    )
    decode_tokens_per_s: float | None = metric(
        "decode tok/s", digits=1, panel="decode", unit="tok/s", cli="decode tok/s", headline=True
    )
    # prompt tokens / TTFT: how fast the prompt was read (tokenizing and the first step included)
    prefill_tokens_per_s: float | None = metric(
        "prefill tok/s", digits=1, panel="prefill", unit="tok/s", cli="prefill tok/s", cli_digits=0
    )
    decode_s: float | None = None  # first token to last (None under two tokens): the decode phase
    # Inter-token latency: the gaps between consecutive tokens after the first (stalls, jitter)
    itl_p50_ms: float | None = metric("ITL p50 (ms)", digits=2, panel="ITL p50", unit="ms", panel_line=2,
                                      cli="ITL p50 ms")
    itl_p90_ms: float | None = metric("ITL p90 (ms)", digits=2, panel="p90", unit="ms", panel_line=2)
    itl_p99_ms: float | None = metric("ITL p99 (ms)", digits=2, panel="p99", unit="ms", panel_line=2,
                                      cli="ITL p99 ms")
    e2e_s: float | None = metric("end-to-end (s)", digits=2, panel="end-to-end", unit="s", cli="e2e s",
                                 cli_digits=3)
    peak_rss_mb: float | None = metric(
        "peak RSS (MB)", digits=0, panel="peak RSS", unit="MB", panel_line=1, cli="peak RSS MB"
    )
    # Frozen time while timed (playground.engine.stall): SIGSTOP, a suspended VM, a starved machine.
    # Shown only when not zero; a run that stalled carries ``stall_note`` and its figures understate.
    stalled_s: float | None = metric(
        "stalled (s)", digits=1, panel="stalled", unit="s", panel_zero=False, cli="stall s"
    )
    # The runtime's own figures beside the engine's (None when it reports none): llama.cpp's
    # perf counters (prompt eval time, eval speed); a server's usage (the tokens it counted).
    runtime_prefill_s: float | None = metric("runtime prefill (s)", digits=3)
    runtime_decode_tokens_per_s: float | None = metric(
        "runtime decode tok/s", digits=1, panel="runtime's own decode", unit="tok/s", cli="own tok/s"
    )
    server_completion_tokens: int | None = None
    cpu_s: float | None = None  # the worker's own CPU time (all threads) during generate
    other_cpu_percent: float | None = None  # others' share of all cores during generate (0-100)
    host_steal_percent: float | None = None  # a VM host's share of the machine's CPU time (0-100)
    text: str = ""
    stopped: bool = False
    token_ids: list[int] = field(default_factory=list)  # the generated ids, as the runtime made them
    # each token's arrival, ms since generate began (JSON only: too long for a CSV cell)
    token_times_ms: list[float] = field(default_factory=list)


@dataclass(kw_only=True)
class LoadReport:
    """What loading measured in the worker, the same for every run of the lane."""

    load_s: float | None = metric(  # loading + compiling, excluding a first-time conversion
        "load (s)", digits=2, panel="load", unit="s", panel_line=1, cli="load s"
    )
    conversion_s: float | None = metric(  # first-time conversion (0 when reused from the cache)
        "convert (s)", digits=1, panel="convert", unit="s", panel_line=1, panel_zero=False
    )
    conversion_reused: bool | None = None  # the conversion came from the cache (None: none needed)


@dataclass(frozen=True)
class Phase:
    """One phase of a run on the panel's time axis: the record's field with its seconds, and the
    fields saying it came from a cache. The first of those is None when the phase was not needed;
    any of them True: it took no time in this run (its seconds, if any, are what it took when it was
    done). A phase whose seconds or first cache field is None did not happen and is not drawn."""

    label: str
    seconds: str
    cached: tuple[str, ...] = ()


# A run's phases in the order they happen (``ui/phases.py`` draws them; prefill is the TTFT). A
# worker reused from the pool converted nothing either: its model was loaded already.
PHASES = (
    Phase("convert", "conversion_s", cached=("conversion_reused", "load_reused")),
    Phase("load", "load_s", cached=("load_reused",)),
    Phase("prefill", "ttft_s"),
    Phase("decode", "decode_s"),
)


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


def by_lane(records: Sequence[RunRecord]) -> dict[tuple[str, str, str], list[RunRecord]]:
    """Records grouped by (backend, device, precision), lanes in the order they first appear."""
    lanes: dict[tuple[str, str, str], list[RunRecord]] = {}
    for record in records:
        lanes.setdefault((record.backend, record.device, record.precision), []).append(record)
    return lanes


def parse_backend_specs(text: str | Sequence[str]) -> list[BackendSpec]:
    """The one parser of a backend list: ``"name[:device[:precision]],..."`` (or its items);
    blank items are skipped, a malformed one raises ValueError naming it."""
    items = text.split(",") if isinstance(text, str) else [part for item in text for part in item.split(",")]
    return [BackendSpec.parse(item) for item in items if item.strip()]


@dataclass
class RunRecord(LoadReport, RunReport):
    backend: str
    device: str
    precision: str
    model: str
    run: int = 0  # 1-based index among measured runs; warm-ups are not recorded
    prompt_index: int = 0
    mode: str = "sequential"
    device_note: str = ""
    error: str = ""
    traceback: str = ""  # the worker's traceback of a failure (JSON and the log, never the page)
    # Answer agreement with the comparison's reference lane (playground.engine.agreement):
    reference: str = ""  # the reference run's backend:device:precision ("" = nothing to compare with)
    agreement_pct: float | None = None  # % of token positions equal to the reference's
    first_divergence: int | None = None  # 0-based token index of the first difference; None = none
    text_similarity: float | None = None  # 0-1, word-level similarity of the two texts
    agreement_flag: bool = False  # far below its peers: the answer is likely broken
    agreement_note: str = ""  # why flagged, "reference", or what limits the numbers
    # Quality (issue 13): the held-out text's perplexity from this lane's runtime's own logits,
    # measured once after its runs when asked (``quality``); the same on every run of the lane.
    perplexity: float | None = metric("perplexity", digits=2, panel="perplexity", panel_line=1, cli="ppl")
    perplexity_vs_reference: float | None = metric(  # this lane's perplexity / the reference lane's
        "ppl vs reference", digits=2, panel="vs reference", unit="x", panel_line=1, cli="ppl/ref")
    perplexity_tokens: int | None = None  # tokens scored
    perplexity_text: str = ""  # which held-out text (assets/heldout/)
    perplexity_note: str = ""  # why there is none (the runtime exposes no logits), or its reference
    # How the figures were taken (issue 9): the runtimes' thread budget, their versions, whether a
    # browser page was streaming this run, and how much of the machine everything else used.
    threads: int | None = None
    versions: str = ""
    page_attached: bool = False
    # The lane's worker had the model loaded already (the pool): no load in this comparison; load_s
    # is the earlier load's. None: nothing was loaded (the load failed).
    load_reused: bool | None = None
    busy_machine: bool = False  # others took more than the budget leaves free: figures understate
    contended_host: bool = False  # a VM's host took CPU time from this machine: figures understate
    # The worker did not run for a while in its timed window (playground.engine.stall): why, in words
    # ("" = it ran throughout). The figures are kept, but they are not the runtime's speed.
    stall_note: str = ""
    cpu_pct: float | None = None  # the worker's CPU time / wall time of the run, % of one core

    @property
    def stalled(self) -> bool:
        return bool(self.stall_note)
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.error

    def to_dict(self) -> dict:
        data = asdict(self)
        return {name: data[name] for name in [*self.field_names(), "extra"]}

    @classmethod
    def field_names(cls) -> list[str]:
        """Every field but ``extra``: what the lane is first (backend, device, ...), then the rest."""
        named = [f for f in fields(cls) if f.name != "extra"]
        identity = [f.name for f in named if f.default is MISSING and f.default_factory is MISSING]
        return identity + [f.name for f in named if f.name not in identity]
