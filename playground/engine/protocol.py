"""The worker <-> engine protocol: typed messages, and the lane states they move a lane through.

Both sides send ``encode(message)`` and read ``decode(data)``: on the wire a message is plain data,
``(kind, {field: value})``, so the two ends only share these definitions (a worker may run on
another interpreter) and a message that does not fit them fails loudly as a ``ProtocolError``
instead of being unpacked by position.

Engine -> worker: ``Probe``, ``Load``, ``Generate``, ``Score``, ``Stop`` (read out of band), ``Exit``.
Worker -> engine: ``Hello`` (once), ``Probed``, ``Progress``, ``Loaded``, ``Tokens``, ``Result``,
``Scored``, ``Failed`` (any command, with its traceback).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from playground.engine.records import LoadReport, RunReport

if TYPE_CHECKING:  # the worker imports this module first thing: keep it free of other imports
    from playground.backends.base import BackendProbe


class ProtocolError(Exception):
    """A message that is not one of this protocol's, or that does not fit its fields."""


class LaneState(str, Enum):
    """Where a lane is. Equal to its value (``LaneState.DONE == "done"``), which is also the CSS
    class suffix of its badge (``state-done``)."""

    QUEUED = "queued"
    STARTING = "starting"  # the worker process is starting
    LOADING = "loading"
    CONVERTING = "converting"  # a first-time model conversion, part of loading
    GENERATING = "generating"
    DONE = "done"
    STOPPED = "stopped"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def active(self) -> bool:
        """Busy with something worth showing in the page's status line."""
        return not self.terminal and self is not LaneState.QUEUED

    def can_become(self, other: LaneState) -> bool:
        """The lane state machine: a state may repeat (a new message), move on, or end the lane;
        an ended lane stays as it ended."""
        return not self.terminal and (other is self or other in _NEXT[self])

    def to(self, other: LaneState | str) -> LaneState:
        other = LaneState(other)
        if not self.can_become(other):
            raise ProtocolError(f"a lane cannot go from {self.value} to {other.value}")
        return other


_TERMINAL = frozenset({LaneState.DONE, LaneState.STOPPED, LaneState.ERROR})
_NEXT: dict[LaneState, frozenset[LaneState]] = {
    LaneState.QUEUED: frozenset({LaneState.STARTING, LaneState.LOADING}) | _TERMINAL,  # loading: kept worker
    LaneState.STARTING: frozenset({LaneState.LOADING}) | _TERMINAL,
    LaneState.LOADING: frozenset({LaneState.CONVERTING, LaneState.GENERATING}) | _TERMINAL,
    LaneState.CONVERTING: frozenset({LaneState.LOADING}) | _TERMINAL,
    LaneState.GENERATING: _TERMINAL,  # the next run is generating again
    LaneState.DONE: frozenset(),
    LaneState.STOPPED: frozenset(),
    LaneState.ERROR: frozenset(),
}


# -- engine -> worker --------------------------------------------------------------------------


@dataclass
class Probe:
    kind: ClassVar[str] = "probe"
    backend: str
    target: str = ""  # "module:Class" the app resolved: the worker imports just that (see class_target)


@dataclass
class Load:
    kind: ClassVar[str] = "load"
    backend: str
    model_dir: str
    device: str
    precision: str
    target: str = ""  # "module:Class" the app resolved (see backends.class_target)


@dataclass
class Generate:
    kind: ClassVar[str] = "generate"
    prompt: str  # already chat-templated
    settings: dict  # GenerationSettings.to_dict()
    flush_interval_s: float
    run_id: str = ""  # names this run: a ``Stop`` for any other id is ignored, the ``Result`` echoes it
    # the messages ``prompt`` was rendered from (system, user): what a chat-API backend sends
    messages: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Score:
    """The perplexity of a held-out text from the loaded runtime's own logits (after the lane's runs)."""

    kind: ClassVar[str] = "score"
    text: str
    max_tokens: int  # score at most this many of its tokens
    run_id: str = ""  # the ``Scored`` echoes it


@dataclass
class Stop:
    """Stop the run named ``run_id`` (queued or generating); a stop for a run that already ended
    is ignored, so it can never reach a later run on the same (pooled) worker."""

    kind: ClassVar[str] = "stop"
    run_id: str = ""


@dataclass
class Exit:
    kind: ClassVar[str] = "exit"


Command = Probe | Load | Generate | Score | Stop | Exit


# -- worker -> engine --------------------------------------------------------------------------


@dataclass
class Hello:
    kind: ClassVar[str] = "hello"
    pid: int


@dataclass
class Probed:
    kind: ClassVar[str] = "probed"
    probe: BackendProbe

    def __post_init__(self) -> None:
        if isinstance(self.probe, dict):  # decoded from the wire
            from playground.backends.base import BackendProbe, DeviceProbe

            data = dict(self.probe)
            data["devices"] = [DeviceProbe(**device) for device in data.get("devices", [])]
            self.probe = BackendProbe(**data)


@dataclass
class Progress:
    kind: ClassVar[str] = "progress"
    text: str
    stage: LaneState = LaneState.LOADING  # loading, or converting for a first-time conversion

    def __post_init__(self) -> None:
        stage = LaneState(self.stage)
        if stage not in (LaneState.LOADING, LaneState.CONVERTING):
            raise ProtocolError(f"progress belongs to loading or converting, not {stage.value}")
        self.stage = stage


@dataclass(kw_only=True)
class Loaded(LoadReport):
    kind: ClassVar[str] = "loaded"
    device: str
    precision: str
    device_note: str = ""
    threads: int | None = None
    versions: str = ""

    def summary(self) -> str:
        """One line for the lane's state, e.g. "loaded on CPU int4 in 1.20 s, converted in 9.1 s"."""
        note = f" ({self.device_note})" if self.device_note else ""
        load = f" in {self.load_s:.2f} s" if self.load_s is not None else ""
        convert = f", converted in {self.conversion_s:.1f} s" if self.conversion_s else ""
        return f"loaded on {self.device} {self.precision}{note}{load}{convert}"


@dataclass
class Tokens:
    kind: ClassVar[str] = "tokens"
    text: str  # generated since the previous Tokens
    count: int  # tokens so far in this run
    elapsed_s: float  # since this run's generate() started, measured in the worker


@dataclass(kw_only=True)
class Result(RunReport):
    kind: ClassVar[str] = "result"
    # a short fingerprint of the prompt's ids: equal digests = the lanes' tokenizers agree on it
    prompt_ids_digest: str = ""
    run_id: str = ""  # the ``Generate.run_id`` this answers


@dataclass
class Scored:
    """The answer to ``Score``: a perplexity, or None and ``note`` saying why this runtime cannot."""

    kind: ClassVar[str] = "scored"
    perplexity: float | None
    tokens: int = 0  # tokens scored
    windows: int = 0
    window: int = 0
    source: str = ""  # what the logits came from
    seconds: float = 0.0
    note: str = ""
    run_id: str = ""

    def __post_init__(self) -> None:
        if self.perplexity is not None and not self.perplexity >= 1.0:  # also refuses NaN
            raise ProtocolError(f"a perplexity is at least 1, not {self.perplexity!r}")


@dataclass
class Failed:
    kind: ClassVar[str] = "failed"
    command: str  # the kind of the command that failed
    message: str  # one sentence for the user
    traceback: str = ""  # for the record and the log, never the page


Message = Hello | Probed | Progress | Loaded | Tokens | Result | Scored | Failed

_KINDS: dict[str, type] = {
    cls.kind: cls
    for cls in (Probe, Load, Generate, Score, Stop, Exit, Hello, Probed, Progress, Loaded, Tokens, Result,
                Scored, Failed)
}


def encode(message: Command | Message) -> tuple[str, dict[str, Any]]:
    """The message as plain data for ``Connection.send``."""
    payload = {}
    for f in fields(message):  # type: ignore[arg-type]
        value = getattr(message, f.name)
        if isinstance(value, Enum):
            value = value.value
        elif is_dataclass(value) and not isinstance(value, type):
            value = asdict(value)
        payload[f.name] = value
    return message.kind, payload


def decode(data: Any) -> Command | Message:
    """The message ``encode`` made; ``ProtocolError`` for anything else."""
    try:
        kind, payload = data
        cls = _KINDS[kind]
    except (TypeError, ValueError, KeyError):
        raise ProtocolError(f"not a protocol message: {data!r:.200}") from None
    try:
        return cls(**payload)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed {kind} message: {exc}") from exc


__all__ = [
    "Command",
    "Exit",
    "Failed",
    "Generate",
    "Hello",
    "LaneState",
    "Load",
    "Loaded",
    "Message",
    "Probe",
    "Probed",
    "Progress",
    "ProtocolError",
    "Result",
    "Score",
    "Scored",
    "Stop",
    "Tokens",
    "decode",
    "encode",
]
