"""The web UI: a thin gradio page over the comparison engine (``build_app``)."""

from __future__ import annotations

import os

from playground.gradio_fast_import import skip_stub_regeneration

skip_stub_regeneration()  # before gradio's first import: halves the app's start-up (see its module)

import gradio as gr  # noqa: E402
import psutil  # noqa: E402

from playground.backends.base import BackendProbe  # noqa: E402
from playground.engine.quotas import ClientQuota  # noqa: E402
from playground.ui.backend_picker import build_rows  # noqa: E402
from playground.ui.controller import Controller  # noqa: E402
from playground.ui.monitoring import RunMonitor  # noqa: E402
from playground.ui.options import AppOptions  # noqa: E402
from playground.ui.page import CSS, build_layout  # noqa: E402
from playground.ui.server_tuning import skip_unchanged_outputs  # noqa: E402
from playground.ui.wiring import wire  # noqa: E402

__all__ = ["CSS", "AppOptions", "build_app"]


def machine_summary(probes: dict[str, BackendProbe]) -> str:
    usable = sum(probe.usable for probe in probes.values())
    memory_gb = psutil.virtual_memory().total / 2**30
    return (f"This machine: {os.cpu_count()} CPU threads, {memory_gb:.0f} GB RAM; "
            f"{usable} of {len(probes)} backends usable here.")


def build_app(options: AppOptions, probes: dict[str, BackendProbe],
              quota: ClientQuota | None = None) -> gr.Blocks:
    """``quota``: the per-client limits, shared with the app's request guard (None: none)."""
    rows = build_rows(probes, options.backends, options.policy.max_lanes)
    page = build_layout(options, rows, machine_summary(probes))
    controller = Controller(options, rows, RunMonitor(), quota)
    with page.blocks:
        wire(controller, page)
    page.blocks.queue(default_concurrency_limit=1, max_size=options.max_queue)  # bounded: refused past it
    skip_unchanged_outputs(page.blocks)  # a frame's unchanged outputs cost nothing (server_tuning.py)
    return page.blocks
