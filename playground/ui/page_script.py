"""A script put at the top of the page's ``<head>``: it keeps gradio's idle page from taking a
tenth of a core from the runtimes being measured.

Measured in headless Chromium on 2 cores (``README``, "Fidelity"): an idle gradio 6 page — even an
empty ``gr.Blocks`` — runs a ``requestAnimationFrame`` loop at 60 Hz forever. It is the elapsed-time
timer of the status tracker that shows while the app loads: the tracker is unmounted once the app
is up, but its loop never learns it, so the open tab took 11-13 % of a core doing nothing (a blank
tab: 0.4 %). The script hands such timer callbacks (short closures computing
``performance.now() - start``) a timeout of a second instead of the next frame: a visible timer
would still count up, once a second; every other animation frame is untouched. gradio's own
``head=`` option is applied by its JavaScript after the modules load, too late for a loop that
captured ``requestAnimationFrame`` when its module was evaluated, so an ASGI middleware puts the
script into the HTML itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]

TIMER_FRAME_MS = 1000
IDLE_TIMER_SCRIPT = """<script>(() => {
  const frame = window.requestAnimationFrame.bind(window);
  window.requestAnimationFrame = (callback) => {
    const source = Function.prototype.toString.call(callback);
    if (source.length < 120 && source.includes("performance.now()-")) {
      return -setTimeout(() => callback(performance.now()), TIMER_FRAME_MS);
    }
    return frame(callback);
  };
  const cancel = window.cancelAnimationFrame.bind(window);
  window.cancelAnimationFrame = (id) => (id < 0 ? clearTimeout(-id) : cancel(id));
})();</script>""".replace("TIMER_FRAME_MS", str(TIMER_FRAME_MS))
MARKER = b"<head>"


def with_script(html: bytes, script: str = IDLE_TIMER_SCRIPT) -> bytes:
    """``html`` with ``script`` first in its head (unchanged when it has no ``<head>``)."""
    at = html.find(MARKER)
    if at < 0:
        return html
    at += len(MARKER)
    return html[:at] + script.encode() + html[at:]


class PageScript:
    """ASGI middleware: the page's HTML (``GET /``) gets ``IDLE_TIMER_SCRIPT``; nothing else changes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET" or scope.get("path", "") not in ("", "/"):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = b""

        async def capture(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body += message.get("body", b"")
            if message.get("more_body", False):
                return
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            is_html = any(k.lower() == b"content-type" and b"text/html" in v for k, v in headers)
            encoded = any(k.lower() == b"content-encoding" for k, _ in headers)
            page = with_script(body) if is_html and not encoded else body
            await send({**start, "headers": [*headers, (b"content-length", str(len(page)).encode())]})
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, capture)
