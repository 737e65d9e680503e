"""The History section in Chromium: a comparison run on the page is listed there, still after the
app restarts; its filters (model, backend) narrow the list, "Export JSON" downloads the matched
records, "Delete selected" deletes the one picked and nothing else, and "Delete my history" empties
it. Two app starts: marked slow (no real runtime)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, REPO_ROOT, AppServer, free_port, start_app, with_python_path
from test_app_browser import wait_for_status

from playground.engine.records import RunRecord

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HISTORY_ROWS = """() => Array.from(document.querySelectorAll('#history-table .virtual-row'))
    .map(row => Array.from(row.querySelectorAll('td, [role=gridcell]')).map(cell => cell.innerText.trim()))
    .filter(cells => cells.some(Boolean))"""  # gradio 6 renders body rows as divs


def launch(port: int, cache: Path, log: Path) -> AppServer:
    """The scripted app on ``port``: the same origin after a restart, so the same browser storage."""
    return start_app(["--model", "demo", "--backends", "scripted"], cache, log, port=port)


def note(page) -> str:
    return page.locator("#history-note").inner_text()


def wait_for_note(page, *words: str) -> str:
    deadline = time.monotonic() + 10
    while not all(word in note(page) for word in words):
        assert time.monotonic() < deadline, note(page)
        time.sleep(0.1)
    return note(page)


def listed(page, expect: int, click: bool = True) -> list[list[str]]:
    """(Refresh, then) the listed rows once the note counts ``expect`` comparisons."""
    if click:
        page.locator("#history-refresh").click()
    want = f"{expect} comparison(s) kept" if expect else "No comparisons kept"
    wait_for_note(page, want)
    time.sleep(0.3)  # the table renders with the note
    return page.evaluate(HISTORY_ROWS)


def pick(page, elem_id: str, starts_with: str) -> None:
    """Choose the option of the dropdown ``elem_id`` whose text starts with ``starts_with``."""
    page.locator(f"#{elem_id} input").click()
    items = page.locator("ul.option-list li")  # gradio 6's dropdown list
    items.first.wait_for()
    texts = [items.nth(i).inner_text().replace("✓", "").strip() for i in range(items.count())]
    matches = [i for i, text in enumerate(texts) if text.startswith(starts_with)]
    assert len(matches) == 1, texts
    items.nth(matches[0]).click()


def type_filter(page, elem_id: str, text: str) -> None:
    """Fill a filter box and press Enter (which applies the filters)."""
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(text)
    box.press("Enter")


def seed_history() -> dict[str, str]:
    """Two comparisons of the machine's owner (as the CLI keeps them) and one of a login, written
    into the app's database while it is stopped: name -> id."""
    from playground.history.owners import LOCAL
    from playground.history.store import HistoryStore, default_path

    def records(model: str, *backends: str) -> list[RunRecord]:
        return [RunRecord(backend=backend, device="cpu", precision="fp32", model=model, run=1, text="hi")
                for backend in backends]

    store = HistoryStore(default_path())
    day = datetime.now() - timedelta(days=3)
    return {
        "smollm2": store.save_comparison(records("smollm2", "transformers", "openvino-genai"), owner=LOCAL,
                                         started_at=day, source="cli"),
        "demo-cli": store.save_comparison(records("demo", "transformers"), owner=LOCAL,
                                          started_at=day + timedelta(days=1), source="cli"),
        "bob": store.save_comparison(records("demo", "scripted"), owner="user:bob"),
    }


def test_history_survives_a_restart_filters_exports_and_deletes(tmp_path, monkeypatch, artifacts) -> None:
    if not CHROMIUM.exists():
        pytest.skip(reason="Chromium is missing: install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    from playground.backends import ONLY_ENV
    from playground.backends.scripted_backend import ENABLE_ENV
    from playground.history.store import HistoryStore, default_path

    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(ENABLE_ENV, "1")
    monkeypatch.setenv(ONLY_ENV, "scripted")
    monkeypatch.setenv("PYTHONPATH", with_python_path(REPO_ROOT))
    port, cache = free_port(), tmp_path / "cache"
    server = launch(port, cache, artifacts / "app-history-1.log")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(30_000)
        try:
            page.goto(server.url)
            page.wait_for_selector("#run-button")
            page.locator("#history").get_by_text("History (kept across restarts)").click()
            assert listed(page, 0) == []
            page.locator("#prompt textarea").fill("tokens=6 delay=0.01 kept")
            page.locator("#run-button").click()
            assert "Finished" in wait_for_status(page, "Finished", "Stopped", "failed", timeout_s=60)
            [row] = listed(page, 1)
            assert row[2] == "demo" and row[3].startswith("scripted") and row[6] == "app", row
            assert "this machine's owner" in note(page)
            ran = row[0]  # the short id

            server.stop()
            seeded = seed_history()
            server = launch(port, cache, artifacts / "app-history-2.log")
            page.goto(server.url)
            page.wait_for_selector("#run-button")
            page.locator("#history").get_by_text("History (kept across restarts)").click()
            rows = listed(page, 3)
            assert rows[0] == row  # the same comparison, read back after the restart
            assert [r[0] for r in rows] == [ran, seeded["demo-cli"][:8], seeded["smollm2"][:8]]

            # filters: a model (Enter applies it), then a backend too (picking one applies it)
            type_filter(page, "history-model", "demo")
            assert [r[0] for r in listed(page, 2, click=False)] == [ran, seeded["demo-cli"][:8]]
            assert "matching the filters" in note(page)
            pick(page, "history-backend", "scripted")
            assert [r[0] for r in listed(page, 1, click=False)] == [ran]
            assert [r[0] for r in listed(page, 1)] == [ran]  # Refresh keeps both filters

            # export JSON: the matched comparison's records, downloaded from the page
            page.locator("#history-export-json").click()
            wait_for_note(page, "Exported", "as JSON")
            link = page.locator("#history-export-file a").first
            with page.expect_download() as download:
                link.click()
            exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
            assert download.value.suggested_filename == "history.json"
            assert exported and {(r["model"], r["backend"]) for r in exported} == {("demo", "scripted")}
            assert len({r["comparison"] for r in exported}) == 1 and exported[0]["comparison"].startswith(ran)
            assert f"Exported {len(exported)} record(s) of 1 comparison(s)" in note(page)

            # a malformed date: a message in the note, the list unchanged, no error toast
            type_filter(page, "history-since", "someday")
            wait_for_note(page, "is not a date", "The list is unchanged.")
            assert [r[0] for r in page.evaluate(HISTORY_ROWS)] == [ran]
            assert page.locator("[data-testid=toast-body]").count() == 0

            # delete the picked comparison (the seeded smollm2 one), and only it
            type_filter(page, "history-since", "")
            type_filter(page, "history-model", "")
            pick(page, "history-backend", "any backend")
            assert len(listed(page, 3, click=False)) == 3
            pick(page, "history-selected", seeded["smollm2"][:8])
            page.locator("#history-delete-selected").click()
            wait_for_note(page, f"Deleted comparison {seeded['smollm2'][:8]}.", "2 comparison(s) kept")
            time.sleep(0.3)
            assert [r[0] for r in page.evaluate(HISTORY_ROWS)] == [ran, seeded["demo-cli"][:8]]
            store = HistoryStore(default_path())
            assert store.count("user:bob") == 1  # another owner's comparison is never listed, nor deleted

            page.locator("#history-delete").click()
            wait_for_note(page, "Deleted 2 comparison")
            assert page.evaluate(HISTORY_ROWS) == []
            assert store.count("local") == 0 and store.count("user:bob") == 1
        finally:
            browser.close()
            server.stop()
