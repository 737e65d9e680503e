"""The page's "Matrix and prompt-length sweep" section: the CLI's ``--matrix`` and ``--sweep`` on the
page, with the same engine, plan, progress, tables, ranking and charts (``playground.bench``).

Both hold the machine for minutes, so the policy gives them to the machine's owner alone
(``Policy.check_batch``). They take the page's settings (model, max new tokens, runs, warm-up,
system prompt, quality) and its selection: the matrix expands the checked backends to every usable
device x precision (a card's own device and precision do not narrow it); the sweep runs the checked
lanes as chosen at each prompt length. No panels stream: the section shows the plan and one line per
lane as it starts and ends, then the table, the ranking or the sweep's rows, and the chart. The
finished comparison is kept in the history like any other, which the next matrix's estimate reads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.bench import matrix, ranking, sweep
from playground.bench.tables import format_table
from playground.engine.comparison import Comparison
from playground.engine.events import StateEvent
from playground.engine.parameters import SettingsError
from playground.engine.probing import probe_all
from playground.engine.records import BackendSpec, RunRecord
from playground.models.resolve import ModelNotFoundError
from playground.ui.backend_picker import specs_from_inputs
from playground.ui.form import from_widgets
from playground.ui.quiet_events import progress_on

log = logging.getLogger(__name__)
KINDS = ("matrix", "sweep")
PROGRESS_LINES = 14  # the newest progress lines the status keeps
DEFAULT_LENGTHS = "128,512,2k"
USER_ERRORS = (SettingsError, ModelNotFoundError, ValueError)


@dataclass
class BatchSection:
    kind: gr.Radio
    lengths: gr.Textbox
    target_ttft: gr.Number
    target_decode: gr.Number
    run: gr.Button
    stop: gr.Button
    status: gr.Markdown
    ranking: gr.Markdown
    table: gr.Markdown
    chart: gr.Plot

    def inputs(self) -> list:
        return [self.kind, self.lengths, self.target_ttft, self.target_decode]

    def outputs(self) -> list:
        return [self.status, self.ranking, self.table, self.chart]


def build_section() -> BatchSection:
    with gr.Accordion("Matrix and prompt-length sweep", open=False, elem_id="batch"):
        gr.Markdown(
            "**Matrix**: every usable device x precision of the checked backends, one after another, "
            "with perplexity where the runtime has logits, ranked (fastest, smallest, most faithful) "
            "with a recommendation for your targets. **Sweep**: the checked lanes at several prompt "
            "lengths (tokens), prefill and decode tok/s at each. Both use the settings above, and "
            "take minutes; conversions that are missing are made first."
        )
        with gr.Row():
            kind = gr.Radio(list(KINDS), value="matrix", label="What to run", elem_id="batch-kind")
            lengths = gr.Textbox(DEFAULT_LENGTHS, label="Sweep: prompt lengths (tokens)", max_lines=1,
                                 elem_id="batch-lengths")
            target_ttft = gr.Number(None, label="Target: TTFT under (s)", minimum=0, elem_id="batch-ttft")
            target_decode = gr.Number(None, label="Target: at least (tok/s)", minimum=0,
                                      elem_id="batch-decode")
        with gr.Row():
            run = gr.Button("Run matrix / sweep", variant="primary", elem_id="batch-run")
            stop = gr.Button("Stop", variant="stop", elem_id="batch-stop")
        status = gr.Markdown("", elem_id="batch-status")
        ranking_text = gr.Markdown("", elem_id="batch-ranking")
        table = gr.Markdown("", elem_id="batch-table")
        chart = gr.Plot(None, label="Matrix / sweep chart", elem_id="batch-chart")
    return BatchSection(kind, lengths, target_ttft, target_decode, run, stop, status, ranking_text, table,
                        chart)


class BatchView:
    """The section's handlers; ``controller`` gives the options, the probe rows and the history."""

    def __init__(self, controller: Any) -> None:
        self.controller = controller
        self._running: dict[str, Comparison] = {}  # session hash -> its matrix or sweep
        self._lock = threading.Lock()

    def run(self, request: gr.Request, kind: str, lengths: str, target_ttft: float | None,
            target_decode: float | None, token: object, *values: Any) -> Iterator[tuple]:
        """Plan, run and report; every problem of the user's is a line in the status."""
        section_outputs = ("", "", None)
        try:
            prepared = self._prepare(kind, lengths, values)
        except USER_ERRORS as exc:
            yield (f"**Cannot run:** {exc}", *section_outputs)
            return
        comparison, tracker, prompts = prepared.comparison, prepared.tracker, prepared.prompts
        lines = list(prepared.notes)
        yield (_status(lines, running=True), *section_outputs)
        key = request.session_hash or ""
        with self._lock:
            self._running[key] = comparison
        started = time.time()
        failure = ""
        states: dict[str, Any] = {}  # a sweep's lane -> the state last reported
        try:
            for event in comparison.events():
                line = tracker.observe(event) if tracker else _sweep_line(event, states)
                if line:
                    lines.append(line)
                    yield (_status(lines, running=True), *section_outputs)
        except USER_ERRORS as exc:
            failure = f"**Cannot run:** {exc}"
        except Exception as exc:  # an engine bug: say so, keep the page usable
            log.exception("the matrix / sweep failed")
            failure = f"**The {kind} failed:** {type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                self._running.pop(key, None)
        records = comparison.records
        if records:
            self.controller.history.save(request, token, records, started, comparison.request)
        if failure:
            lines.append(failure)
        yield (_status(lines, running=False), *self._report(kind, records, prompts, comparison.model.name,
                                                            target_ttft, target_decode))

    def _prepare(self, kind: str, lengths: str, values: tuple) -> _Prepared:
        controller = self.controller
        if kind not in KINDS:
            raise SettingsError(f"Choose one of {', '.join(KINDS)}.")
        policy = controller.options.policy
        policy.check_batch("matrix" if kind == "matrix" else "prompt-length sweep")
        names = list(controller.page.form)
        count = len(names)
        params = from_widgets(dict(zip(names, values[:count], strict=True)))
        specs = specs_from_inputs(controller.rows, list(values[count:]))
        if not specs:
            raise SettingsError("Check at least one backend above.")
        if kind == "matrix":
            specs = list(dict.fromkeys(BackendSpec(spec.backend) for spec in specs))
        model_name = params.model.strip() or controller.options.model
        request = params.to_request(specs, page_attached=True)
        model, request.allow_local_paths = policy.admit(model_name, specs)
        request.model = model_name
        tracker = prompts = None
        if kind == "matrix":
            request.quality = True  # "most faithful" needs a measure on every runtime with logits
            made = matrix.prepare(request, model, probe_all(), matrix.owner_history(model.name))
            tracker = matrix.MatrixProgress(made)
            notes = [f"matrix: left out {note}" for note in made.skipped] + [made.summary()]
        else:
            prompts, skipped = sweep.build_prompts(model.path, sweep.parse_lengths(lengths),
                                                   request.system_prompt, request.settings.max_new_tokens,
                                                   model.context_length)
            if not prompts:
                raise SettingsError("No sweep length fits this model: " + "; ".join(skipped))
            request.prompts = [p.prompt for p in prompts]
            notes = [f"sweep: left out {note}" for note in skipped]
            notes.append(f"sweep: {len(prompts)} length(s) of "
                         + ", ".join(f"{p.tokens:,}" for p in prompts) + " tokens")
        policy.check_work(request)
        comparison = Comparison(request, model=model)
        controller.pool.retain_only(set())  # the page's idle loaded workers: memory the lanes need
        return _Prepared(comparison, notes, tracker, prompts)

    def _report(self, kind: str, records: list[RunRecord], prompts: list | None, model: str,
                target_ttft: float | None, target_decode: float | None) -> tuple:
        if not records:
            return "", "", None
        if prompts is not None:
            rows = sweep.sweep_rows(records, prompts)
            return ("", _code(sweep.format_sweep(rows)),
                    sweep.sweep_figure(rows, f"prompt-length sweep, {model}"))
        lanes = ranking.lane_figures(records)
        lines = ranking.ranking_lines(lanes) if len(lanes) > 1 else []
        if lanes and (target_ttft or target_decode):
            lines.append(ranking.recommend(lanes, target_ttft or None, target_decode or None))
        figure = ranking.tradeoff_figure(lanes, f"{model}: speed, memory, quality") if lanes else None
        return "\n".join(f"- {line}" for line in lines), _code(format_table(records)), figure

    def stop(self, request: gr.Request) -> str:
        with self._lock:
            comparison = self._running.get(request.session_hash or "")
        if comparison is None:
            return "No matrix or sweep of yours is running."
        comparison.stop()
        return "Stopping: the lane that runs ends its run, no further lane starts."

    def wire(self, section: BatchSection, inputs: list) -> None:
        section.run.click(
            lambda: "Starting… (when another comparison is running on this machine, this waits its turn)",
            outputs=[section.status], queue=False, api_visibility="private", **progress_on(section.status),
        ).then(
            self.run, inputs=[*section.inputs(), *inputs], outputs=section.outputs(), concurrency_limit=1,
            concurrency_id="engine", api_visibility="private", **progress_on(section.status),
        )
        section.stop.click(self.stop, outputs=[section.status], queue=False, api_visibility="private",
                           **progress_on(section.status))


@dataclass
class _Prepared:
    comparison: Comparison
    notes: list[str]
    tracker: matrix.MatrixProgress | None  # the matrix's lanes; None for a sweep
    prompts: list[sweep.SweepPrompt] | None  # the sweep's; None for a matrix


def _sweep_line(event: Any, states: dict[str, Any]) -> str | None:
    """A line when a sweep's lane moves to another state (loading, converting, generating, done)."""
    if not isinstance(event, StateEvent) or states.get(event.lane) is event.state:
        return None
    states[event.lane] = event.state
    return f"{event.lane}: {event.state.value}" + (f" ({event.message})" if event.message else "")


def _status(lines: list[str], running: bool) -> str:
    shown = lines[-PROGRESS_LINES:]
    head = "Running… (Stop ends it after the current run)\n\n" if running else "Finished.\n\n"
    return head + "\n".join(f"- {line}" for line in shown)


def _code(text: str) -> str:
    return f"```\n{text}\n```" if text else ""
