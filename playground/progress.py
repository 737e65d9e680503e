"""How long operations (a first-time conversion, a load) report their steps.

Below both ``playground.models`` (the conversion cache and exporters report through it) and
``playground.backends`` (``Backend.load`` receives one), so neither imports the other for it; likewise the
``Conversion`` a load went through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class ProgressCallback(Protocol):
    """Called with a human-readable step during long operations; ``stage`` is the lane state
    the step belongs to ("loading", or "converting" for a first-time model conversion)."""

    def __call__(self, text: str, stage: str = "loading") -> None: ...


@dataclass
class Conversion:
    """The model conversion a load went through (``playground.models.convert_cache``): the worker
    reports its time apart from load time, so load_s compares runtimes, not first-run conversions."""

    path: Path
    reused: bool  # the cache had it
    seconds: float = 0.0  # spent converting now (0 when reused)
