"""Keep gradio's server from polling the machine it measures.

Gradio's queue loop checks for new jobs every millisecond on Linux and macOS (``sleep_when_free``,
50 ms on Windows) and its progress loop every 10 ms, even when nobody is connected: 6-7 % of a
core on the 2-core test machine while the app sat idle, and a thousand wake-ups a second beside a
backend being timed. A job waiting 20 ms longer to start costs nothing here (every comparison is
seconds long), so both loops get the Windows cadence. Measured with ``python -m
playground.bench.fidelity`` (app idle CPU, page / headless).
"""

from __future__ import annotations

import logging
from typing import Any

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
