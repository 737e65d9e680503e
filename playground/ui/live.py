"""A running comparison as the page sees it: per-lane views folded from engine events.

Every figure comes from the engine (event timestamps measured in the worker, RunRecords);
the UI only counts how often it redraws.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from playground.backends import backend_classes
from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.events import (
    AgreementEvent,
    ErrorEvent,
    LaneEvent,
    QualityEvent,
    ResultEvent,
    StateEvent,
    TokensEvent,
)
from playground.engine.live_rates import LiveRates
from playground.engine.pool import WorkerPool
from playground.engine.protocol import LaneState
from playground.engine.records import BackendSpec, RunRecord
from playground.models.resolve import ModelSource

WorkerCallback = Callable[[str, int, bool], None]
log = logging.getLogger(__name__)


@dataclass
class LaneView:
    """What one backend's panel shows; ``version`` bumps on every change (for coalescing)."""

    key: str
    backend: str
    label: str
    device: str
    precision: str
    state: LaneState = LaneState.QUEUED
    message: str = ""
    text: str = ""
    tokens: int = 0
    elapsed_s: float = 0.0
    rates: LiveRates = field(default_factory=LiveRates)  # this run's batches: live tok/s, provisional TTFT
    record: RunRecord | None = None
    error: str = ""
    version: int = 0
    generating_since: float = 0.0  # app-side monotonic time of the last "generating" state
    streaming: bool = False  # tokens of the announced run have arrived (its timing is under way)

    @classmethod
    def for_spec(cls, spec: BackendSpec) -> LaneView:
        cls_ = backend_classes().get(spec.backend)
        label = cls_.label if cls_ is not None else spec.backend
        return cls(spec.key, spec.backend, label, spec.device, spec.precision)

    def apply(self, event: LaneEvent) -> None:
        if isinstance(event, TokensEvent):
            if self.rates.add(event.run, event.elapsed_s, event.tokens):
                self.text = ""
            self.text += event.text
            self.tokens = event.tokens
            self.elapsed_s = event.elapsed_s
            self.streaming = True
        elif isinstance(event, (StateEvent, ErrorEvent)):
            if event.state is LaneState.GENERATING:
                self.generating_since = time.monotonic()
            self.state = event.state
            self.message = event.message
            if isinstance(event, ErrorEvent):
                self.error = event.message
        elif isinstance(event, ResultEvent):
            self.record = event.record
            if event.record.text and not event.record.error:
                self.text = event.record.text
            if event.record.error:
                self.error = event.record.error
        elif isinstance(event, (AgreementEvent, QualityEvent)):
            # the reference answered after this run: redraw it if it is the run shown
            shown, record = self.record, event.record
            if shown is None or (shown.run, shown.prompt_index) == (record.run, record.prompt_index):
                self.record = event.record
        self.version += 1

    @property
    def name(self) -> str:
        detail = " ".join(filter(None, [self.device, self.precision]))
        return f"{self.label} {detail}".strip()

    @property
    def finished(self) -> bool:
        return self.state.terminal


class LiveRun:
    """One comparison plus its lane views; the constructor validates (raises user-facing errors).

    For the page, ``updates()`` drives the engine in a background thread and wakes the page's
    generator when something changed, at most once per interval: a burst of engine events
    becomes one redraw, and a state change is never lost to coalescing.
    """

    def __init__(
        self,
        request: ComparisonRequest,
        on_worker: WorkerCallback | None = None,
        pool: WorkerPool | None = None,
        model: ModelSource | None = None,
    ) -> None:
        self._watch = on_worker
        self.comparison = Comparison(request, on_worker=self._on_worker if on_worker else None, pool=pool,
                                     model=model)
        self.lanes: dict[str, LaneView] = {spec.key: LaneView.for_spec(spec) for spec in request.specs}
        self.started = time.time()
        self.lock = threading.Lock()  # held while a lane changes or is rendered
        self._changed = threading.Condition(self.lock)
        self._dirty = False
        self._urgent = False  # a lane changed state or finished a run: the page should not wait
        self.finished = False
        self.failure: BaseException | None = None
        self.charts_drawn_at = 0.0  # monotonic time the page last got the charts (their cadence)

    def _on_worker(self, key: str, pid: int, started: bool) -> None:
        lane = self.lanes.get(key)
        names = [other.name for other in self.lanes.values()]
        label = lane.name if lane is not None and names.count(lane.name) == 1 else key
        if self._watch is not None:
            self._watch(label, pid, started)

    def run_to_end(self) -> list[RunRecord]:
        """Drive the comparison in the calling thread (the API, the background thread)."""
        try:
            for event in self.comparison.events():
                with self._changed:
                    lane = self.lanes.get(event.lane)
                    if lane is not None:
                        lane.apply(event)
                    self._dirty = True
                    self._urgent = self._urgent or event.kind != "tokens"
                    self._changed.notify_all()
        except BaseException as exc:
            log.exception("the comparison failed")
            self.failure = exc
        finally:
            with self._changed:
                self.finished = True
                self._changed.notify_all()
        if self.failure is not None:
            raise self.failure
        return self.comparison.records

    def updates(self, interval_s: float | Callable[[], float] = 0.1,
                heartbeat_s: float = 1.0) -> Iterator[None]:
        """Yield whenever lanes changed, at most once per ``interval_s`` (a number, or a callable
        asked each time) for streamed tokens but at once for a state change or a finished run (the
        fair mode's pause before a run is when the page should draw), at least every ``heartbeat_s``
        (the charts move on while nothing streams, e.g. during loading), and once at the end."""
        interval = interval_s if callable(interval_s) else (lambda: interval_s)
        thread = threading.Thread(target=self._background, name="comparison", daemon=True)
        thread.start()
        try:
            next_at = 0.0
            while True:
                with self._changed:
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        self._changed.wait_for(lambda: self._urgent or self.finished, timeout=delay)
                    self._changed.wait_for(lambda: self._dirty or self.finished, timeout=heartbeat_s)
                    self._dirty = self._urgent = False
                    finished = self.finished
                next_at = time.monotonic() + interval()
                yield
                if finished:
                    break
        finally:
            if not self.finished:  # the page went away mid-run: free the machine (gradio closes this
                # generator from its event loop, so the workers are freed without blocking it)
                self.comparison.cancel(wait=False)
        if self.failure is not None:
            raise self.failure

    def _background(self) -> None:
        with contextlib.suppress(BaseException):  # kept in self.failure for the page
            self.run_to_end()

    def quiet_for(self, settle_s: float, draw_s: float, first_s: float) -> float:
        """Seconds the page should wait before its next frame. The engine announces a run
        ``settle_s`` before starting it: the page draws in the first ``draw_s`` of that pause, then
        keeps quiet until the run has had ``first_s`` to itself (a short run is never drawn over)."""
        if not self.generating_alone():
            return 0.0
        since = max((lane.generating_since for lane in self.lanes.values() if lane.state == "generating"),
                    default=0.0)
        elapsed = time.monotonic() - since
        if elapsed < draw_s:
            return 0.0
        return max(0.0, settle_s + first_s - elapsed)

    def generating_alone(self) -> bool:
        """A backend is generating in the fair (sequential) mode: the page should keep quiet."""
        return self.comparison.request.mode == "sequential" and any(
            lane.state == "generating" for lane in self.lanes.values())

    def measuring_alone(self) -> bool:
        """Like ``generating_alone``, once the announced run's tokens flow (not in its pause)."""
        return self.comparison.request.mode == "sequential" and any(
            lane.state == "generating" and lane.streaming for lane in self.lanes.values())

    def stop(self) -> None:
        self.comparison.stop()

    @property
    def records(self) -> list[RunRecord]:
        return self.comparison.records

