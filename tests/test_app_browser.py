"""The page in headless Chromium: streaming panels, live charts, results table, Stop, bad input."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # the real app with every real runtime

PAGE_APP = "app_server"  # the conftest ``page`` fixture drives the real app
REPO_ROOT = Path(__file__).resolve().parent.parent
PROMPT = "What is the for statement?"

PANEL_TEXTS = """() => Array.from(document.querySelectorAll('[id^="lane-"]'))
    .filter(el => el.offsetParent !== null)
    .map(el => (el.querySelector('textarea') || {value: ''}).value.length)"""
PANEL_STATES = """() => Array.from(document.querySelectorAll('[id^="lane-"]'))
    .filter(el => el.offsetParent !== null)
    .map(el => (el.querySelector('.state-badge') || {textContent: ''}).textContent)"""
PANEL_METRICS = """() => Array.from(document.querySelectorAll('[id^="lane-"]'))
    .filter(el => el.offsetParent !== null)
    .map(el => (el.querySelector('.lane-metrics') || {innerText: ''}).innerText)"""
PLOT_POINTS = """(id) => {
    const plot = document.querySelector(`#${id} .js-plotly-plot`);
    return plot && plot.data ? plot.data.map(t => [t.name, (t.x || []).length]) : [];
}"""


def status(page) -> str:
    return page.locator("#run-status").inner_text()


def wait_for_status(page, *words: str, timeout_s: float = 240.0, every=None) -> str:
    """Poll the run status until it holds one of ``words``; ``every`` runs at each poll."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = status(page)
        if any(word in text for word in words):
            return text
        if every is not None:
            every()
        time.sleep(0.1)
    raise AssertionError(f"status never showed {words}: {status(page)!r}")


def set_max_new_tokens(page, value: int) -> None:
    box = page.locator("#max-new-tokens input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def set_checkbox(page, selector: str, checked: bool) -> None:
    box = page.locator(f"{selector} input[type=checkbox]")
    if box.is_checked() != checked:
        box.click()


def run_button_enabled(page) -> None:
    page.wait_for_function("() => !document.querySelector('#run-button').disabled")


def test_empty_prompt_shows_its_message_and_the_page_stays_usable(page) -> None:
    page.locator("#prompt textarea").fill("")
    page.locator("#run-button").click()
    wait_for_status(page, "The prompt is empty", timeout_s=30)
    run_button_enabled(page)


def test_run_streams_into_every_panel_then_charts_and_table(page, artifacts: Path) -> None:
    page.locator("#prompt textarea").fill(PROMPT)
    set_max_new_tokens(page, 96)
    set_checkbox(page, "#stop-at-eos", False)
    page.get_by_label("one after another (fair)").check()
    page.locator("#run-button").click()
    seen: list[list[int]] = []
    wait_for_status(page, "Running", timeout_s=60)
    final = wait_for_status(page, "Finished", "Stopped", "failed",
                            every=lambda: seen.append(page.evaluate(PANEL_TEXTS)))
    assert "Finished" in final and "error" not in final, final
    lengths = page.evaluate(PANEL_TEXTS)
    assert lengths and all(length > 0 for length in lengths), lengths
    # Streaming, not one final dump: some panel showed a partial text that later grew.
    partial = [(i, n) for snapshot in seen for i, n in enumerate(snapshot) if 0 < n < lengths[i]]
    assert partial, f"no panel was ever seen mid-stream: {seen[-20:]}"
    states = page.evaluate(PANEL_STATES)
    assert all(state in ("done", "done: answer flagged") for state in states), states
    # every panel says how its answer compares with the reference (transformers fp32 on auto)
    metrics = page.evaluate(PANEL_METRICS)
    assert sum("answer agreement: reference" in text for text in metrics) == 1, metrics
    others = [text for text in metrics if "answer agreement: reference" not in text]
    assert all("agreement with transformers:cpu:fp32" in text and "text similarity" in text
               for text in others), others
    for state, text in zip(states, metrics, strict=True):  # a flagged answer reads as a warning
        assert ("This answer looks broken" in text) == (state == "done: answer flagged"), text

    page.wait_for_function(f"() => ({PLOT_POINTS})('tokens-chart').some(t => t[1] >= 2)")
    tokens = page.evaluate(PLOT_POINTS, "tokens-chart")
    assert len(tokens) == len(lengths), tokens
    utilization = dict(page.evaluate(PLOT_POINTS, "util-chart"))
    assert utilization.get("CPU total", 0) >= 2, utilization
    assert sum(points > 0 for name, points in utilization.items() if name != "CPU total") >= len(lengths), \
        utilization
    # what the page costs is drawn too: the app's own process and this Chromium
    assert utilization.get("app (this server)", 0) >= 2 and utilization.get("browser", 0) >= 1, utilization

    rows = page.locator("#results-table .virtual-row")  # gradio 6 renders body rows as divs
    assert rows.count() >= len(lengths)
    table = page.locator("#results-table").inner_text()
    assert "agree %" in table and "transformers:cpu:fp32" in table
    assert page.locator("#download-csv").is_enabled()
    with page.expect_download() as download:
        page.locator("#download-json").click()
    records = json.loads(Path(download.value.path()).read_text())
    assert len(records) >= len(lengths)
    for record in records:  # measured with this page attached, and said so
        assert record["page_attached"] is True and record["threads"] >= 1 and record["versions"], record
        assert "NPU" not in record["device"] or record["device"] in ("NPU", "CPU (NPU library fallback)")
    page.screenshot(path=str(artifacts / "playground.png"), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOT"):  # refresh the README's picture on purpose only
        shutil.copy(artifacts / "playground.png", REPO_ROOT / "assets" / "screenshot.png")


def long_run_tokens(model: str) -> int:
    """4096 when the model's context allows, else what fits after a short prompt."""
    folder = REPO_ROOT / "assets" / "demo-model" if model == "demo" else Path(model)
    context = json.loads((folder / "config.json").read_text()).get("max_position_embeddings") or 4096
    return min(4096, int(context) - 128)


def test_stop_ends_a_long_run_within_seconds(page, app_model: str) -> None:
    cards = page.locator('[id^="pick-"]')
    names = [cards.nth(i).get_attribute("id") for i in range(cards.count())]
    keep = {"pick-transformers", "pick-openvino-genai"}
    for name in names:
        set_checkbox(page, f'[id="{name}"]', name in keep)  # an id may hold a "." (pick-llama.cpp)
    page.get_by_label("one after another (fair)").check()
    page.locator("#prompt textarea").fill(PROMPT)
    set_max_new_tokens(page, long_run_tokens(app_model))
    set_checkbox(page, "#stop-at-eos", False)
    page.locator("#run-button").click()
    wait_for_status(page, "Running", timeout_s=60)
    deadline = time.monotonic() + 120
    while not any(page.evaluate(PANEL_TEXTS)):
        assert time.monotonic() < deadline, status(page)
        time.sleep(0.1)
    pressed = time.monotonic()
    page.locator("#stop-button").click()
    final = wait_for_status(page, "Stopped", "Finished", timeout_s=30)
    took = time.monotonic() - pressed
    assert "Stopped" in final, final
    assert took < 5, f"stop took {took:.1f} s"
    assert set(page.evaluate(PANEL_STATES)) == {"stopped"}
    run_button_enabled(page)


def test_reference_choices_follow_the_selected_backends(page) -> None:
    def options() -> list[str]:
        page.locator("#reference input").click()
        items = page.locator("ul.option-list li")  # gradio 6's dropdown list
        items.first.wait_for()
        texts = [items.nth(i).inner_text().replace("✓", "").strip() for i in range(items.count())]
        page.keyboard.press("Escape")
        return texts

    set_checkbox(page, "#pick-transformers", True)
    set_checkbox(page, "#pick-onnxruntime-genai", True)
    choices = options()
    assert choices[0] == "auto (highest precision)", choices
    assert any(text.startswith("PyTorch (transformers)") for text in choices), choices
    set_checkbox(page, "#pick-transformers", False)
    page.wait_for_timeout(500)
    assert not any(text.startswith("PyTorch (transformers)") for text in options())
