"""The page: layout and event wiring. Handlers live in ``controller.py``."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from playground.models.catalog import SMOLLM2, model_ids
from playground.models.chat import DEFAULT_SYSTEM_PROMPT
from playground.settings import MAX_NEW_TOKENS_LIMIT
from playground.ui.backend_picker import BackendRow
from playground.ui.charts import tokens_figure, utilization_figure
from playground.ui.form import AUTO, DECODING_CHOICES, MODE_CHOICES, reference_choices
from playground.ui.options import AppOptions
from playground.ui.results import HEADERS

MAX_PANELS = 6

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
"""


@dataclass
class Slot:
    """One backend panel: shown when a run uses it."""

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
class Form:
    """The run's inputs, in the order ``RunForm`` takes them."""

    prompt: gr.Textbox
    system_prompt: gr.Textbox
    model: gr.Dropdown
    max_new_tokens: gr.Slider
    decoding: gr.Radio
    temperature: gr.Slider
    top_p: gr.Slider
    seed: gr.Number
    stop_at_eos: gr.Checkbox
    mode: gr.Radio
    warmup: gr.Number
    runs: gr.Number
    reference: gr.Dropdown

    def components(self) -> list[gr.components.Component]:
        return list(vars(self).values())


@dataclass
class Page:
    blocks: gr.Blocks
    form: Form
    picker: list[PickerRow]
    slots: list[Slot]
    status: gr.Markdown
    run: gr.Button
    stop: gr.Button
    clear: gr.Button
    tokens_plot: gr.Plot
    util_plot: gr.Plot
    util_note: gr.Markdown
    table: gr.Dataframe
    records: gr.State
    csv: gr.DownloadButton
    json: gr.DownloadButton

    def picker_components(self) -> list[gr.components.Component]:
        return [c for p in self.picker for c in (p.selected, p.device, p.precision)]

    def slot_components(self) -> list[gr.components.Component]:
        return [c for s in self.slots for c in (s.column, s.header, s.text, s.metrics)]


def build_layout(options: AppOptions, rows: list[BackendRow], machine: str) -> Page:
    """Components only; ``controller.wire`` attaches the handlers."""
    with gr.Blocks(title="AI PC LLM playground") as blocks:
        gr.Markdown(
            "# AI PC LLM playground\n"
            "One prompt, several inference runtimes side by side: streamed text, time to first token, "
            f"tokens/s and what the machine does meanwhile. {machine}"
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=360):
                prompt = gr.Textbox(label="Prompt", lines=4, max_lines=12, elem_id="prompt",
                                    placeholder="Ask something, or pick an example below")
                gr.Examples(CHAT_EXAMPLES, inputs=[prompt], label="Example prompts (chat model: smollm2)")
                gr.Examples(DEMO_EXAMPLES, inputs=[prompt], label="Example prompts (demo model: Python docs)")
                system_prompt = gr.Textbox(DEFAULT_SYSTEM_PROMPT, label="System prompt (optional)",
                                           lines=1, max_lines=4, elem_id="system-prompt")
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="run-button")
                    stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="stop-button")
                status = gr.Markdown("Ready.", elem_id="run-status")
            with gr.Column(scale=2, min_width=360):
                model_note = ("smollm2, demo, a Hugging Face hub id, or a local model folder"
                              if not options.untrusted else
                              "smollm2, demo or a hub id" + (" (downloads allowed)" if options.allow_downloads
                                                             else " already on this machine"))
                if not SMOLLM2.is_ready():
                    model_note += f"; smollm2 is not set up here: {SMOLLM2.setup_hint}"
                model = gr.Dropdown(
                    choices=list(dict.fromkeys([options.model, *model_ids(), *options.launch_models])),
                    value=options.model, allow_custom_value=True, label="Model", info=model_note,
                    elem_id="model",
                )
                mode = gr.Radio(MODE_CHOICES, value="sequential", label="Mode", elem_id="mode")
                selected = [row.spec(row.device, row.precision) for row in rows if row.selected]
                reference = gr.Dropdown(
                    reference_choices(selected, {row.name: row.label for row in rows}), value=AUTO,
                    label="Compare answers against", elem_id="reference",
                    info="every answer's token agreement and text similarity with this lane's",
                )
                max_new_tokens = gr.Slider(1, MAX_NEW_TOKENS_LIMIT, value=128, step=1,
                                           label="Max new tokens", elem_id="max-new-tokens")
                with gr.Row():
                    decoding = gr.Radio(DECODING_CHOICES, value="greedy", label="Decoding",
                                        elem_id="decoding")
                    stop_at_eos = gr.Checkbox(True, label="Stop at end of sequence",
                                              info="off: always generate max new tokens",
                                              elem_id="stop-at-eos")
                with gr.Accordion("More settings", open=False, elem_id="more-settings"):
                    with gr.Row():
                        temperature = gr.Slider(0.01, 2.0, value=0.7, step=0.01, label="Temperature",
                                                info="sampling only")
                        top_p = gr.Slider(0.01, 1.0, value=0.9, step=0.01, label="Top-p",
                                          info="sampling only")
                    with gr.Row():
                        seed = gr.Number(0, precision=0, label="Seed", minimum=0)
                        warmup = gr.Number(0, precision=0, label="Warm-up runs", minimum=0, maximum=10,
                                           elem_id="warmup",
                                           info="not recorded; 1 steadies the numbers")
                        runs = gr.Number(1, precision=0, label="Measured runs", minimum=1, maximum=100,
                                         elem_id="runs")
        gr.Markdown("### Backends\nEach on its own device and precision; what cannot run here says why.")
        with gr.Row(equal_height=True, elem_id="backend-picker"):
            picker = [_picker_card(row) for row in rows]
        with gr.Row(equal_height=False, elem_id="panels"):
            slots = [_slot(index) for index in range(MAX_PANELS)]
        with gr.Row(equal_height=False):
            tokens_plot = gr.Plot(tokens_figure([]), label="Tokens/s", elem_id="tokens-chart",
                                  min_width=360)
            with gr.Column(min_width=360):
                util_plot = gr.Plot(utilization_figure([], 0.0), label="Utilization",
                                    elem_id="util-chart")
                util_note = gr.Markdown("", elem_id="util-note")
        gr.Markdown("### Results (this session)")
        table = gr.Dataframe(headers=HEADERS, value=None, interactive=False, wrap=True,
                             elem_id="results-table", column_count=len(HEADERS))
        with gr.Row():
            csv = gr.DownloadButton("Download CSV", interactive=False, elem_id="download-csv")
            json = gr.DownloadButton("Download JSON", interactive=False, elem_id="download-json")
            clear = gr.Button("Clear table", elem_id="clear-table")
        records = gr.State([])
    form = Form(prompt, system_prompt, model, max_new_tokens, decoding, temperature, top_p, seed,
                stop_at_eos, mode, warmup, runs, reference)
    return Page(blocks, form, picker, slots, status, run, stop, clear, tokens_plot, util_plot,
                util_note, table, records, csv, json)


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


def _slot(index: int) -> Slot:
    with gr.Column(visible=False, min_width=300, elem_id=f"lane-{index}",
                   elem_classes=["lane-panel"]) as column:
        header = gr.Markdown("", elem_classes=["lane-header"])
        text = gr.Textbox("", lines=8, max_lines=14, show_label=False, interactive=False,
                          autoscroll=True, elem_classes=["lane-text"])
        metrics = gr.Markdown("", elem_classes=["lane-metrics"])
    return Slot(column, header, text, metrics)
