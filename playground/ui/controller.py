"""Event handlers: the page and the /compare API drive the engine through the same path."""

from __future__ import annotations

import atexit
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from playground.engine.pool import WorkerPool
from playground.engine.records import BackendSpec
from playground.models.resolve import ModelNotFoundError, needs_download
from playground.settings import SettingsError
from playground.ui.backend_picker import BackendRow, specs_from_inputs
from playground.ui.charts import tokens_figure, utilization_figure
from playground.ui.form import AUTO, RunForm, reference_choices
from playground.ui.live import LiveRun, Sessions
from playground.ui.monitoring import RunMonitor
from playground.ui.options import AppOptions
from playground.ui.page import MAX_PANELS, Page
from playground.ui.panels import header_markdown, metrics_markdown
from playground.ui.results import export_files, record_dicts, table_rows

UPDATE_INTERVAL_S = 0.1  # at most 10 page updates a second, whatever the backends do
# While a backend generates alone (the fair mode) every frame the page draws takes memory bandwidth
# and cache from the run being timed, even on a core of its own (pinning the browser away did not
# help on the 2-core machine; sending nothing while generating did). So text moves twice a second,
# the panel's figures once a second, and the charts only every few seconds.
FAIR_UPDATE_INTERVAL_S = 0.5
FAIR_METRICS_EVERY_S = 1.0
# The fair mode with a page: the engine pauses before each run while the page draws the last one's
# result, and the page sends nothing in a run's first quarter second (a short run is never drawn over).
PAGE_SETTLE_S = 0.5
PAGE_DRAW_S = 0.3  # the frame announcing the run always fits in
FAIR_FIRST_FRAME_S = 0.25
# Charts cost the browser a full plotly redraw each: once a second, and every five seconds while a
# backend generates alone (a short run is drawn when it ends, a long one still moves).
CHART_EVERY_S = 1.0
FAIR_CHART_EVERY_S = 5.0
USER_ERRORS = (SettingsError, ModelNotFoundError)
FORM_FIELDS = len(RunForm.__dataclass_fields__)


class Controller:
    """Holds what outlives one event: options, the probe rows, live runs per session, the monitor."""

    def __init__(self, options: AppOptions, rows: list[BackendRow], monitor: RunMonitor) -> None:
        self.options = options
        # Loaded workers of the last selection stay up, so the next prompt skips loading.
        self.pool = WorkerPool()
        atexit.register(self.pool.close_all)
        self.rows = rows
        self.monitor = monitor
        self.sessions = Sessions()

    def start(self, form: RunForm, specs: list[BackendSpec], page_attached: bool = False) -> LiveRun:
        """Validate and create the comparison; raises USER_ERRORS with the message to show.

        ``page_attached``: a browser page streams this run (the records say so; the API's do not)."""
        request = form.request(specs, self.options)
        request.page_attached = page_attached
        request.settle_s = PAGE_SETTLE_S if page_attached else 0.0
        return LiveRun(request, on_worker=self.monitor.on_worker, pool=self.pool)

    def measured(self, run: LiveRun) -> Iterator[None]:
        """``run.updates()`` with the utilization monitor sampling for its whole length."""
        self.monitor.run_started()
        try:
            yield from run.updates(lambda: FAIR_UPDATE_INTERVAL_S if run.measuring_alone()
                                   else UPDATE_INTERVAL_S)
        finally:
            self.monitor.run_ended()

    # -- the page ----------------------------------------------------------------------------

    def wire(self, page: Page) -> None:
        self.page = page
        inputs = [*page.form.components(), page.records, *page.picker_components()]
        # The charts ride on the run's own stream (no timer round trips while a backend is measured).
        outputs = [page.status, *page.slot_components(), page.table, page.records, page.csv, page.json,
                   page.tokens_plot, page.util_plot, page.util_note]
        started = page.run.click(
            self.begin, outputs=[page.run, page.stop, page.status],
            queue=False, api_visibility="private",
        )
        started.then(
            self.run_stream, inputs=inputs, outputs=outputs, concurrency_limit=1,
            concurrency_id="engine", show_progress="hidden", api_visibility="private",
        ).then(
            self.finish, outputs=[page.run, page.stop, page.tokens_plot, page.util_plot, page.util_note],
            api_visibility="private", show_progress="hidden", concurrency_limit=None,
        )
        page.stop.click(self.stop, outputs=[page.status], queue=False, api_visibility="private")
        page.clear.click(self.clear, outputs=[page.records, page.table, page.csv, page.json],
                         queue=False, api_visibility="private")
        for component in page.picker_components():  # the reference choices follow the selection
            component.change(self.reference_options, inputs=[*page.picker_components(), page.form.reference],
                             outputs=[page.form.reference], queue=False, api_visibility="private",
                             show_progress="hidden")
        page.blocks.unload(self.close_session)
        gr.api(self.compare_api(), api_name="compare", concurrency_limit=1, concurrency_id="engine")
        gr.api(self.backends_api(), api_name="backends", concurrency_limit=None)

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

    def run_stream(self, request: gr.Request, *values: Any) -> Iterator[dict]:
        page = self.page
        form = RunForm(*values[:FORM_FIELDS])
        previous: list[dict] = values[FORM_FIELDS] or []
        specs = specs_from_inputs(self.rows, list(values[FORM_FIELDS + 1:]))
        try:
            if len(specs) > MAX_PANELS:
                raise SettingsError(f"Pick at most {MAX_PANELS} backends at once.")
            if needs_download(form.model):  # can take minutes: say so before it starts
                yield {page.status: f"Downloading {form.model!r} from the Hugging Face hub…"}
            run = self.start(form, specs, page_attached=True)
        except USER_ERRORS as exc:
            yield {page.status: f"**Cannot run:** {exc}"}
            return
        self.sessions.put(request.session_hash, run)
        if self.sessions.take_cancel(request.session_hash):  # Stop pressed while it waited its turn
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
                    frame = self._frame(run, shown, first)
                frame.update(self._charts_due(run))
                first = False
                if frame:
                    yield frame
        except Exception as exc:  # an engine bug: say so, keep the page usable
            failure = f"**The comparison failed:** {type(exc).__name__}: {exc}"
        rows = previous + record_dicts(run.records, started_at)
        csv_path, json_path = export_files(rows)
        yield {
            page.status: failure or self._summary(run),
            page.table: table_rows(rows),
            page.records: rows,
            page.csv: gr.DownloadButton(value=str(csv_path), interactive=True),
            page.json: gr.DownloadButton(value=str(json_path), interactive=True),
        }

    def _frame(self, run: LiveRun, shown: dict, first: bool) -> dict:
        """Only what changed since the last frame: the browser gets ~10 small diffs a second, and
        a component whose content is unchanged is not sent (nor re-rendered) at all."""
        page = self.page
        lanes = list(run.lanes.values())
        frame: dict = {}
        self._changed(frame, shown, page.status, self._progress(run))
        for index, slot in enumerate(page.slots):
            lane = lanes[index] if index < len(lanes) else None
            if lane is None:
                if first:
                    frame[slot.column] = gr.Column(visible=False)
                continue
            if first:
                frame[slot.column] = gr.Column(visible=True)
            if first or shown.get(lane.key) != lane.version:
                shown[lane.key] = lane.version
                self._changed(frame, shown, slot.header, header_markdown(lane))
                self._changed(frame, shown, slot.text, lane.text)
                # Live figures while a backend generates alone: once a second (the text streams on).
                now = time.monotonic()
                quiet = lane.state == "generating" and lane.streaming and run.measuring_alone()
                if (not quiet or shown.get((lane.key, "state")) != lane.state
                        or now - shown.get((lane.key, "metrics_at"), 0.0) >= FAIR_METRICS_EVERY_S):
                    shown[(lane.key, "state")], shown[(lane.key, "metrics_at")] = lane.state, now
                    self._changed(frame, shown, slot.metrics, metrics_markdown(lane))
                else:
                    shown[lane.key] = None  # metrics still owed: look at this lane again next frame
        return frame

    @staticmethod
    def _changed(frame: dict, shown: dict, component: Any, value: str) -> None:
        if shown.get(component) != value:
            shown[component] = frame[component] = value

    def _progress(self, run: LiveRun) -> str:
        mode = "one after another" if run.comparison.request.mode == "sequential" else "all at once"
        if run.comparison.stopping:
            return "Stopping…"
        active = [f"{lane.label}: {lane.state}" for lane in run.lanes.values()
                  if lane.state not in ("queued", "done", "stopped", "error")]
        return f"Running {len(run.lanes)} backend(s) {mode}" + (f" — {', '.join(active)}" if active else "")

    def _summary(self, run: LiveRun) -> str:
        lanes = list(run.lanes.values())
        failed = [lane for lane in lanes if lane.state == "error"]
        ok = len(lanes) - len(failed)
        if run.comparison.stopping:
            return "**Stopped.** Results so far are in the table below."
        flagged = sorted({r.backend for r in run.records if r.agreement_flag})
        warning = f" ⚠ Answer flagged as likely broken: {', '.join(flagged)}." if flagged else ""
        if failed:
            return (f"**Finished:** {ok} backend(s) ok, {len(failed)} with an error (see their panels)."
                    + warning)
        return f"**Finished:** {ok} backend(s), {len(run.records)} result row(s) added below." + warning

    def finish(self, request: gr.Request) -> tuple:
        figures = self._figures(self.sessions.get(request.session_hash))
        return (gr.Button(interactive=True), gr.Button(interactive=False), *figures)

    def stop(self, request: gr.Request) -> str:
        run = self.sessions.get(request.session_hash)
        if run is None or run.finished:  # not started yet (waiting for the machine), or over
            self.sessions.cancel(request.session_hash)
            return "Stopped."
        run.stop()
        return "Stopping…"

    def _charts_due(self, run: LiveRun) -> dict:
        """Both charts when their cadence says so (slower while a backend is timed alone)."""
        every = FAIR_CHART_EVERY_S if run.measuring_alone() else CHART_EVERY_S
        now = time.monotonic()
        if now - run.charts_drawn_at < every:
            return {}
        run.charts_drawn_at = now
        page = self.page
        return dict(zip((page.tokens_plot, page.util_plot, page.util_note), self._figures(run), strict=True))

    def _figures(self, run: LiveRun | None) -> tuple:
        if run is None:
            return gr.skip(), gr.skip(), gr.skip()
        with run.lock:
            lanes = list(run.lanes.values())
            tokens = tokens_figure(lanes)
        util = utilization_figure(self.monitor.samples(run.started), run.started, lanes)
        return tokens, util, self.monitor.describe()

    def clear(self) -> tuple:
        return ([], None, gr.DownloadButton(value=None, interactive=False),
                gr.DownloadButton(value=None, interactive=False))

    def close_session(self, request: gr.Request) -> None:
        """The tab closed: stop its comparison so the machine is free for others."""
        run = self.sessions.get(request.session_hash)
        if run is not None and not run.finished:
            run.stop()
        self.sessions.drop(request.session_hash)

    # -- the API -----------------------------------------------------------------------------

    def backends_api(self):
        rows = self.rows

        def backends() -> list:
            """What the start-up probe found: every backend, whether it can run here, its devices
            (value, label) and precisions, the page's default choice, and why not when it cannot."""
            return [{"name": r.name, "label": r.label, "usable": r.usable, "note": r.note,
                     "devices": [value for _, value in r.device_choices],
                     "available_devices": r.available_devices, "precisions": r.precisions, "device": r.device,
                     "precision": r.precision, "selected": r.selected} for r in rows]

        return backends

    def compare_api(self):
        controller = self

        def compare(
            prompt: str,
            backends: str = "",
            model: str = "",
            max_new_tokens: int = 64,
            decoding: str = "greedy",
            temperature: float = 0.7,
            top_p: float = 0.9,
            seed: int = 0,
            stop_at_eos: bool = True,
            mode: str = "sequential",
            system_prompt: str = "",
            warmup: int = 0,
            runs: int = 1,
            reference: str = AUTO,
        ) -> dict:
            """Run one comparison to the end; returns {ok, error, records} (one RunRecord per backend
            and run, with its answer agreement against the ``reference`` lane: "auto" = the highest
            precision, or name[:device[:precision]] of a selected one). ``backends`` is a comma list of
            name[:device[:precision]]; empty = the page's default selection."""
            form = RunForm(prompt, system_prompt, model or controller.options.model, max_new_tokens,
                           decoding, temperature, top_p, seed, stop_at_eos, mode, warmup, runs, reference)
            try:
                if backends.strip():
                    specs = [BackendSpec.parse(text) for text in backends.split(",") if text.strip()]
                else:
                    specs = [row.spec(row.device, row.precision) for row in controller.rows if row.selected]
                run = controller.start(form, specs)
            except (*USER_ERRORS, ValueError) as exc:
                return {"ok": False, "error": str(exc), "records": []}
            controller.monitor.run_started()
            try:
                records = run.run_to_end()
            finally:
                controller.monitor.run_ended()
            return {"ok": all(r.ok for r in records) and bool(records), "error": "",
                    "records": [r.to_dict() for r in records]}

        return compare
