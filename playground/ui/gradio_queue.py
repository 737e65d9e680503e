"""What gradio's queue knows and our handlers cannot see: a client's waiting comparisons, and
whether the caller of a running one is still there.

Comparisons wait in gradio's queue before any handler of ours runs, so a client's waiting jobs
can only be counted there; and when a caller's stream drops, gradio only marks its running job
not ``alive`` (it cancels nothing), so ``/compare`` asks. Both read the queue of the ``engine``
concurrency id (every comparison, page and ``/compare`` alike, runs under it). These are gradio
internals (``Queue.event_queue_per_concurrency_id``, ``active_jobs``, ``Event.alive``) of the
pinned release; ``tests/test_public_app.py`` and ``tests/test_scripted_app.py`` notice a change.
"""

from __future__ import annotations

from typing import Any

from playground.ui.client_limits import client_of

ENGINE_QUEUE = "engine"  # the concurrency id of every comparison (wiring.py)


def _running(blocks: Any) -> list[Any]:
    queue = getattr(blocks, "_queue", None)
    if queue is None:
        return []
    return [event for job in queue.active_jobs if job for event in job
            if event.concurrency_id == ENGINE_QUEUE]


def pending_comparisons(blocks: Any, client: str, behind_proxy: bool) -> int:
    """Comparisons of ``client`` waiting in gradio's queue or running now."""
    queue = getattr(blocks, "_queue", None)
    if queue is None:
        return 0
    waiting = getattr(queue.event_queue_per_concurrency_id.get(ENGINE_QUEUE), "queue", [])
    return sum(1 for event in [*waiting, *_running(blocks)]
               if not getattr(event, "closed", False)
               and client_of(event.username, event.request, behind_proxy) == client)


def caller_gone(blocks: Any, session_hash: str | None, api_name: str) -> bool:
    """The running ``api_name`` jobs of ``session_hash`` are all marked not alive: the caller's
    stream dropped (gradio's ``clean_events``). False when gradio shows no such job."""
    if not session_hash:
        return False
    jobs = [event for event in _running(blocks) if event.session_hash == session_hash
            and getattr(event.fn, "api_name", None) == api_name]
    return bool(jobs) and not any(event.alive for event in jobs)
