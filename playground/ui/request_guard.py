"""Refuse malformed event calls with a 4xx before gradio's queue sees them.

gradio answers a queue join that names no event (``fn_index`` unknown) or a ``/call/<name>`` of
no API with HTTP 500 and a traceback in the app's log (it looks them up unguarded), and a call
with fewer input values than the event takes is accepted, then fails inside the queue with another
traceback. A
stranger on a shared link can send both as fast as they like. This ASGI middleware reads the
body of a join (``/queue/join``, ``/call/<api_name>``) first and answers 404 / 422 / 413 itself;
everything else, and every well-formed join, goes to gradio untouched (the body is replayed).
On an untrusted page it also enforces the per-client job quota (``engine.quotas``): a comparison
joining while its client already has its share queued or running gets 429 and the reason.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request

from playground.engine.quotas import ClientQuota, QuotaExceeded
from playground.ui.client_limits import client_of, login_of
from playground.ui.gradio_queue import ENGINE_QUEUE, pending_comparisons

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_JOIN_BYTES = 4 * 2**20  # a join carries the form's values: two 32,000-character texts at most
JOIN_SUFFIX = "/queue/join"
CALL_MARKER = "/call/"


class EventCallGuard:
    """``blocks``: the app's ``gr.Blocks`` (its ``fns``: event id -> BlockFunction); ``quota``:
    the per-client limits of an untrusted page (None: the owner's page has none)."""

    def __init__(self, app: ASGIApp, blocks: Any, quota: ClientQuota | None = None,
                 behind_proxy: bool = False) -> None:
        self.app = app
        self.blocks = blocks
        self.quota = quota
        self.behind_proxy = behind_proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "").rstrip("/")
        if scope["type"] != "http" or scope.get("method") != "POST" or not (
            path.endswith(JOIN_SUFFIX) or CALL_MARKER in path
        ):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if len(body) > MAX_JOIN_BYTES:
                await respond(send, 413, f"request body over {MAX_JOIN_BYTES // 2**20} MB")
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        refusal = self.refusal(path, body) or self.over_quota(scope, path, body)
        if refusal is not None:
            await respond(send, *refusal)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def over_quota(self, scope: Scope, path: str, body: bytes) -> tuple[int, str] | None:
        """429 for a comparison whose client already has ``quota.max_jobs`` queued or running."""
        if self.quota is None or self.quota.max_jobs is None:
            return None
        fn = self._event(path, body)
        if fn is None or getattr(fn, "concurrency_id", None) != ENGINE_QUEUE:
            return None
        request = Request(scope)
        client = client_of(login_of(self.blocks, request), request, self.behind_proxy)
        try:
            self.quota.check_jobs(client, pending_comparisons(self.blocks, client, self.behind_proxy))
        except QuotaExceeded as exc:
            return 429, str(exc)
        return None

    def _event(self, path: str, body: bytes) -> Any:
        """The event a well-formed join names (``refusal`` let it through), else None."""
        try:
            payload = json.loads(body)
        except ValueError:
            return None
        fns = getattr(self.blocks, "fns", {})
        if path.endswith(JOIN_SUFFIX):
            index = payload.get("fn_index") if isinstance(payload, dict) else None
            return fns.get(index) if isinstance(index, int) else None
        name = path.rsplit(CALL_MARKER, 1)[1].split("/", 1)[0]
        return next((f for f in fns.values() if getattr(f, "api_name", None) == name), None)

    def refusal(self, path: str, body: bytes) -> tuple[int, str] | None:
        """(status, detail) for a join gradio would fail on; None lets it through (gradio's own
        validation answers the rest with its 422s)."""
        try:
            payload = json.loads(body)
        except ValueError:
            return None  # gradio answers malformed JSON with a clean 422 itself
        if not isinstance(payload, dict):
            return None
        fns = getattr(self.blocks, "fns", {})
        if path.endswith(JOIN_SUFFIX):
            index = payload.get("fn_index")
            if index is None or isinstance(index, bool) or not isinstance(index, int):
                return None  # gradio's pydantic body check refuses it with 422
            fn = fns.get(index)
            if fn is None:
                return 404, f"no event with fn_index {index}"
        else:
            name = path.rsplit(CALL_MARKER, 1)[1].split("/", 1)[0]
            fn = next((f for f in fns.values() if getattr(f, "api_name", None) == name), None)
            if fn is None:  # gradio's lookup raises, uncaught: HTTP 500 and a traceback
                return 404, f"no API named {name[:100]!r}"
        data = payload.get("data")
        wanted = len(getattr(fn, "inputs", []) or [])
        if isinstance(data, list) and len(data) < wanted:
            return 422, f"this event takes {wanted} input values, got {len(data)}"
        return None


async def respond(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
