"""The page's run handlers: validate, start the comparison, stream its frames, finish.

Connecting them to the page is ``wiring.py``; what a frame holds is ``frames.py``; the HTTP API
is ``api.py``; which tab owns which run is ``sessions.py``.
"""

from __future__ import annotations

import atexit
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from playground.engine import prompt_sets
from playground.engine.parameters import RunParameters, SettingsError
from playground.engine.policy import work_tokens
from playground.engine.pool import WorkerPool
from playground.engine.quotas import ClientQuota
from playground.engine.records import BackendSpec
from playground.history.exports import write_exports
from playground.models.resolve import ModelNotFoundError, needs_download
from playground.ui.backend_picker import BackendRow, specs_from_inputs
from playground.ui.batch_view import BatchView
from playground.ui.client_limits import client_of
from playground.ui.form import AUTO, from_widgets, reference_choices
from playground.ui.frames import FAIR_FIRST_FRAME_S, PAGE_DRAW_S, PAGE_SETTLE_S, Frames, update_interval
from playground.ui.gradio_queue import caller_gone
from playground.ui.history_view import HistoryView
from playground.ui.live import LiveRun
from playground.ui.monitoring import RunMonitor
from playground.ui.options import AppOptions
from playground.ui.page import Page
from playground.ui.results import quality_markdown, record_dicts, table_rows
from playground.ui.sessions import Sessions

USER_ERRORS = (SettingsError, ModelNotFoundError)


class Controller:
    """Holds what outlives one event: options, the probe rows, live runs per session, the monitor."""

    def __init__(self, options: AppOptions, rows: list[BackendRow], monitor: RunMonitor,
                 quota: ClientQuota | None = None) -> None:
        self.options = options
        self.quota = quota  # per-client limits of an untrusted page (engine.quotas)
        # Loaded workers of the last selection stay up, so the next prompt skips loading.
        self.pool = WorkerPool()
        atexit.register(self.pool.close_all)
        self.rows = rows
        self.monitor = monitor
        self.sessions = Sessions()
        self.history = HistoryView(trusted=not options.untrusted)
        self.batch = BatchView(self)  # the page's matrix and sweep
        self.page: Page | None = None
        self.frames: Frames | None = None

    def attach(self, page: Page) -> None:
        self.page = page
        self.frames = Frames(page, self.monitor)

    def default_specs(self) -> list[BackendSpec]:
        """The page's preselected lanes (what ``--backends`` or the probe chose)."""
        return [row.spec(row.device, row.precision) for row in self.rows if row.selected]

    def start(self, params: RunParameters, specs: list[BackendSpec], page_attached: bool = False,
              client: str | None = None) -> LiveRun:
        """Check the policy, resolve the model, charge ``client``'s quota, create the comparison;
        raises USER_ERRORS with the message to show. ``page_attached``: a browser page streams
        this run (the records say so)."""
        model_name = params.model.strip() or self.options.model
        request = params.to_request(specs, page_attached=page_attached,
                                    settle_s=PAGE_SETTLE_S if page_attached else 0.0)
        self.options.policy.check_work(request)  # before the model is resolved: that may download
        model, request.allow_local_paths = self.options.policy.admit(model_name, specs)
        request.model = model_name
        if self.quota is not None and client is not None:
            self.quota.charge(client, work_tokens(request))
        return LiveRun(request, on_worker=self.monitor.on_worker, pool=self.pool, model=model)

    def measured(self, run: LiveRun) -> Iterator[None]:
        """``run.updates()`` with the utilization monitor sampling for its whole length."""
        self.monitor.run_started()
        try:
            yield from run.updates(lambda: update_interval(run))
        finally:
            self.monitor.run_ended()

    def run_stream(self, request: gr.Request, *values: Any) -> Iterator[dict]:
        page, frames = self.page, self.frames
        assert page is not None and frames is not None, "attach(page) first"
        names = list(page.form)  # the order of page.form_components()
        count = len(names)
        previous: list[dict] = values[count] or []
        owner_token = values[count + 1]  # the History section's browser token (history_view)
        specs = specs_from_inputs(self.rows, list(values[count + 2:]))
        try:
            params = from_widgets(dict(zip(names, values[:count], strict=True)))
            self.options.policy.check_lanes(specs)
            model_name = params.model.strip() or self.options.model
            if needs_download(model_name):  # can take minutes: say so before it starts
                yield {page.status: f"Downloading {model_name!r} from the Hugging Face hub…"}
            run = self.start(params, specs, page_attached=True, client=self.client(request))
        except USER_ERRORS as exc:
            yield {page.status: f"**Cannot run:** {exc}"}
            return
        self.sessions.put(request.session_hash, run, owner=request.username)
        if self.sessions.take_cancel(request.session_hash, request.username):  # Stop while it waited
            run.stop()
        started_at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started))
        shown: dict = {}  # lane key -> version, component -> content last sent
        failure = ""
        try:
            first = True
            for _ in self.measured(run):
                hold = run.quiet_for(PAGE_SETTLE_S, PAGE_DRAW_S, FAIR_FIRST_FRAME_S)
                if hold > 0:
                    time.sleep(hold)
                with run.lock:
                    frame = frames.lanes(run, shown, first)
                frame.update(frames.charts_due(run))
                first = False
                if frame:
                    yield frame
        except USER_ERRORS as exc:  # e.g. another comparison still holds the machine
            failure = f"**Cannot run:** {exc}"
        except Exception as exc:  # an engine bug: say so, keep the page usable
            failure = f"**The comparison failed:** {type(exc).__name__}: {exc}"
        rows = previous + record_dicts(run.records, started_at)
        self.history.save(request, owner_token, run.records, run.started, run.comparison.request)
        csv_path, json_path = write_exports(rows)  # an export folder the janitor prunes
        yield {
            page.status: failure or frames.summary(run),
            page.table: table_rows(rows),
            page.quality: quality_markdown(run.records, run.comparison.request.prompts),
            page.records: rows,
            page.csv: gr.DownloadButton(value=str(csv_path), interactive=True),
            page.json: gr.DownloadButton(value=str(json_path), interactive=True),
        }

    def client(self, request: gr.Request | None) -> str | None:
        """The quota key of a page or API request (its login, else its address)."""
        if request is None:
            return None
        return client_of(getattr(request, "username", None), request, behind_proxy=self.options.public)

    def caller_gone(self, session_hash: str | None, api_name: str) -> bool:
        """The caller of a running API call dropped its stream (``gradio_queue.caller_gone``)."""
        return self.page is not None and caller_gone(self.page.blocks, session_hash, api_name)

    def reference_options(self, *values: Any) -> gr.Dropdown:
        """The selected lanes as "compare answers against" choices; a choice that left falls back to auto."""
        specs = specs_from_inputs(self.rows, list(values[:-1]))
        choices = reference_choices(specs, {row.name: row.label for row in self.rows})
        current = values[-1] if values[-1] in [value for _, value in choices] else AUTO
        return gr.Dropdown(choices=choices, value=current)

    def begin(self, request: gr.Request) -> tuple:
        self.sessions.uncancel(request.session_hash)
        return (gr.Button(interactive=False), gr.Button(interactive=True),
                "Starting… (when another comparison is running on this machine, this one waits its turn)")

    def finish(self, request: gr.Request) -> tuple:
        assert self.frames is not None
        figures = self.frames.charts(self.sessions.get(request.session_hash))
        return (gr.Button(interactive=True), gr.Button(interactive=False), *figures)

    def stop(self, request: gr.Request) -> str:
        if self.sessions.foreign(request.session_hash, request.username):
            return "Nothing of yours is running."  # another login's run under a replayed hash
        run = self.sessions.run_of(request.session_hash, request.username)
        if run is None or run.finished:  # not started yet (waiting for the machine), or over
            self.sessions.cancel(request.session_hash, request.username)
            return "Stopped."
        run.stop()
        return "Stopping…"

    def clear(self) -> tuple:
        return ([], None, "", gr.DownloadButton(value=None, interactive=False),
                gr.DownloadButton(value=None, interactive=False))

    @staticmethod
    def prompt_set_chosen(name: str) -> gr.Textbox:
        """A prompt set runs instead of the prompt box: choosing one clears the box (the engine
        refuses both at once) and shows the set's prompts as its placeholder."""
        if not name:
            return gr.Textbox(placeholder="Ask something, or pick an example below")
        try:
            chosen = prompt_sets.load(name)
        except SettingsError:
            return gr.Textbox()
        listed = "\n".join(f"{index}. {text}" for index, text in enumerate(chosen.prompts, 1))
        return gr.Textbox(value="", placeholder=f"The prompt set {name!r} runs these prompts:\n{listed}")

    def close_session(self, request: gr.Request) -> None:
        """The tab closed: stop its comparison so the machine is free for others (only a heartbeat
        of the run's own login counts: gradio's heartbeat route needs none)."""
        run = self.sessions.run_of(request.session_hash, request.username)
        if run is not None and not run.finished:
            run.comparison.cancel(wait=False)
        self.sessions.drop(request.session_hash, request.username)
