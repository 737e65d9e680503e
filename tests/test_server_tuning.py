"""What keeps gradio from redoing work on every streamed frame (fast, no browser, no model).

- ``server_tuning.skip_unchanged_outputs``: a frame names only what changed; gradio filled every
  other output with ``gr.skip()`` and rebuilt that component and its config anyway (about half the
  app's CPU while a backend was timed). The outputs must come out exactly as gradio's own path
  makes them, and the skipped components must be left alone.
- ``quiet_events.progress_on``: the page's events that show no progress track one component, since
  the browser re-renders every tracked component's loading status on every message.
"""

from __future__ import annotations

import asyncio

import gradio as gr
import pandas as pd
from gradio.state_holder import SessionState
from test_page_structure import build

from playground.ui.server_tuning import is_skip, skip_unchanged_outputs


def blocks_with_outputs():
    with gr.Blocks() as blocks:
        text, note, table = gr.Textbox("a"), gr.Markdown("b"), gr.Dataframe([[1, 2]], headers=["x", "y"])
        text.change(lambda value: value, inputs=[text], outputs=[text, note, table])
    return blocks, next(iter(blocks.fns.values())), (text, note, table)


def postprocess(blocks, block_fn, predictions, patched: bool):
    """One frame through ``postprocess_data``; returns its outputs and what the session holds."""
    if patched:
        skip_unchanged_outputs(blocks)
    state = SessionState(blocks)
    held = {block._id: state[block._id] for block in block_fn.outputs}
    out = asyncio.run(blocks.postprocess_data(block_fn, predictions, state))
    rebuilt = [block._id for block in block_fn.outputs if state[block._id] is not held[block._id]]
    return out, rebuilt


def test_a_frame_with_some_outputs_comes_out_as_gradio_makes_it_without_rebuilding_the_others() -> None:
    for frame_of in (lambda c: {c[0]: "new text"},                      # one output named
                     lambda c: {c[2]: [[3, 4]]},                         # one, and its value a list
                     lambda c: {c[0]: "t", c[1]: "**m**"},               # several
                     lambda c: {c[0]: gr.skip(), c[1]: "m"},             # an explicit skip
                     lambda c: {c[2]: pd.DataFrame({"x": [7], "y": [8]})}):  # compares elementwise
        blocks, block_fn, components = blocks_with_outputs()
        original, rebuilt_by_gradio = postprocess(blocks, block_fn, frame_of(components), patched=False)
        blocks, block_fn, components = blocks_with_outputs()
        ours, rebuilt = postprocess(blocks, block_fn, frame_of(components), patched=True)
        assert ours == original
        assert rebuilt == [] and len(rebuilt_by_gradio) >= 1  # gradio rebuilt each skipped output
        named = [value for value in frame_of(components).values() if not is_skip(value)]
        assert sum(map(is_skip, ours)) == 3 - len(named)


def test_other_return_shapes_take_gradios_own_path() -> None:
    for predictions in (["x", "y", [[5, 6]]], gr.skip()):
        blocks, block_fn, _ = blocks_with_outputs()
        original, _ = postprocess(blocks, block_fn, predictions, patched=False)
        blocks, block_fn, _ = blocks_with_outputs()
        ours, _ = postprocess(blocks, block_fn, predictions, patched=True)
        assert ours == original


def test_every_event_that_shows_no_progress_tracks_one_component() -> None:
    page, _ = build()
    quiet = [fn for fn in page.blocks.fns.values() if fn.show_progress == "hidden"]
    assert len(quiet) >= 5
    for fn in quiet:  # tracked: the progress targets, else every output (gradio's default)
        assert len(fn.show_progress_on or fn.outputs) <= 1, fn.name
    run_stream = next(fn for fn in quiet if fn.name == "run_stream")
    assert len(run_stream.outputs) > 20 and run_stream.show_progress_on == [page.status]
