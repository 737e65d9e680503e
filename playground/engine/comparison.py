"""Run one prompt (or several) through several backends, each in its own worker.

``sequential`` gives every backend the machine to itself (the fair comparison);
``parallel`` races them. Both modes use the same lane state machine; they only differ
in how many lanes are live at once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import wait

from playground.backends import backend_names, class_target
from playground.engine import parameters
from playground.engine.admission import MemoryGate, estimate_elsewhere, estimate_lane
from playground.engine.contention import busy_threshold, contended_host
from playground.engine.events import (
    AgreementEvent,
    ErrorEvent,
    LaneEvent,
    QualityEvent,
    ResultEvent,
    StateEvent,
    TokensEvent,
    WorkerEvent,
)
from playground.engine.launcher import WorkerDied, WorkerProcess
from playground.engine.parameters import RunParameters
from playground.engine.pool import PoolKey, WorkerPool
from playground.engine.protocol import (
    Failed,
    Generate,
    LaneState,
    Load,
    Loaded,
    Progress,
    Result,
    Score,
    Scored,
    Tokens,
)
from playground.engine.quality import MAX_TOKENS, PerplexityBoard, heldout_for
from playground.engine.quality import failed as quality_failed
from playground.engine.records import BackendSpec, LoadReport, RunRecord, RunReport, figures_of
from playground.engine.reference import AUTO, AgreementJudge, Changed, reference_order, stop_token_ids
from playground.engine.stall import judge as judge_stall
from playground.models.chat import chat_messages, render_prompt
from playground.models.resolve import ModelSource, resolve_model
from playground.models.tokens import count_prompt_tokens, encode
from playground.settings import GenerationSettings, SettingsError, validate_prompt

MODES = parameters.MODES  # declared with the run parameters
log = logging.getLogger(__name__)
# One comparison at a time in this process, on every path (page, API, CLI): figures of runs that
# overlap measure each other. A comparison that finds the machine taken waits this long for it (a
# cancelled one frees it within CANCEL_GRACE_S), then is refused with ``MachineBusy``.
MACHINE_WAIT_S = 10.0
# cancel(): how long a generating worker gets to answer its Stop before it is killed.
CANCEL_GRACE_S = 1.0
NAME_ECHO = 80  # characters of a user-typed name echoed back in a message


def echo(text: str, limit: int = NAME_ECHO) -> str:
    """A user-typed name quoted for a message, cut to ``limit`` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text):,} characters)"


def seconds(value: float) -> str:
    """A timeout for a message: whole seconds ("120"), a short one to two digits ("0.5", not "0")."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


class MachineBusy(SettingsError):
    """Another comparison still runs in this process; the message says so."""


class _Machine:
    """The module-level guarantee behind MACHINE_WAIT_S: who runs now, and since when."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guard = threading.Lock()
        self.holder: Comparison | None = None
        self.since = 0.0

    def acquire(self, comparison: Comparison, wait_s: float, cancelled: threading.Event) -> bool:
        deadline = time.monotonic() + wait_s
        while not cancelled.is_set():
            if self._lock.acquire(timeout=max(0.0, min(0.1, deadline - time.monotonic()))):
                with self._guard:
                    self.holder, self.since = comparison, time.monotonic()
                return True
            if time.monotonic() >= deadline:
                return False
        return False

    def release(self, comparison: Comparison) -> None:
        with self._guard:
            if self.holder is not comparison:
                return
            self.holder = None
        self._lock.release()

    def busy_for(self) -> float:
        with self._guard:
            return time.monotonic() - self.since if self.holder is not None else 0.0


MACHINE = _Machine()


@dataclass
class ComparisonRequest:
    prompts: list[str]
    specs: list[BackendSpec]
    model: str = "demo"
    system_prompt: str | None = None
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    mode: str = "sequential"
    warmup: int = 0
    runs: int = 1
    load_timeout_s: float = 1800.0  # first-time conversion of a real 4B model takes minutes
    idle_timeout_s: float = 120.0  # no token for this long while generating = hung
    first_token_timeout_s: float = 900.0  # prefill of a long prompt on a slow device may take minutes
    flush_interval_s: float = 0.05  # how often workers ship token batches (<= 20 / s)
    allow_local_paths: bool = True  # False for requests coming from a shared web page
    page_attached: bool = False  # a browser page streams this run (recorded: it competes for CPU)
    # Sequential mode: pause this long before each run, so a page renders the last run's result
    # while nothing is measured (0 headless: nothing to draw).
    settle_s: float = 0.0
    # A different interpreter per backend (e.g. a separate venv for the NPU library).
    worker_python: dict[str, str] = field(default_factory=dict)
    # Cap on what the workers may hold together, MB (None: PLAYGROUND_MEMORY_LIMIT_MB, else what
    # is available minus a margin). memory_check=False loads even when the estimate says no.
    memory_limit_mb: float | None = None
    memory_check: bool = True
    # The lane every answer is compared with: "auto" (highest precision), a lane key or a
    # backend spec name[:device[:precision]] among the selected ones (playground.engine.reference).
    reference: str = AUTO
    # After its runs, each lane's perplexity on the held-out text (playground.engine.quality).
    quality: bool = False


@dataclass
class PreparedPrompt:
    user: str
    templated: str
    tokens: int | None  # counted with the model's tokenizer.json when it has one
    messages: list[dict[str, str]] = field(default_factory=list)  # what ``templated`` was rendered from


class Comparison:
    """Validate a request, then ``events()`` runs it; ``stop()`` and ``cancel()`` may be called
    from any thread. Closing the ``events()`` generator (or dropping it) cancels the comparison."""

    def __init__(
        self,
        request: ComparisonRequest,
        on_worker: Callable[[str, int, bool], None] | None = None,
        pool: WorkerPool | None = None,
        model: ModelSource | None = None,
    ) -> None:
        """``model``: resolved beforehand (``Policy.admit``, which may download it); without it the
        request's model must already be on this machine: the constructor never downloads."""
        self.request = request
        self.on_worker = on_worker  # (lane, pid, started) for the utilization monitor
        self.pool = pool  # keeps loaded workers for the next comparison (the web app)
        self.records: list[RunRecord] = []
        self._stop = threading.Event()
        self._cancelled = threading.Event()
        self._step = threading.RLock()  # held while events() computes its next event
        self._validate_request()
        try:
            self.memory = MemoryGate(request.memory_limit_mb, request.memory_check, pool)
        except ValueError as exc:
            raise SettingsError(str(exc)) from exc
        self.lanes: list[_Lane] = []
        self.model: ModelSource = model or resolve_model(request.model, request.allow_local_paths,
                                                         download=False)
        self.prompts = [self._prepare(prompt) for prompt in request.prompts]
        model_dir = self.model.path
        order = reference_order(request.specs, request.reference)
        self.heldout = heldout_for(model_dir) if request.quality else None
        self.perplexity = PerplexityBoard(order, self.heldout.name if self.heldout else "")
        self.judge = AgreementJudge(
            order,
            greedy=not request.settings.do_sample,
            stop_ids=stop_token_ids(model_dir),
            retokenise=lambda text: encode(model_dir, text),
        )

    def _validate_request(self) -> None:
        request = self.request
        if request.mode not in MODES:
            raise SettingsError(f"mode must be one of {', '.join(MODES)}, got {request.mode!r}")
        if not request.specs:
            raise SettingsError("Pick at least one backend.")
        if not request.prompts:
            raise SettingsError("The prompt is empty: type a question or pick an example.")
        RunParameters.parse({"warmup": request.warmup, "runs": request.runs})  # the one set of limits
        for prompt in request.prompts:
            validate_prompt(prompt)
        request.settings.validate()
        keys = [spec.key.lower() for spec in request.specs]  # "CPU" and "cpu" are one device
        if len(set(keys)) != len(keys):
            raise SettingsError("The same backend, device and precision is selected twice.")

    def _prepare(self, prompt: str) -> PreparedPrompt:
        templated = render_prompt(self.model.path, prompt, self.request.system_prompt)
        tokens = count_prompt_tokens(self.model.path, templated)
        context = self.model.context_length
        wanted = self.request.settings.max_new_tokens
        if tokens is not None and context and tokens + wanted > context:
            raise SettingsError(
                f"The prompt is {tokens:,} tokens and {wanted:,} new tokens are asked for, but the "
                f"model's context is {context:,} tokens: shorten the prompt or lower max new tokens."
            )
        return PreparedPrompt(prompt, templated, tokens, chat_messages(prompt, self.request.system_prompt))

    def stop(self) -> None:
        """Stop gracefully: runs in flight end early and are recorded, no new run starts."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self, wait: bool = True) -> float:
        """The user left: stop every lane now and free the workers (a generating worker gets
        ``CANCEL_GRACE_S`` to answer its Stop, then it is killed; a loading one is killed), and
        let the next comparison have the machine. No more events. Returns the seconds it took.

        ``wait=False`` returns at once and frees them in a thread: for callers that must not
        block (gradio closes a cancelled event's generator on its event loop); the next
        comparison still waits for the machine until they are free."""
        started = time.monotonic()
        self._cancelled.set()
        self._stop.set()
        if not wait:
            threading.Thread(target=self._release, name="comparison-cancel", daemon=True).start()
            return 0.0
        self._release()
        return time.monotonic() - started

    close = cancel  # contextlib.closing(comparison)

    def _release(self) -> None:
        with self._step:  # a step in progress ends within a wait() tick once cancelled
            self._free_lanes()
        MACHINE.release(self)

    def _free_lanes(self) -> None:
        held = [lane for lane in self.lanes if lane.worker is not None]
        generating: list[_Lane] = []
        for lane in held:
            lane.plan.clear()
            if lane.state is LaneState.GENERATING and lane.in_flight:
                assert lane.worker is not None
                lane.worker.request_stop(lane.run_id)
                generating.append(lane)
            elif lane.state is LaneState.GENERATING:  # between runs: the worker is idle
                lane.finish(LaneState.STOPPED, "cancelled", close_timeout=CANCEL_GRACE_S)
            else:  # starting / loading: nothing worth keeping
                lane.kill_and_finish("cancelled while loading")
        deadline = time.monotonic() + CANCEL_GRACE_S
        while generating and (left := deadline - time.monotonic()) > 0:
            ready = wait([lane.worker.conn for lane in generating if lane.worker], timeout=left)
            for lane in list(generating):
                if lane.worker is None or lane.worker.conn not in ready:
                    continue
                try:
                    message = lane.worker.recv()
                except WorkerDied:
                    lane.finish(LaneState.STOPPED, "cancelled (its worker died)", CANCEL_GRACE_S)
                    generating.remove(lane)
                    continue
                if isinstance(message, Failed) or (
                    isinstance(message, (Result, Scored)) and message.run_id == lane.run_id
                ):
                    lane.current, lane.in_flight = None, False  # answered its Stop: idle, fit for the pool
                    lane.finish(LaneState.STOPPED, "cancelled", close_timeout=CANCEL_GRACE_S)
                    generating.remove(lane)
        for lane in generating:
            lane.kill_and_finish(f"cancelled: no answer to Stop within {CANCEL_GRACE_S:.0f} s, worker killed")

    def events(self) -> Iterator[LaneEvent]:
        """Run the comparison, one event at a time. Waits up to ``MACHINE_WAIT_S`` for another
        comparison of this process to end, then raises ``MachineBusy``."""
        if not MACHINE.acquire(self, MACHINE_WAIT_S, self._cancelled):
            if self.cancelled:
                return
            raise MachineBusy(
                f"Another comparison has been running on this machine for {MACHINE.busy_for():.0f} s; "
                f"this one waited {MACHINE_WAIT_S:.0f} s and was not started (figures of runs that "
                "overlap would measure each other). Try again when it has finished."
            )
        inner = self._events()
        try:
            while not self.cancelled:
                with self._step:
                    if self.cancelled:
                        break
                    try:
                        event = next(inner)
                    except StopIteration:
                        break
                yield event
        finally:  # finished, failed, cancelled, or the caller closed / dropped this generator
            if not self._all_ended():  # left mid-run: nobody will read this comparison's events
                self._cancelled.set()
                self._stop.set()
            self._release()
            inner.close()

    def _all_ended(self) -> bool:
        return all(lane.worker is None for lane in self.lanes)

    def _events(self) -> Iterator[LaneEvent]:
        lanes = self.lanes = [_Lane(spec, self) for spec in self.request.specs]
        if self.pool is not None:
            self.pool.retain_only({lane.pool_key for lane in lanes})
        for lane in lanes:
            yield StateEvent(lane.key, LaneState.QUEUED, "waiting for its turn")
        if self.request.mode == "parallel":
            yield from self._drive(lanes)
        else:
            for lane in lanes:
                if self.cancelled:
                    return
                yield from self._drive([lane])
        if not self.cancelled:
            yield from self.agreement_events(self.judge.finish())
            yield from self.quality_events(self.perplexity.finish())

    def agreement_events(self, changed: Changed) -> Iterator[LaneEvent]:
        """Records whose agreement with the reference changed after they were reported."""
        for key, record in changed:
            yield AgreementEvent(key, record)

    def quality_events(self, changed: Changed) -> Iterator[LaneEvent]:
        """Records whose perplexity, or its ratio to the reference lane's, was set or changed."""
        for key, record in changed:
            yield QualityEvent(key, record)

    def _drive(self, lanes: list[_Lane]) -> Iterator[LaneEvent]:
        live: list[_Lane] = []
        for lane in lanes:
            if self._stop.is_set():
                yield lane.finish(LaneState.STOPPED, "stopped before it started")
                continue
            yield from lane.start()
            if lane.worker is not None:
                live.append(lane)
        stop_sent = False
        guarded = time.monotonic()
        while live:
            if self.cancelled:  # cancel() frees the lanes as soon as this step ends
                return
            if time.monotonic() - guarded >= 0.5:  # memory guard: a lane that outgrows the limit
                guarded = time.monotonic()
                for key, message in self.memory.guard():
                    yield from next(lane for lane in live if lane.key == key).fail(message, kill=True)
                live = [lane for lane in live if lane.worker is not None]
            if self._stop.is_set() and not stop_sent:
                stop_sent = True
                for lane in live:
                    yield from lane.stop()
                live = [lane for lane in live if lane.worker is not None]
                if not live:
                    break
            ready = wait([lane.worker.conn for lane in live], timeout=0.25)
            for lane in list(live):
                if lane.worker is not None and lane.worker.conn in ready:
                    yield from lane.receive()
                elif lane.worker is not None and lane.overdue():
                    yield from lane.fail(lane.overdue_message(), kill=True)
                if lane.worker is None:
                    live.remove(lane)


class _Lane:
    """One backend's worker and its plan of runs: load, warm-ups, measured runs, exit."""

    def __init__(self, spec: BackendSpec, comparison: Comparison) -> None:
        self.spec = spec
        self.key = spec.key
        self.comparison = comparison
        self.request = comparison.request
        self.worker: WorkerProcess | None = None
        self.state = LaneState.QUEUED  # moved only by _state(), along LaneState's transitions
        self.last_heard = time.monotonic()
        self.loaded: Loaded | None = None
        self.load_reused = False  # True: the worker came from the pool, already loaded
        self.current: tuple[int, int] | None = None  # (prompt index, run) in flight; run 0 = warm-up
        self.tokens_in_run = 0  # before the first token, prefill gets first_token_timeout_s
        self.run_id = ""  # of the run in flight (Generate / Stop / Result carry it)
        self.in_flight = False  # its Generate (or Score) went out and no answer came yet
        self.scoring = False  # its Score went out: the next answer is a Scored (or Failed)
        self.scored = False  # asked once, after its runs
        self.plan: deque[tuple[int, int]] = deque(
            (index, run)
            for index in range(len(comparison.prompts))
            for run in [0] * self.request.warmup + list(range(1, self.request.runs + 1))
        )

    @property
    def pool_key(self) -> PoolKey:
        python = self.request.worker_python.get(self.spec.backend, "")
        model = str(self.comparison.model.path)
        return (self.spec.backend, model, self.spec.device, self.spec.precision, python)

    # -- transitions -------------------------------------------------------------------------

    def start(self) -> Iterator[LaneEvent]:
        known = backend_names()
        if self.spec.backend not in known:
            yield from self.fail(f"Unknown backend {echo(self.spec.backend)}; known: {', '.join(known)}.")
            return
        reused = self.comparison.pool.take(self.pool_key) if self.comparison.pool else None
        if reused is not None:
            self.worker, self.loaded = reused
            self.load_reused = True
            self.comparison.memory.started(self.key, self.worker, self.worker.rss_mb())
            self._announce_worker()
            yield WorkerEvent(self.key, self.worker.pid)
            yield self._state(LaneState.LOADING, self.loaded.summary() + " (already loaded, reused)")
            yield from self._next_run()
            return
        refusal, note, reserve = self._admit_memory()
        if refusal:
            yield from self.fail(refusal)
            return
        yield self._state(LaneState.STARTING, "starting worker process" + (f" ({note})" if note else ""))
        self.last_heard = time.monotonic()
        try:
            self.worker = WorkerProcess(
                self.key,
                python=self.request.worker_python.get(self.spec.backend),
                memory_limit_mb=self.comparison.memory.limit_mb,
            )
        except WorkerDied as exc:
            yield from self.fail(str(exc))
            return
        self.comparison.memory.started(self.key, self.worker, reserve)
        self._announce_worker()
        yield WorkerEvent(self.key, self.worker.pid)
        try:
            self.worker.send(
                Load(
                    self.spec.backend, str(self.comparison.model.path), self.spec.device, self.spec.precision,
                    target=class_target(self.spec.backend),
                )
            )
        except WorkerDied as exc:
            yield from self.fail(str(exc))
            return
        yield self._state(LaneState.LOADING, "loading model")

    def _admit_memory(self) -> tuple[str | None, str, float]:
        """(refusal, note, MB reserved): the estimate against the budget, before any worker starts."""
        longest = max((p.tokens or len(p.templated) // 3) for p in self.comparison.prompts)
        tokens = longest + self.request.settings.max_new_tokens
        try:
            needed, alternatives = estimate_lane(self.comparison.model.path, self.spec, tokens)
        except (KeyError, ValueError, TypeError, OSError):  # a config the arithmetic cannot read
            return None, "", 0.0
        lanes = self.comparison.lanes
        waiting = {lane.pool_key for lane in lanes if lane.state is LaneState.QUEUED and lane is not self}
        model_dir = self.comparison.model.path
        refusal, note = self.comparison.memory.admit(
            self.key, needed, alternatives, waiting, lambda: estimate_elsewhere(model_dir, self.spec, tokens)
        )
        return refusal, note, needed.total_mb

    def stop(self) -> Iterator[LaneEvent]:
        self.plan.clear()
        if self.state is LaneState.GENERATING and self.worker is not None:
            self.worker.request_stop(self.run_id)
        else:  # loading / converting: nothing to keep, end it now
            yield from self.fail("stopped while loading", kill=True, state=LaneState.STOPPED)

    def receive(self) -> Iterator[LaneEvent]:
        assert self.worker is not None
        try:
            message = self.worker.recv()
        except WorkerDied as exc:
            yield from self.fail(str(exc))
            return
        self.last_heard = time.monotonic()
        if isinstance(message, Tokens):
            self.tokens_in_run = message.count
            run = self.current[1] if self.current else 0
            yield TokensEvent(self.key, message.text, message.count, message.elapsed_s, run)
        elif isinstance(message, Progress):
            if self.state.can_become(message.stage):
                yield self._state(message.stage, message.text)
            else:  # a backend reporting progress outside loading: keep the state, note it
                log.warning("%s: progress while %s: %s", self.key, self.state, message.text)
        elif isinstance(message, Loaded):
            self.loaded = message
            yield self._state(LaneState.LOADING, message.summary())
            yield from self._next_run()
        elif isinstance(message, Result):
            if message.run_id != self.run_id:  # cannot happen with one command at a time: say so
                log.warning("%s: result of run %r while %r runs: ignored", self.key, message.run_id,
                            self.run_id)
                return
            yield from self._finish_run(message)
        elif isinstance(message, Scored) and self.scoring:
            yield from self._scored(message)
        elif isinstance(message, Failed) and self.scoring:
            log.warning("%s: perplexity failed: %s", self.key, message.message)
            yield from self._scored(quality_failed(message.message))
        elif isinstance(message, Failed):
            # the traceback goes to the log file (and the record), the one sentence to the console too
            log.info("%s: traceback of the failed %s:\n%s", self.key, message.command, message.traceback)
            if message.command == Load.kind:
                reason = self.worker.child_out_of_memory() or message.message
                yield from self.fail(reason, trace=message.traceback)
            else:
                log.warning("%s: a run failed: %s", self.key, message.message)
                yield from self._finish_run(None, error=message.message, trace=message.traceback)
        else:
            yield from self.fail(f"{self.spec.backend}: the worker sent an unexpected {message.kind} message")

    def _next_run(self) -> Iterator[LaneEvent]:
        assert self.worker is not None
        if not self.plan and self._wants_score():
            yield from self._score()
            return
        if not self.plan or self.comparison.stopping:
            final = LaneState.STOPPED if self.comparison.stopping else LaneState.DONE
            yield self.finish(final, "stopped" if final is LaneState.STOPPED else "all runs finished")
            return
        self.current = self.plan.popleft()
        self.tokens_in_run = 0
        self.run_id = uuid.uuid4().hex[:16]
        index, run = self.current
        prompt = self.comparison.prompts[index]
        label = "warm-up" if run == 0 else f"run {run}/{self.request.runs}"
        if len(self.comparison.prompts) > 1:
            label += f", prompt {index + 1}/{len(self.comparison.prompts)}"
        settle = self.request.settle_s if self.request.mode == "sequential" else 0.0
        if settle:  # announce first, then let the page draw while nothing is being measured
            yield self._state(LaneState.GENERATING, label)
            time.sleep(settle)
            if self.comparison.stopping:  # stopped while it paused: the run never goes out
                self.current = None
                yield self.finish(LaneState.STOPPED, "stopped")
                return
        else:  # the state moves before the command goes out: a stop now reaches the worker
            self.state = self.state.to(LaneState.GENERATING)
        try:
            self.worker.send(
                Generate(
                    prompt.templated, self.request.settings.to_dict(), self.request.flush_interval_s,
                    run_id=self.run_id, messages=prompt.messages,
                )
            )
        except WorkerDied as exc:
            yield from self.fail(str(exc))
            return
        self.in_flight = True
        self.last_heard = time.monotonic()
        if not settle:
            yield self._state(LaneState.GENERATING, label)

    def _wants_score(self) -> bool:
        """Quality asked, not yet scored, not stopping, and some run of this lane succeeded."""
        heldout = self.comparison.heldout
        board = self.comparison.perplexity
        return (heldout is not None and not self.scored and not self.comparison.stopping
                and any(record.ok for record in board.records.get(self.key, [])))

    def _score(self) -> Iterator[LaneEvent]:
        """After the runs: ask the worker for the held-out text's perplexity (``Score``)."""
        assert self.worker is not None and self.comparison.heldout is not None
        heldout = self.comparison.heldout
        self.scored = self.scoring = True
        self.tokens_in_run = 0
        self.run_id = uuid.uuid4().hex[:16]
        try:
            self.worker.send(Score(heldout.text, MAX_TOKENS, run_id=self.run_id))
        except WorkerDied as exc:
            yield from self.fail(str(exc))
            return
        self.in_flight = True
        self.last_heard = time.monotonic()
        yield self._state(LaneState.GENERATING, f"measuring perplexity on {heldout.name}")

    def _scored(self, scored: Scored) -> Iterator[LaneEvent]:
        self.scoring = self.in_flight = False
        if scored.perplexity is not None:
            log.info("%s: perplexity %.3f over %d tokens in %.2f s (%s)", self.key, scored.perplexity,
                     scored.tokens, scored.seconds, scored.source)
        yield from self.comparison.quality_events(self.comparison.perplexity.add(self.key, scored))
        yield from self._next_run()

    def _finish_run(self, result: Result | None, error: str = "", trace: str = "") -> Iterator[LaneEvent]:
        index, run = self.current or (0, 0)
        self.current = None
        self.in_flight = False
        if run > 0 or error:
            record = self._record(index, max(run, 0), result, error, trace)
            self.comparison.records.append(record)
            self.comparison.perplexity.add_record(self.key, record)
            changed = [item for item in self.comparison.judge.add(self.key, record) if item[1] is not record]
            yield ResultEvent(self.key, record)
            yield from self.comparison.agreement_events(changed)
        yield from self._next_run()

    def _record(self, index: int, run: int, result: Result | None, error: str, trace: str = "") -> RunRecord:
        """The record of one run: the lane's identity, then every figure the messages carry."""
        loaded = self.loaded
        record = RunRecord(
            backend=self.spec.backend,
            device=(loaded.device if loaded else "") or self.spec.device,
            precision=(loaded.precision if loaded else "") or self.spec.precision,
            model=self.comparison.model.name,
            run=run,
            prompt_index=index,
            mode=self.request.mode,
            device_note=loaded.device_note if loaded else "",
            error=error,
            traceback=trace,
            threads=loaded.threads if loaded else None,
            versions=loaded.versions if loaded else "",
            page_attached=self.request.page_attached,
            load_reused=self.load_reused if loaded else None,
            **(figures_of(loaded, LoadReport) if loaded else {}),
            **(figures_of(result, RunReport) if result else {}),
        )
        if result:
            if record.other_cpu_percent is not None and record.threads:
                record.busy_machine = record.other_cpu_percent > busy_threshold(record.threads)
            record.contended_host = contended_host(record.host_steal_percent)
            if record.cpu_s is not None and record.e2e_s:
                record.cpu_pct = round(100 * record.cpu_s / record.e2e_s, 1)
            record.stall_note = judge_stall(record.stalled_s, record.e2e_s, record.cpu_s)
            record.token_ids = list(record.token_ids)
            record.extra["prompt_ids_digest"] = result.prompt_ids_digest
        return record

    def _announce_worker(self) -> None:
        self.last_heard = time.monotonic()
        if self.comparison.on_worker and self.worker is not None:
            self.comparison.on_worker(self.key, self.worker.pid, True)

    def finish(self, state: LaneState, message: str, close_timeout: float | None = None) -> StateEvent:
        healthy = self.state is LaneState.GENERATING and state in (LaneState.DONE, LaneState.STOPPED)
        self.comparison.memory.ended(self.key)
        if self.worker is not None:
            pid = self.worker.pid
            if healthy and self.comparison.pool and self.loaded and self.worker.proc.poll() is None:
                self.comparison.pool.give(self.pool_key, self.worker, self.loaded)
            elif close_timeout is None:
                self.worker.close()
            else:  # cancel(): a worker that will not exit at once is killed
                self.worker.close(timeout=close_timeout)
            self.worker = None
            if self.comparison.on_worker:
                self.comparison.on_worker(self.key, pid, False)
        return self._state(state, message)

    def kill_and_finish(self, message: str) -> None:
        """cancel(): end the lane now, its worker killed (no events: nobody listens any more)."""
        if self.worker is not None:
            self.worker.kill()
        self.plan.clear()
        self.finish(LaneState.STOPPED, message, close_timeout=CANCEL_GRACE_S)

    def fail(
        self, message: str, kill: bool = False, state: LaneState = LaneState.ERROR, trace: str = ""
    ) -> Iterator[LaneEvent]:
        if kill and self.worker is not None:
            self.worker.kill()
        if state is LaneState.ERROR:
            record = self._record(self.current[0] if self.current else 0, 0, None, message, trace)
            self.comparison.records.append(record)
            log.warning("%s failed: %s", self.key, message)
            yield ErrorEvent(self.key, message, record)
        self.plan.clear()
        yield self.finish(state, message)
        # a failed reference hands over to the next lane in line (auto), or leaves none
        yield from self.comparison.agreement_events(self.comparison.judge.lane_ended(self.key))
        yield from self.comparison.quality_events(self.comparison.perplexity.lane_ended(self.key))

    # -- timeouts ----------------------------------------------------------------------------

    def _time_limit(self) -> float:
        if self.state is not LaneState.GENERATING:
            return self.request.load_timeout_s
        if self.tokens_in_run:
            return self.request.idle_timeout_s
        return max(self.request.idle_timeout_s, self.request.first_token_timeout_s)

    def overdue(self) -> bool:
        return time.monotonic() - self.last_heard > self._time_limit()

    def overdue_message(self) -> str:
        if self.state is LaneState.GENERATING:
            return (
                f"{self.spec.backend} produced nothing for {seconds(self._time_limit())} s and "
                "was stopped (worker killed); the other backends carry on."
            )
        return (
            f"{self.spec.backend} did not finish loading within {seconds(self.request.load_timeout_s)} s "
            "and was stopped (worker killed)."
        )

    def _state(self, state: LaneState, message: str) -> StateEvent:
        self.state = self.state.to(state)
        return StateEvent(self.key, self.state, message)


def run_comparison(request: ComparisonRequest) -> list[RunRecord]:
    """Headless convenience: run to completion and return the measured records."""
    comparison = Comparison(request)
    for _ in comparison.events():
        pass
    return comparison.records
