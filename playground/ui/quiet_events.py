"""Event options that keep gradio's page from re-rendering what a run does not change.

gradio 6's frontend keeps a loading status for every component that any event ever listed as a
progress target (by default: every output), and on every message of every stream it updates all
of them: a search of the component tree and a snapshot of the component's state each. With the
run's ~35 outputs, the history's and the batch section's tracked too, that was about half of the
browser's work per frame while a backend was timed (CDP profile, headless Chromium, 2 cores).
Events that show no progress anyway track one component, the line that says what is going on.
"""

from __future__ import annotations

from typing import Any


def progress_on(component: Any) -> dict[str, Any]:
    """Keyword arguments for an event listener: no progress shown, one component tracked."""
    return {"show_progress": "hidden", "show_progress_on": [component]}
