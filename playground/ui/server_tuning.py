"""Keep gradio's server from working beside the backend it measures: idle polling, and rebuilding
the outputs a streamed frame leaves alone (``skip_unchanged_outputs``).

Gradio's queue loop checks for new jobs every millisecond on Linux and macOS (``sleep_when_free``,
50 ms on Windows) and its progress loop every 10 ms, even when nobody is connected: 6-7 % of a
core on the 2-core test machine while the app sat idle, and a thousand wake-ups a second beside a
backend being timed. A job waiting 20 ms longer to start costs nothing here (every comparison is
seconds long), so both loops get the Windows cadence. Measured with ``python -m
playground.bench.fidelity`` (app idle CPU, page / headless).
"""

from __future__ import annotations

import copy
import functools
import logging
from typing import Any

from gradio import skip
from gradio.blocks import Block

logger = logging.getLogger(__name__)

QUEUE_POLL_S = 0.02  # a new comparison starts at most 20 ms later than it could
PROGRESS_POLL_S = 0.1  # the page uses no gr.Progress; a tenth of a second is plenty


def quiet_queue(blocks: Any) -> bool:
    """Slow gradio's idle polling on a launched ``Blocks``; False if its queue looks different
    (a gradio upgrade renamed the attributes: the app still works, only idles less quietly)."""
    queue = getattr(blocks, "_queue", None)
    if queue is None or not hasattr(queue, "sleep_when_free"):
        logger.warning("gradio's queue has no sleep_when_free: its idle polling stays as it is")
        return False
    queue.sleep_when_free = max(queue.sleep_when_free, QUEUE_POLL_S)
    if hasattr(queue, "progress_update_sleep_when_free"):
        queue.progress_update_sleep_when_free = max(queue.progress_update_sleep_when_free, PROGRESS_POLL_S)
    return True


SKIP = skip()  # gradio's "leave this output as it is"


def is_skip(value: Any) -> bool:
    """A bare skip (a dict compared as a dict: an array or a DataFrame value compares elementwise)."""
    return isinstance(value, dict) and value == SKIP


def skip_unchanged_outputs(blocks: Any) -> bool:
    """Let gradio pass over the outputs a frame does not update, instead of rebuilding them.

    A streamed frame names only what changed (``ui/frames.py``); gradio fills every other output
    with ``gr.skip()``, and its ``postprocess_data`` treats that as a property update: it constructs
    the component anew and rebuilds its config, for each of the run's ~35 outputs on every frame.
    That was about half of the app's CPU while a backend was timed (py-spy; the app took 11.6 % of
    a core on 2 cores, now 5.5 %; transformers on the demo model). Here those outputs leave
    gradio's hands as the bare skip they would have become anyway, and only the updated ones are
    processed. False (and the app works as before) if gradio's method is not there."""
    original = getattr(blocks, "postprocess_data", None)
    if original is None:
        logger.warning("gradio's Blocks has no postprocess_data: every output is processed each frame")
        return False

    @functools.wraps(original)
    async def postprocess_data(block_fn: Any, predictions: Any, state: Any) -> list[Any]:
        outputs = list(block_fn.outputs)
        if not (isinstance(predictions, dict) and predictions and len(outputs) > 1 and not block_fn.batch
                and all(isinstance(key, Block) for key in predictions)):
            return await original(block_fn, predictions, state)
        by_id = {block._id: value for block, value in predictions.items()}
        if len(by_id) != len(predictions) or not set(by_id) <= {block._id for block in outputs}:
            return await original(block_fn, predictions, state)  # gradio's own matching (by key)
        kept = [index for index, block in enumerate(outputs)
                if block._id in by_id and not is_skip(by_id[block._id])]
        result: list[Any] = [dict(SKIP) for _ in outputs]
        if kept:
            narrowed = copy.copy(block_fn)
            narrowed.outputs = [outputs[index] for index in kept]
            values = [by_id[outputs[index]._id] for index in kept]
            done = await original(narrowed, values if len(kept) > 1 else values[0], state)
            for index, value in zip(kept, done, strict=True):
                result[index] = value
        return result

    blocks.postprocess_data = postprocess_data
    return True
