"""The page's "Matrix and prompt-length sweep" section in Chromium (issue 13), on the scripted app:
the sweep of the checked lanes at two prompt lengths, and the matrix of a checked backend, each
ending in its table and chart; the owner-only rule of an untrusted page is the policy's (fast
test below). Marked ``browser``, not ``slow``: no model is loaded."""

from __future__ import annotations

import re
import time

import pytest

from playground.engine.policy import Policy
from playground.settings import SettingsError

PAGE_APP = "scripted_app"


def batch_status(page) -> str:
    return page.locator("#batch-status").inner_text()


def start_and_wait(page, timeout_s: float = 90.0) -> str:
    """Press Run and return the status once this run (not the one before) has ended."""
    page.locator("#batch-run").click()
    deadline = time.monotonic() + timeout_s
    while "Finished." in batch_status(page) or not batch_status(page):  # the last run's, until Run's own
        assert time.monotonic() < deadline, batch_status(page)
        time.sleep(0.05)
    while time.monotonic() < deadline:
        text = batch_status(page)
        if "Finished." in text or "Cannot run" in text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"the matrix / sweep never finished: {batch_status(page)!r}")


def open_section(page, kind: str) -> None:
    if not page.locator("#batch-run").is_visible():
        page.get_by_text("Matrix and prompt-length sweep").click()
    page.locator("#batch-kind").get_by_label(kind).check()


@pytest.mark.browser
def test_the_sweep_runs_the_checked_lanes_at_each_length_and_draws_them(page) -> None:
    open_section(page, "sweep")
    page.locator("#batch-lengths textarea, #batch-lengths input").first.fill("64,128")
    text = start_and_wait(page)
    assert "Finished." in text and "sweep: 2 length(s) of 64, 128 tokens" in text, text
    table = page.locator("#batch-table").inner_text()
    assert "prefill tok/s" in table and "decode tok/s" in table, table
    rows = [line for line in table.splitlines() if line.startswith(("scripted ", "echo "))]
    assert len(rows) == 4, table  # two lanes x two lengths
    # the scripted backend counts a prompt's UTF-8 bytes as its tokens: two lengths, the second longer
    read = [int(row.split()[3].replace(",", "")) for row in rows if row.startswith("scripted ")]
    assert len(read) == 2 and read[0] < read[1], rows
    page.wait_for_selector("#batch-chart .js-plotly-plot", timeout=15_000)


@pytest.mark.browser
def test_the_matrix_expands_a_checked_backend_and_reports_its_lanes(page) -> None:
    """Only the example plugin checked (the scripted backend's precisions include a load that
    hangs on purpose): the matrix plans its one device x precision, runs it and shows the table."""
    scripted = page.locator("#pick-scripted input[type=checkbox]")
    if scripted.is_checked():
        scripted.uncheck()
    page.locator("#prompt textarea").fill("hello from the matrix")  # the matrix asks the page's prompt
    open_section(page, "matrix")
    try:
        text = start_and_wait(page)
    finally:  # the page's selection as the other modules expect it
        scripted.check()
    assert "matrix: 1 lanes" in text and "matrix: lane 1/1 echo CPU text done" in text, text
    table = page.locator("#batch-table").inner_text()
    assert any(line.startswith("echo ") for line in table.splitlines()), table
    assert "Traceback" not in text + table


def test_an_untrusted_page_cannot_start_a_matrix_or_a_sweep() -> None:
    with pytest.raises(SettingsError, match="only whoever started the app"):
        Policy(untrusted=True).check_batch("matrix")
    Policy(untrusted=False).check_batch("matrix")  # the owner's page may


@pytest.mark.browser
def test_stop_ends_a_matrix_after_the_lane_that_runs(page) -> None:
    """The scripted backend's matrix has a lane for each of its precisions, one of which would hang
    loading: Stop during the first (128 tokens 0.3 s apart) ends it within seconds, and no later
    lane starts."""
    echo = page.locator("#pick-echo input[type=checkbox]")
    if echo.is_checked():
        echo.uncheck()
    page.locator("#prompt textarea").fill("tokens=4000 delay=0.3")
    open_section(page, "matrix")
    try:
        page.locator("#batch-run").click()
        deadline = time.monotonic() + 60
        while not re.search(r"lane 1/\d+ scripted CPU scripted$", batch_status(page), re.M):
            assert time.monotonic() < deadline, batch_status(page)
            time.sleep(0.1)
        time.sleep(1.0)  # into its run
        pressed = time.monotonic()
        page.locator("#batch-stop").click()
        while "Finished." not in batch_status(page):
            assert time.monotonic() - pressed < 15, batch_status(page)
            time.sleep(0.1)
    finally:
        echo.check()
    text = batch_status(page)
    assert re.search(r"lane 1/\d+ scripted CPU scripted stopped", text), text
    assert "lane 2/" not in text, text
