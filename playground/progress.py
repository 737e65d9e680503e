"""How long operations (a first-time conversion, a load) report their steps.

Below both ``playground.models`` (the conversion cache and exporters report through it) and
``playground.backends`` (``Backend.load`` receives one), so neither imports the other for it.
"""

from __future__ import annotations

from typing import Protocol


class ProgressCallback(Protocol):
    """Called with a human-readable step during long operations; ``stage`` is the lane state
    the step belongs to ("loading", or "converting" for a first-time model conversion)."""

    def __call__(self, text: str, stage: str = "loading") -> None: ...
