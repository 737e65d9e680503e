"""gradio is imported without its per-import stub rewrite (``playground.gradio_fast_import``), and
still builds and serves components: the page tests drive the app built on it."""

from __future__ import annotations

import sys

from playground.gradio_fast_import import TARGET_FUNCTION, TARGET_MODULE, skip_stub_regeneration


def test_gradio_loads_with_the_stub_rewrite_replaced() -> None:
    import gradio as gr

    module = sys.modules[TARGET_MODULE]
    assert getattr(module, TARGET_FUNCTION).__name__ == "_no_stub_regeneration"
    box = gr.Textbox(label="still a component")  # the metaclass that called it still works
    assert box.label == "still a component" and hasattr(gr.Textbox, "change")
    assert skip_stub_regeneration() is False  # gradio is loaded: too late, and it says so
