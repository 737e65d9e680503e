"""Connect the page's events to the controller's handlers, and mount the HTTP API."""

from __future__ import annotations

import gradio as gr

from playground.ui.api import backends_api, compare_api
from playground.ui.controller import Controller
from playground.ui.page import Page
from playground.ui.quiet_events import progress_on


def wire(controller: Controller, page: Page) -> None:
    """Call inside ``page.blocks``: every listener and the two API endpoints."""
    controller.attach(page)
    assert controller.frames is not None
    inputs = [*page.form_components(), page.records, page.history.token, *page.picker_components()]
    quiet = progress_on(page.status)  # the page's work per frame stays small (quiet_events.py)
    started = page.run.click(
        controller.begin, outputs=[page.run, page.stop, page.status],
        queue=False, api_visibility="private", **quiet,
    )
    started.then(
        controller.run_stream, inputs=inputs, outputs=controller.frames.outputs(), concurrency_limit=1,
        concurrency_id="engine", api_visibility="private", **quiet,
    ).then(
        controller.finish, outputs=[page.run, page.stop, *page.chart_components()],
        api_visibility="private", concurrency_limit=None, **quiet,
    )
    page.stop.click(controller.stop, outputs=[page.status], queue=False, api_visibility="private", **quiet)
    page.clear.click(controller.clear, outputs=[page.records, page.table, page.quality, page.csv, page.json],
                     queue=False, api_visibility="private", **quiet)
    prompt_set = page.form["prompt_set"]  # its prompts run instead of the prompt box: it clears the box
    prompt_set.change(controller.prompt_set_chosen, inputs=[prompt_set], outputs=[page.form["prompt"]],
                      queue=False, api_visibility="private", show_progress="hidden")
    reference = page.form["reference"]
    for component in page.picker_components():  # the reference choices follow the selection
        component.change(controller.reference_options, inputs=[*page.picker_components(), reference],
                         outputs=[reference], queue=False, api_visibility="private", show_progress="hidden")
    controller.history.wire(page.history, page.blocks)
    controller.batch.wire(page.batch, [page.history.token, *page.form_components(),
                                       *page.picker_components()])
    page.blocks.unload(controller.close_session)
    gr.api(compare_api(controller), api_name="compare", concurrency_limit=1, concurrency_id="engine")
    gr.api(backends_api(controller), api_name="backends", concurrency_limit=None)
