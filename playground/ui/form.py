"""The page's run inputs, derived from ``RunParameters``: one widget per field (bounds, default,
label and info come from the field), and the page's values back into validated parameters.

The page keeps its inputs as one mapping, field name -> component (``Form``), so nothing is
coupled by position; the layout only decides where each widget goes.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from playground.engine import parameters
from playground.engine.parameters import RunParameters
from playground.engine.records import BackendSpec
from playground.engine.reference import AUTO

AUTO_LABEL = "auto (highest precision)"
Form = dict[str, gr.components.Component]  # field name -> its widget


def widget(name: str, **overrides: Any) -> gr.components.Component:
    """The gradio component of one run parameter; ``overrides`` are layout details (lines,
    placeholder) or what only the page knows (the model and reference choices)."""
    field, meta = parameters.fields()[name], parameters.meta(name)
    low, high = parameters.bounds(name)
    common = {"label": meta["label"], "elem_id": meta.get("elem_id")}
    if meta.get("info"):
        common["info"] = meta["info"]
    common.update(overrides)
    value = common.pop("value", field.default)
    kind = meta.get("widget")
    if kind == "slider":
        return gr.Slider(low, high, value=value, step=meta.get("step"), **common)
    if kind == "number":
        return gr.Number(value, precision=0 if field.annotation is int else None, minimum=low, maximum=high,
                         **common)
    if kind == "checkbox":
        return gr.Checkbox(value, **common)
    if kind == "radio":
        return gr.Radio(meta["choices"], value=value, **common)
    if kind == "dropdown":
        return gr.Dropdown(value=value, **common)
    if kind == "textbox":
        return gr.Textbox(value, **common)
    raise ValueError(f"run parameter {name!r} has no page widget ({kind!r})")


def from_widgets(values: dict[str, Any], **more: Any) -> RunParameters:
    """The page's values (``values``: field name -> widget value) as validated parameters.
    Widgets hand numbers over as floats (a slider's 128.0) and a cleared box as None: a whole
    float of an integer field is that integer and a cleared text is ""; anything else is left
    for the strict model to refuse (1.5 tokens, NaN)."""
    decoded: dict[str, Any] = {}
    for name, value in {**values, **more}.items():
        annotation = parameters.fields()[name].annotation
        if annotation is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        elif annotation is str and value is None:
            value = ""
        decoded[name] = value
    return parameters.RunParameters.parse(decoded)  # looked up now: a test may declare more fields


def reference_choices(specs: list[BackendSpec], labels: dict[str, str]) -> list[tuple[str, str]]:
    """The page's "compare answers against" options: auto, then each selected lane
    (``labels``: backend name -> what the page calls it)."""
    choices = [(AUTO_LABEL, AUTO)]
    for spec in specs:
        detail = " ".join(filter(None, [spec.device, spec.precision]))
        shown = f"{labels.get(spec.backend, spec.backend)} {detail}".strip()
        choices.append((shown, ":".join([spec.backend, spec.device, spec.precision]).rstrip(":")))
    return choices
