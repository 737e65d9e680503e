"""The History section in Chromium: a comparison run on the page is listed there, still after the
app restarts, and "Delete my history" empties it. Two app starts: marked slow (no real runtime)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, REPO_ROOT, AppServer, free_port, start_app, with_python_path
from test_app_browser import wait_for_status

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HISTORY_ROWS = """() => Array.from(document.querySelectorAll('#history-table .virtual-row'))
    .map(row => Array.from(row.querySelectorAll('td, [role=gridcell]')).map(cell => cell.innerText.trim()))
    .filter(cells => cells.some(Boolean))"""  # gradio 6 renders body rows as divs


def launch(port: int, cache: Path, log: Path) -> AppServer:
    """The scripted app on ``port``: the same origin after a restart, so the same browser storage."""
    return start_app(["--model", "demo", "--backends", "scripted"], cache, log, port=port)


def history(page, expect: int) -> list[list[str]]:
    """Refresh, then the listed rows once the note counts ``expect`` comparisons."""
    page.locator("#history-refresh").click()
    want = f"{expect} comparison(s) kept" if expect else "No comparisons kept yet"
    deadline = time.monotonic() + 10
    while want not in page.locator("#history-note").inner_text():
        assert time.monotonic() < deadline, page.locator("#history-note").inner_text()
        time.sleep(0.1)
    time.sleep(0.3)  # the table renders with the note
    return page.evaluate(HISTORY_ROWS)


def test_history_survives_a_restart_and_can_be_deleted(tmp_path, monkeypatch, artifacts) -> None:
    if not CHROMIUM.exists():
        pytest.skip(reason="Chromium is missing: install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    from playground.backends import ONLY_ENV
    from playground.backends.scripted_backend import ENABLE_ENV

    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(ENABLE_ENV, "1")
    monkeypatch.setenv(ONLY_ENV, "scripted")
    monkeypatch.setenv("PYTHONPATH", with_python_path(REPO_ROOT))
    port, cache = free_port(), tmp_path / "cache"
    server = launch(port, cache, artifacts / "app-history-1.log")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        try:
            page.goto(server.url)
            page.wait_for_selector("#run-button")
            page.locator("#history").get_by_text("History (kept across restarts)").click()
            assert history(page, 0) == []
            page.locator("#prompt textarea").fill("tokens=6 delay=0.01 kept")
            page.locator("#run-button").click()
            assert "Finished" in wait_for_status(page, "Finished", "Stopped", "failed", timeout_s=60)
            [row] = history(page, 1)
            assert row[1] == "demo" and row[2].startswith("scripted") and row[5] == "app", row
            assert "this machine's owner" in page.locator("#history-note").inner_text()

            server.stop()
            server = launch(port, cache, artifacts / "app-history-2.log")
            page.goto(server.url)
            page.wait_for_selector("#run-button")
            page.locator("#history").get_by_text("History (kept across restarts)").click()
            assert history(page, 1) == [row]  # the same comparison, read back after the restart

            page.locator("#history-delete").click()
            deadline = time.monotonic() + 10
            while "Deleted 1 comparison" not in page.locator("#history-note").inner_text():
                assert time.monotonic() < deadline, page.locator("#history-note").inner_text()
                time.sleep(0.1)
            assert page.evaluate(HISTORY_ROWS) == []
        finally:
            browser.close()
            server.stop()
