"""The whole matrix from one model: every usable backend x device x precision as one comparison.

python -m playground.bench --matrix --model smollm2 --target-ttft 1 --target-decode 10 --chart m.html

A bare backend name expands to every device the probe found usable here and every precision the
backend offers there (``--backends transformers,llama.cpp:cpu:Q8_0`` keeps the second lane as
given). What cannot run is left out and said so: a device that is absent, a precision a device
refuses. The lanes run one after another (the fair mode: each has the machine to itself, and only
its model is in memory), with the held-out perplexity on, so the ranking's "most faithful" has a
measure on every runtime that exposes logits.

Before it starts, the plan says which lanes must convert first (the conversion cache has no copy)
and estimates the time from this machine's own history of the same model and lanes; while it runs,
the estimate is re-made from the lanes measured so far. Nothing is assumed: a lane with no history
is counted as unknown until a lane has been measured.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from playground.backends import get_backend_class
from playground.backends.base import BackendProbe
from playground.engine import stats
from playground.engine.admission import UNSUPPORTED
from playground.engine.events import LaneEvent, StateEvent
from playground.engine.memory import conversion_folder
from playground.engine.protocol import LaneState
from playground.engine.records import BackendSpec, RunRecord
from playground.engine.run_fields import SettingsError
from playground.history.owners import LOCAL
from playground.models.convert_cache import is_complete
from playground.models.resolve import ModelSource

if TYPE_CHECKING:
    from playground.engine.comparison import ComparisonRequest

AUTO = "auto"  # llama.cpp's "the model's own GGUF, else Q4_K_M": the same lane as an explicit one
MAX_MATRIX_LANES = 40


class MatrixError(SettingsError):
    """A matrix that cannot be built; its text is the user's message."""


def expand(
    specs: Sequence[BackendSpec], probes: dict[str, BackendProbe]
) -> tuple[list[BackendSpec], list[str]]:
    """Every bare backend name becomes its usable devices x precisions; a spec with a device or a
    precision stays as given (a missing half is filled from the probe). Returns the lanes and a
    note for each one left out."""
    lanes: list[BackendSpec] = []
    skipped: list[str] = []
    for spec in specs:
        probe = probes.get(spec.backend)
        if probe is None:
            raise MatrixError(f"Unknown backend {spec.backend!r}; known: {', '.join(probes)}")
        if not probe.usable:
            skipped.append(f"{spec.backend}: {probe.reason or 'no usable device here'}")
            continue
        devices = [d for d in probe.devices if d.available]
        if spec.device:
            devices = [d for d in devices if d.device.lower() == spec.device.lower()]
            if not devices:
                skipped.append(f"{spec.backend} {spec.device}: not a usable device here")
                continue
        for absent in (d for d in probe.devices if not d.available and not spec.device):
            skipped.append(f"{spec.backend} {absent.device}: {absent.note or 'not available here'}")
        precisions = [spec.precision] if spec.precision else [p for p in probe.precisions if p != AUTO]
        for device in devices:
            for precision in precisions:
                if (spec.backend, device.device.lower(), precision) in UNSUPPORTED:
                    skipped.append(f"{spec.backend} {device.device} {precision}: the device refuses it")
                    continue
                lane = BackendSpec(spec.backend, device.device, precision)
                if lane not in lanes:
                    lanes.append(lane)
    if len(lanes) > MAX_MATRIX_LANES:
        raise MatrixError(
            f"The matrix has {len(lanes)} lanes; at most {MAX_MATRIX_LANES} run in one go: "
            "name fewer backends with --backends"
        )
    return lanes, skipped


def with_own_files(lanes: Sequence[BackendSpec], model_dir: Path) -> list[BackendSpec]:
    """llama.cpp's "auto" is the GGUF the model came as when it still has one (SmolLM2's Q4_1): a
    lane of its own next to the quantizations, right after them."""
    from playground.models.gguf_models import source_gguf

    result = list(lanes)
    if source_gguf(model_dir) is None:
        return result
    for device in dict.fromkeys(lane.device for lane in lanes if lane.backend == "llama.cpp"):
        own = BackendSpec("llama.cpp", device, AUTO)
        if own not in result:
            last = max(i for i, lane in enumerate(result)
                       if lane.backend == "llama.cpp" and lane.device == device)
            result.insert(last + 1, own)
    return result


def conversion_needed(model_dir: Path, spec: BackendSpec) -> bool | None:
    """True when the lane must convert first (no complete copy in the conversion cache), False when
    the cache has it, None when the backend loads the model as it is."""
    folder = conversion_folder(model_dir, spec.backend, spec.device, spec.precision)
    return None if folder is None else not is_complete(folder)


@dataclass(frozen=True)
class LaneHistory:
    """Medians of a lane's earlier records of the same model on this machine."""

    records: int
    load_s: float | None
    ttft_s: float | None
    decode_tokens_per_s: float | None
    conversion_s: float | None  # of the records that did convert (not reused from the cache)


def lane_history(records: Sequence[RunRecord]) -> dict[tuple[str, str, str], LaneHistory]:
    """History records grouped by lane (device compared without case, as the engine does)."""
    grouped: dict[tuple[str, str, str], list[RunRecord]] = {}
    for record in records:
        if record.ok:
            grouped.setdefault((record.backend, record.device.lower(), record.precision), []).append(record)
    return {
        key: LaneHistory(
            len(runs),
            stats.median(r.load_s for r in runs),
            stats.median(r.ttft_s for r in runs),
            stats.median(r.decode_tokens_per_s for r in runs),
            stats.median(r.conversion_s for r in runs if r.conversion_s and r.conversion_reused is False),
        )
        for key, runs in grouped.items()
    }


@dataclass(frozen=True)
class PlannedLane:
    spec: BackendSpec
    converts: bool | None  # see conversion_needed
    estimate_s: float | None  # from this machine's history of the lane; None: no history

    @property
    def label(self) -> str:
        return " ".join(part for part in (self.spec.backend, self.spec.device, self.spec.precision) if part)


@dataclass
class MatrixPlan:
    lanes: list[PlannedLane]
    skipped: list[str] = field(default_factory=list)
    model_dir: Path | None = None  # to look at the conversion cache again when a lane starts

    @property
    def specs(self) -> list[BackendSpec]:
        return [lane.spec for lane in self.lanes]

    def known_estimate(self) -> tuple[float, int]:
        """(seconds of the lanes with history, how many have none)."""
        known = [lane.estimate_s for lane in self.lanes if lane.estimate_s is not None]
        return sum(known), len(self.lanes) - len(known)

    def summary(self) -> str:
        converting = [lane for lane in self.lanes if lane.converts]
        cached = [lane for lane in self.lanes if lane.converts is False]
        seconds, unknown = self.known_estimate()
        text = (
            f"matrix: {len(self.lanes)} lanes; {len(converting)} convert first, {len(cached)} use a "
            "cached conversion"
        )
        if unknown == len(self.lanes):
            text += "; no history of this model on this machine: the estimate follows the first lane"
        else:
            text += f"; estimated {format_duration(seconds)} from this machine's history"
            if unknown:
                text += f", plus {unknown} lane(s) never run here"
        return text


def estimate_lane(
    history: LaneHistory | None, converts: bool | None, runs: int, new_tokens: int, scoring: bool
) -> float | None:
    """Seconds for one lane from its own history: conversion (when it must convert and it has
    converted before), load, and every run's prefill and decode; None without a history."""
    if history is None or history.decode_tokens_per_s is None:
        return None
    per_run = (history.ttft_s or 0.0) + new_tokens / history.decode_tokens_per_s
    seconds = (history.load_s or 0.0) + runs * per_run
    if converts and history.conversion_s:
        seconds += history.conversion_s
    if scoring:  # the held-out text: about one long prefill
        seconds += per_run
    return seconds


def plan(
    model_dir: Path,
    lanes: Sequence[BackendSpec],
    history: Sequence[RunRecord],
    runs: int,
    new_tokens: int,
    scoring: bool,
    skipped: Sequence[str] = (),
) -> MatrixPlan:
    """``runs`` counts warm-ups too (every run a lane makes)."""
    known = lane_history(history)
    planned = []
    for spec in lanes:
        converts = conversion_needed(model_dir, spec)
        past = known.get((spec.backend, spec.device.lower(), spec.precision))
        planned.append(PlannedLane(spec, converts, estimate_lane(past, converts, runs, new_tokens, scoring)))
    return MatrixPlan(planned, list(skipped), model_dir)


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class MatrixProgress:
    """Follows a matrix comparison's events: which lane runs, how long each took, and the time left
    from what has been measured in this run (the median measured lane for lanes with no history)."""

    def __init__(self, matrix: MatrixPlan, clock=time.monotonic) -> None:
        self.matrix = matrix
        self.clock = clock
        self.index = {lane.spec.key.lower(): i for i, lane in enumerate(matrix.lanes)}
        self.started: dict[int, float] = {}
        self.took: dict[int, float] = {}

    def observe(self, event: LaneEvent) -> str | None:
        """A progress line when a lane starts or ends, else None."""
        where = self.index.get(event.lane.lower())
        if where is None or not isinstance(event, StateEvent):
            return None
        lane = self.matrix.lanes[where]
        if (
            event.state in (LaneState.STARTING, LaneState.CONVERTING, LaneState.LOADING)
            and where not in self.started
        ):
            self.started[where] = self.clock()
            converts = lane.converts  # an earlier lane may have made it (OpenVINO's two share their IR)
            if converts and self.matrix.model_dir is not None:
                converts = conversion_needed(self.matrix.model_dir, lane.spec)
            return f"matrix: lane {where + 1}/{len(self.matrix.lanes)} {lane.label}" + (
                " (converts first)" if converts else ""
            )
        if event.state.terminal and where in self.started and where not in self.took:
            self.took[where] = self.clock() - self.started[where]
            left = self.remaining()
            return (
                f"matrix: lane {where + 1}/{len(self.matrix.lanes)} {lane.label} {event.state.value} "
                f"in {format_duration(self.took[where])}" + (f"; about {left} left" if left else "")
            )
        return None

    def remaining(self) -> str:
        todo = [i for i in range(len(self.matrix.lanes)) if i not in self.took]
        if not todo:
            return ""
        measured = list(self.took.values())
        typical = statistics.median(measured) if measured else None
        total = 0.0
        for i in todo:
            estimate = self.matrix.lanes[i].estimate_s
            if estimate is None:
                if typical is None:
                    return ""
                estimate = typical
            total += estimate
        return format_duration(total)


def prepare(request: ComparisonRequest, model: ModelSource, probes: dict[str, BackendProbe],
            history: Sequence[RunRecord]) -> MatrixPlan:
    """Turn ``request`` into the matrix of its backends (CLI and page): its specs become every lane
    of the expansion (remote endpoints serve their own model: left out). Raises ``MatrixError``
    with the user's message."""
    if request.mode != "sequential":
        raise MatrixError("The matrix runs its lanes one after another (each with the machine to itself): "
                          "choose the sequential mode")
    named = [spec for spec in request.specs if not get_backend_class(spec.backend).runs_remotely]
    lanes, skipped = expand(named, probes)
    lanes = with_own_files(lanes, model.path)
    if not lanes:
        raise MatrixError("The matrix has no backend x device x precision that can run here" +
                          (f" ({'; '.join(skipped)})" if skipped else ""))
    runs = request.warmup + request.runs * len(request.prompts)
    made = plan(model.path, lanes, history, runs, request.settings.max_new_tokens, request.quality, skipped)
    request.specs = made.specs
    return made


def owner_history(model: str) -> list[RunRecord]:
    """This machine owner's earlier records of the model (newest first), for the estimate; none
    when the history cannot be read (the estimate then waits for the first lane)."""
    from playground.history.filters import HistoryError, HistoryFilter
    from playground.history.store import default_store

    try:
        return default_store().records(LOCAL, HistoryFilter(model=model))
    except (HistoryError, OSError):
        return []
