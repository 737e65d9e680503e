"""``ui/page_script.py`` without a browser: where the script goes, and the middleware over a real
ASGI app (starlette), called as a server would call it — the page's HTML gets it first in its head,
nothing else changes."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from playground.ui.page_script import IDLE_TIMER_SCRIPT, PageScript, with_script

PAGE = "<!doctype html><html><head><script type=module src=app.js></script></head><body></body></html>"


def test_the_script_goes_first_in_the_head_and_nowhere_else() -> None:
    html = with_script(PAGE.encode()).decode()
    assert html.index(IDLE_TIMER_SCRIPT) == html.index("<head>") + len("<head>")
    assert html.index(IDLE_TIMER_SCRIPT) < html.index("type=module")
    assert with_script(b"no head here") == b"no head here"


def test_the_middleware_changes_the_page_only() -> None:
    async def index(request):
        return HTMLResponse(PAGE)

    async def info(request):
        return JSONResponse({"page": "<head>"})

    app = Starlette(routes=[Route("/", index), Route("/info", info)], middleware=[Middleware(PageScript)])
    status, headers, body = asyncio.run(call(app, "GET", "/"))
    assert status == 200 and IDLE_TIMER_SCRIPT.encode() in body
    assert int(headers[b"content-length"]) == len(body)
    assert asyncio.run(call(app, "GET", "/info"))[2] == b'{"page":"<head>"}'  # not HTML: untouched
    assert IDLE_TIMER_SCRIPT.encode() not in asyncio.run(call(app, "HEAD", "/"))[2]


async def call(app, method: str, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    """One HTTP request through ``app`` as an ASGI server makes it: (status, headers, body)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 1),
             "server": ("testserver", 80)}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body
