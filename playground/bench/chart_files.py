"""Writing a plotly figure to the file ``--chart FILE`` names: ``.html`` (plotly.js inside, it opens
offline) or ``.png`` (plotly's ``write_image`` through kaleido 1.x, which drives a Chrome/Chromium
of the machine: Debian's ``chromium`` is found on PATH, or wherever ``BROWSER_PATH`` points).

A PNG that cannot be made (kaleido missing, no browser, the browser failing) is never a traceback:
the HTML is written beside it and the reason comes back in one line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUFFIXES = (".html", ".png")
PNG_TIMEOUT_S = 60  # kaleido's limit on rendering one image (its default is 90)
log = logging.getLogger(__name__)


class ChartPathError(ValueError):
    """``--chart`` names a file this module cannot write."""


def check_chart_path(path: Path) -> Path:
    """``path`` itself when its suffix is one this module writes, else a ChartPathError that says so."""
    if path.suffix.lower() not in SUFFIXES:
        raise ChartPathError(f"{path}: a chart file ends in {' or '.join(SUFFIXES)} (HTML or PNG)")
    return path


@dataclass(frozen=True)
class ChartFile:
    """What was written: ``path``, and when a PNG was asked for but could not be made, why."""

    path: Path
    problem: str = ""

    def message(self) -> str:
        """The CLI's line about it."""
        if self.problem:
            return f"could not write the PNG ({self.problem}); wrote the HTML instead: {self.path}"
        return f"wrote {self.path}"


def write_figure(figure: Any, path: Path) -> ChartFile:
    """Write the plotly ``figure`` to ``path`` (``.html`` or ``.png``, see ``check_chart_path``) at its
    layout's width and height; a PNG that fails leaves ``path`` with the suffix ``.html`` instead."""
    check_chart_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        try:
            _write_png(figure, path)
            return ChartFile(path)
        except Exception as exc:  # kaleido missing, no Chrome/Chromium, a browser that failed: all one line
            log.warning("PNG export of %s failed", path, exc_info=True)
            path.unlink(missing_ok=True)
            html = path.with_suffix(".html")
            figure.write_html(str(html), include_plotlyjs=True)
            return ChartFile(html, _one_line(exc))
    figure.write_html(str(path), include_plotlyjs=True)
    return ChartFile(path)


def _write_png(figure: Any, path: Path) -> None:
    """The PNG as plotly's ``write_image`` makes it (``kaleido.calc_fig_sync`` on the figure, plotly's
    own plotly.js), called directly so that MathJax is off: kaleido would fetch it from a CDN, and
    plotly's wrapper cannot turn it off (these charts have no TeX)."""
    try:
        import kaleido
    except ImportError as exc:
        raise RuntimeError("kaleido is not installed: pip install -r requirements.txt") from exc
    layout = figure.layout
    image = kaleido.calc_fig_sync(
        figure,
        opts={"format": "png", "width": layout.width, "height": layout.height, "scale": 1},
        kopts={"mathjax": False, "timeout": PNG_TIMEOUT_S},
    )
    path.write_bytes(image)


def _one_line(exc: BaseException, limit: int = 200) -> str:
    """The exception's message on one line (kaleido's and plotly's are paragraphs), shortened."""
    text = " ".join(str(exc).split())
    if isinstance(exc, RuntimeError) and text.startswith("kaleido is not installed"):
        return text
    if "ChromeNotFound" in type(exc).__name__ or "requires Google Chrome" in text:  # no browser found
        return "no Chrome/Chromium found: install Debian's chromium or point BROWSER_PATH at one"
    text = f"{type(exc).__name__}: {text or 'no message'}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
