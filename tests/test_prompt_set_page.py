"""The page's Prompt set in Chromium, on the scripted app: choosing a set clears the prompt box
and lists the set's prompts; Run runs them all and the table under the results gives each lane's
answer quality over them. Marked ``browser``, not ``slow`` (no model is loaded)."""

from __future__ import annotations

import pytest
from test_app_browser import wait_for_status
from test_history_page import pick

from playground.engine import prompt_sets

pytestmark = pytest.mark.browser
PAGE_APP = "scripted_app"


def test_a_prompt_set_runs_its_prompts_and_shows_the_quality_over_them(page) -> None:
    for name in ("scripted", "echo"):  # both lanes, whatever an earlier module left
        box = page.locator(f"#pick-{name} input[type=checkbox]")
        if not box.is_checked():
            box.check()
    page.get_by_label("all at once (race)").check()  # no fair-mode pause before each run
    prompt = page.locator("#prompt textarea")
    prompt.fill("a prompt the set replaces")
    pick(page, "prompt-set", "demo")
    first = prompt_sets.load("demo").prompts[0]
    page.wait_for_function("([text]) => { const box = document.querySelector('#prompt textarea');"
                           " return box.value === '' && box.placeholder.includes(text); }", arg=[first])
    page.wait_for_function("() => !document.querySelector('#run-button').disabled")
    page.locator("#run-button").click()
    final = wait_for_status(page, "Finished", "Stopped", "failed", "Cannot run", timeout_s=60)
    assert "Finished" in final, final
    page.wait_for_function("() => document.querySelector('#prompt-quality').innerText.includes('Answer')")
    quality = page.locator("#prompt-quality").inner_text()
    assert "Answer quality over the 8 prompts" in quality, quality
    assert "scripted CPU scripted" in quality and "echo CPU" in quality, quality
    assert "reference" in quality, quality
    page.locator("#clear-table").click()  # the table and the quality under it go together
    page.wait_for_function("() => !document.querySelector('#prompt-quality').innerText.includes('Answer')")
