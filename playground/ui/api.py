"""The HTTP API (``/compare``, ``/backends``) for ``gradio_client``: the page's engine path.

``/compare``'s signature is derived from ``RunParameters`` (names, types, defaults), so the API
cannot drift from the page and the CLI; its values are validated by the same strict model.
It is a coroutine that drives the comparison in a thread: when the caller cancels the call (or
gradio drops it), the await is cancelled and so is the comparison, which frees its workers, rather
than a thread gradio no longer watches running it to the end beside the next caller's.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import gradio as gr

from playground.engine import parameters
from playground.engine.records import parse_backend_specs
from playground.ui.controller import USER_ERRORS, Controller

CALLER_CHECK_S = 0.25  # how often a running /compare asks whether its caller is still there


def compare_signature() -> inspect.Signature:
    """``compare(prompt, backends="", model="", max_new_tokens=128, ...) -> dict``, from the model."""
    params = []
    for name in parameters.names("api"):
        field = parameters.fields()[name]
        required = parameters.meta(name).get("api_required", False)
        params.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        default=inspect.Parameter.empty if required else field.default,
                                        annotation=field.annotation))
    return inspect.Signature(params, return_annotation=dict)


def with_request(signature: inspect.Signature) -> inspect.Signature:
    """``signature`` plus a ``request: gr.Request``, which gradio fills itself (it is no API
    input): who asks, for the per-client quotas."""
    request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                annotation=gr.Request)
    return signature.replace(parameters=[*signature.parameters.values(), request])


def _doc() -> str:
    lines = ["Run one comparison to the end; returns {ok, error, records} (one RunRecord per backend and "
             "run, with its answer agreement against the ``reference`` lane).", "", "Parameters:"]
    for name in parameters.names("api"):
        low, high = parameters.bounds(name)
        limits = f" [{low}-{high}]" if low is not None or high is not None else ""
        lines.append(f"    {name}: {parameters.fields()[name].description}{limits}")
    return "\n".join(lines)


def compare_api(controller: Controller) -> Callable[..., Awaitable[dict]]:
    signature = with_request(compare_signature())

    async def compare(*args: Any, **kwargs: Any) -> dict:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:  # an unknown or missing parameter
            return {"ok": False, "error": str(exc), "records": []}
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        request = arguments.pop("request", None)
        client = controller.client(request)
        try:
            params = parameters.RunParameters.parse(arguments)
            specs = (parse_backend_specs(params.backends) if params.backends.strip()
                     else controller.default_specs())
            # may resolve (even download) a model: off the event loop
            run = await asyncio.to_thread(controller.start, params, specs, False, client)
        except (*USER_ERRORS, ValueError) as exc:
            return {"ok": False, "error": str(exc), "records": []}
        controller.monitor.run_started()
        session = getattr(request, "session_hash", None)
        try:
            records = await until_caller_leaves(asyncio.to_thread(run.run_to_end),
                                                lambda: controller.caller_gone(session, "compare"))
        except asyncio.CancelledError:  # the caller cancelled or went away: free the machine now
            run.comparison.cancel(wait=False)
            raise
        except USER_ERRORS as exc:  # e.g. MachineBusy: another comparison still holds the machine
            return {"ok": False, "error": str(exc), "records": []}
        finally:
            controller.monitor.run_ended()
        return {"ok": all(r.ok for r in records) and bool(records), "error": "",
                "records": [r.to_dict() for r in records]}

    compare.__signature__ = signature  # type: ignore[attr-defined]
    compare.__annotations__ = {**{p.name: p.annotation for p in signature.parameters.values()},
                               "return": dict}
    compare.__doc__ = _doc()
    return compare


async def until_caller_leaves(work: Awaitable[Any], gone: Callable[[], bool]) -> Any:
    """``await work``, cancelled (CancelledError) once ``gone()``: a caller whose stream just
    dropped is seen only as gradio's not-``alive`` mark on its job, never as a cancellation."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=CALLER_CHECK_S)
            if done:
                return task.result()
            if gone():
                raise asyncio.CancelledError("the caller went away")
    except asyncio.CancelledError:
        task.cancel()
        raise


def backends_api(controller: Controller) -> Callable[[], list]:
    rows = controller.rows

    def backends() -> list:
        """What the start-up probe found: every backend, whether it can run here, its devices
        (value, label) and precisions, the page's default choice, and why not when it cannot."""
        return [{"name": r.name, "label": r.label, "usable": r.usable, "note": r.note,
                 "devices": [value for _, value in r.device_choices],
                 "available_devices": r.available_devices, "precisions": r.precisions, "device": r.device,
                 "precision": r.precision, "selected": r.selected} for r in rows]

    return backends
