"""``ui/page_script.py`` without a browser: where the script goes, and the middleware over a real
ASGI app (starlette) — the page's HTML gets it first in its head, nothing else changes."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

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
    client = TestClient(app)
    page = client.get("/")
    assert page.status_code == 200 and IDLE_TIMER_SCRIPT in page.text
    assert int(page.headers["content-length"]) == len(page.content)
    assert client.get("/info").json() == {"page": "<head>"}  # not HTML: untouched
    assert IDLE_TIMER_SCRIPT not in client.head("/").text
