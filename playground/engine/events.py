"""What a running comparison tells its caller (the web UI, the benchmark CLI, tests): one small
typed event per kind. Every event names its ``lane`` (``BackendSpec.key``) and has a ``kind``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from playground.engine.protocol import LaneState
from playground.engine.records import RunRecord


@dataclass
class StateEvent:
    """The lane moved on (or says more about where it is): queued ... done / stopped / error."""

    kind: ClassVar[str] = "state"
    lane: str
    state: LaneState
    message: str = ""


@dataclass
class TokensEvent:
    kind: ClassVar[str] = "tokens"
    lane: str
    text: str  # generated since the previous tokens event
    tokens: int  # tokens generated so far in this run
    elapsed_s: float  # seconds since this run's generate() started, measured in the worker
    run: int  # 1-based measured run, 0 for warm-up


@dataclass
class ResultEvent:
    """A measured run ended (its record may carry the error of a failed generation)."""

    kind: ClassVar[str] = "result"
    lane: str
    record: RunRecord


@dataclass
class ErrorEvent:
    """The lane failed; a ``StateEvent`` with ``LaneState.ERROR`` follows."""

    kind: ClassVar[str] = "error"
    state: ClassVar[LaneState] = LaneState.ERROR
    lane: str
    message: str
    record: RunRecord


@dataclass
class WorkerEvent:
    """The lane's worker process runs (started, or taken loaded from the pool)."""

    kind: ClassVar[str] = "worker"
    lane: str
    pid: int


@dataclass
class AgreementEvent:
    """An earlier record whose agreement with the reference changed (the reference finished
    after it, or a new peer arrived); ``record.run`` / ``record.prompt_index`` say which run."""

    kind: ClassVar[str] = "agreement"
    lane: str
    record: RunRecord


@dataclass
class QualityEvent:
    """An earlier record whose perplexity (or its ratio to the reference lane's) was set or changed:
    the lane was scored after its runs (``playground.engine.quality``)."""

    kind: ClassVar[str] = "quality"
    lane: str
    record: RunRecord


LaneEvent = StateEvent | TokensEvent | ResultEvent | ErrorEvent | WorkerEvent | AgreementEvent | QualityEvent
