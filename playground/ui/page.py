"""The page's layout: components only. ``wiring.py`` connects them to the handlers."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from playground.engine import parameters, prompt_sets
from playground.engine.policy import MAX_LANES
from playground.models.catalog import SMOLLM2, model_ids
from playground.ui import charts as chart_specs
from playground.ui.backend_picker import BackendRow
from playground.ui.batch_view import BatchSection
from playground.ui.batch_view import build_section as build_batch_section
from playground.ui.charts import ChartInput, ChartSpec
from playground.ui.form import Form, reference_choices, widget
from playground.ui.history_view import HistorySection, build_section
from playground.ui.options import AppOptions
from playground.ui.results import HEADERS

MAX_PANELS = MAX_LANES  # one panel per lane the policy allows

# For a real chat model (SmolLM2 and up): short questions with checkable answers.
CHAT_EXAMPLES = [
    "What is the capital of France?",
    "Give me three tips for staying focused while studying.",
    "Write a Python function that reverses a string.",
    "Explain in two sentences why the sky is blue.",
]
# The demo model learnt Python's reference manual and stdlib docs as Q&A: ask it that kind of thing.
DEMO_EXAMPLES = [
    "What is the for statement?",
    "Explain the json module.",
    "How does the with statement work?",
    "Tell me about the pathlib module.",
]

CSS = """
.lane-panel { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px; }
.lane-panel textarea { font-family: var(--font-mono); font-size: 13px; }
#run-status { min-height: 1.5em; }
.backend-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px; }
.state-badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-weight: 600;
               font-size: 12px; color: #fff; background: #6b7280; margin-right: 4px; }
.state-generating { background: #2563eb; } .state-done { background: #16a34a; }
.state-error { background: #dc2626; } .state-stopped { background: #d97706; }
.state-loading, .state-converting, .state-starting { background: #7c3aed; }
.backend-note { font-size: 12px; color: var(--body-text-color-subdued); }
.state-flagged { background: #dc2626; }
.agreement-warning { display: inline-block; padding: 2px 8px; border-radius: 6px; font-weight: 600;
                     background: #fef3c7; color: #92400e; border: 1px solid #d97706; }
/* a finished run's phases on one time axis (ui/phases.py) */
.phase-timeline { display: flex; width: 100%; height: 18px; margin: 2px 0; border-radius: 4px;
                  overflow: hidden; font-size: 11px; line-height: 18px; }
.phase-timeline .phase { flex: none; overflow: hidden; white-space: nowrap; text-overflow: ellipsis;
                         box-sizing: border-box; padding: 0 3px; color: #fff; }
.phase, .phase-key { background: #6b7280; } .phase-convert { background: #7c3aed; }
.phase-load { background: #0891b2; } .phase-prefill { background: #d97706; }
.phase-decode { background: #2563eb; }
.phase-timeline .phase-cached { background-image: repeating-linear-gradient(
    45deg, rgba(255, 255, 255, 0.35) 0 3px, transparent 3px 6px); }
.phase-legend { font-size: 12px; color: var(--body-text-color-subdued); }
.phase-key { display: inline-block; width: 9px; height: 9px; border-radius: 2px; margin-right: 3px; }
"""


@dataclass
class Panel:
    """One lane's panel on the page (a lane is the engine's run of one backend spec): shown when
    a run has that many lanes."""

    column: gr.Column
    header: gr.Markdown
    text: gr.Textbox
    metrics: gr.Markdown


@dataclass
class PickerRow:
    row: BackendRow
    selected: gr.Checkbox
    device: gr.Dropdown
    precision: gr.Dropdown


@dataclass
class ChartSlot:
    """One declared chart (``charts.CHARTS``) on the page: its plot and the note under it."""

    spec: ChartSpec
    plot: gr.Plot
    note: gr.Markdown | None = None

    def components(self) -> list[gr.components.Component]:
        return [self.plot] if self.note is None else [self.plot, self.note]


@dataclass
class Page:
    blocks: gr.Blocks
    form: Form  # run parameter name -> its widget (``ui/form.py``)
    picker: list[PickerRow]
    panels: list[Panel]
    charts: list[ChartSlot]
    status: gr.Markdown
    run: gr.Button
    stop: gr.Button
    clear: gr.Button
    table: gr.Dataframe
    quality: gr.Markdown  # each lane's answer quality over a comparison's prompts (ui/results.py)
    records: gr.State
    csv: gr.DownloadButton
    json: gr.DownloadButton
    history: HistorySection
    batch: BatchSection

    def form_components(self) -> list[gr.components.Component]:
        """The run parameters' widgets, in ``form`` order (the handler zips them back by name)."""
        return list(self.form.values())

    def picker_components(self) -> list[gr.components.Component]:
        return [c for p in self.picker for c in (p.selected, p.device, p.precision)]

    def panel_components(self) -> list[gr.components.Component]:
        return [c for p in self.panels for c in (p.column, p.header, p.text, p.metrics)]

    def chart_components(self) -> list[gr.components.Component]:
        return [c for chart in self.charts for c in chart.components()]


GRADIO_CACHE_CLEANUP = (15 * 60, 24 * 3600)  # (every, older than) seconds


def build_layout(options: AppOptions, rows: list[BackendRow], machine: str) -> Page:
    """Components only; ``wiring.wire`` attaches the handlers."""
    form: Form = {}
    # gradio serves a download from its own cache copy: those copies go after a day (checked every
    # 15 minutes) and all at a restart, like the export folders the janitor prunes
    with gr.Blocks(title="AI PC LLM playground", delete_cache=GRADIO_CACHE_CLEANUP) as blocks:
        gr.Markdown(
            "# AI PC LLM playground\n"
            "One prompt, several inference runtimes side by side: streamed text, time to first token, "
            f"tokens/s and what the machine does meanwhile. {machine}"
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=360):
                form["prompt"] = widget("prompt", lines=4, max_lines=12,
                                        placeholder="Ask something, or pick an example below")
                gr.Examples(CHAT_EXAMPLES, inputs=[form["prompt"]],
                            label="Example prompts (chat model: smollm2)")
                gr.Examples(DEMO_EXAMPLES, inputs=[form["prompt"]],
                            label="Example prompts (demo model: Python docs)")
                form["system_prompt"] = widget("system_prompt", lines=1, max_lines=4)
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="run-button")
                    stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="stop-button")
                status = gr.Markdown("Ready.", elem_id="run-status")
            with gr.Column(scale=2, min_width=360):
                model_note = options.policy.model_hint()
                if not SMOLLM2.is_ready():
                    model_note += f"; smollm2 is not set up here: {SMOLLM2.setup_hint}"
                models = list(dict.fromkeys([options.model, *model_ids(), *options.launch_models]))
                form["model"] = widget("model", choices=models, value=options.model, allow_custom_value=True,
                                       info=model_note)
                form["mode"] = widget("mode")
                selected = [row.spec(row.device, row.precision) for row in rows if row.selected]
                form["reference"] = widget(
                    "reference", choices=reference_choices(selected, {row.name: row.label for row in rows}))
                form["prompt_set"] = widget("prompt_set", choices=prompt_sets.choices())
                form["max_new_tokens"] = widget("max_new_tokens")
                with gr.Row():
                    form["decoding"] = widget("decoding")
                    form["stop_at_eos"] = widget("stop_at_eos")
                with gr.Accordion("More settings", open=False, elem_id="more-settings"):
                    with gr.Row():
                        form["temperature"] = widget("temperature")
                        form["top_p"] = widget("top_p")
                    with gr.Row():
                        form["seed"] = widget("seed")
                        form["warmup"] = widget("warmup")
                        form["runs"] = widget("runs")
                    for name in parameters.names("page"):  # one without a place of its own lands here
                        if name not in form:
                            form[name] = widget(name)
        gr.Markdown("### Backends\nEach on its own device and precision; what cannot run here says why.")
        with gr.Row(equal_height=True, elem_id="backend-picker"):
            picker = [_picker_card(row) for row in rows]
        with gr.Row(equal_height=False, elem_id="panels"):
            panels = [_panel(index) for index in range(MAX_PANELS)]
        with gr.Row(equal_height=False):
            charts = [_chart(spec) for spec in chart_specs.CHARTS]
        gr.Markdown("### Results (this session)")
        table = gr.Dataframe(headers=HEADERS, value=None, interactive=False, wrap=True,
                             elem_id="results-table", column_count=len(HEADERS))
        quality = gr.Markdown("", elem_id="prompt-quality")
        with gr.Row():
            csv = gr.DownloadButton("Download CSV", interactive=False, elem_id="download-csv")
            json = gr.DownloadButton("Download JSON", interactive=False, elem_id="download-json")
            clear = gr.Button("Clear table", elem_id="clear-table")
        records = gr.State([])
        batch = build_batch_section()
        history = build_section()
    return Page(blocks=blocks, form=form, picker=picker, panels=panels, charts=charts, status=status, run=run,
                stop=stop, clear=clear, table=table, quality=quality, records=records, csv=csv, json=json,
                history=history, batch=batch)


def _chart(spec: ChartSpec) -> ChartSlot:
    with gr.Column(min_width=360):
        plot = gr.Plot(spec.figure(ChartInput()), label=spec.label, elem_id=spec.elem_id)
        note = gr.Markdown("", elem_id=spec.note_elem_id or None) if spec.note is not None else None
    return ChartSlot(spec, plot, note)


def _picker_card(row: BackendRow) -> PickerRow:
    with gr.Column(min_width=210, elem_id=f"pick-{row.name}", elem_classes=["backend-card"]):
        selected = gr.Checkbox(row.selected, label=row.label, interactive=row.usable,
                               elem_classes=["backend-check"])
        device = gr.Dropdown(row.device_choices, value=row.device or None, label="Device",
                             interactive=row.usable)
        precision = gr.Dropdown(row.precisions, value=row.precision or None, label="Precision",
                                interactive=row.usable)
        gr.Markdown(row.note, elem_classes=["backend-note"])
    return PickerRow(row, selected, device, precision)


def _panel(index: int) -> Panel:
    with gr.Column(visible=False, min_width=300, elem_id=f"lane-{index}",
                   elem_classes=["lane-panel"]) as column:
        header = gr.Markdown("", elem_classes=["lane-header"])
        text = gr.Textbox("", lines=14, max_lines=14, show_label=False, interactive=False,
                          autoscroll=True, elem_classes=["lane-text"])
        metrics = gr.Markdown("", elem_classes=["lane-metrics"])
    return Panel(column, header, text, metrics)
