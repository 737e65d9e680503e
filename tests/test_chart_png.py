"""``--chart FILE.png`` (issue 13): the trade-off chart and the sweep chart as PNG files, written by
the real CLI (a subprocess) from the scripted backend's records through kaleido and Debian's
Chromium; without a browser, the HTML beside it and one line; any other suffix refused at once.

The two PNG tests start Chromium (about 5 s each on 2 busy cores): marked slow. The other two take
a second or two and stay in the fast layer."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from playground.backends.scripted_backend import ENABLE_ENV
from playground.paths import REPO_ROOT

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRADEOFF = ("--backends", "scripted,scripted::load-slow", "--prompt", "tokens=12 delay=0.005", "--runs", "1")
SWEEP = ("--backends", "scripted", "--sweep", "64,256", "--runs", "1")


def bench(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "playground.bench", *args, "--no-history"],
        cwd=REPO_ROOT,
        env={**os.environ, ENABLE_ENV: "1", "PLAYGROUND_ONLY_BACKENDS": "scripted", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk, after checking its signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, data[:16]
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


needs_chromium = pytest.mark.skipif(
    not (os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("google-chrome")),
    reason="no Chrome/Chromium here (scripts/setup.sh --dev installs Debian's)",
)


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize(
    ("name", "args", "size"), [("tradeoff", TRADEOFF, (900, 560)), ("sweep", SWEEP, (1100, 480))]
)
def test_the_cli_writes_each_chart_as_a_png(
    tmp_path: Path, name: str, args: tuple[str, ...], size: tuple
) -> None:
    chart = tmp_path / f"{name}.png"
    result = bench(*args, "--chart", str(chart))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrote {chart}" in result.stdout.splitlines(), result.stdout
    assert png_size(chart) == size  # the figure's layout, at scale 1
    assert chart.stat().st_size > 10_000  # drawn: axes, points, labels (an empty canvas is ~5 kB)
    assert not chart.with_suffix(".html").exists() and "Traceback" not in result.stderr


def test_without_a_browser_the_cli_writes_the_html_beside_it(tmp_path: Path) -> None:
    chart = tmp_path / "tradeoff.png"
    result = bench(*TRADEOFF, "--chart", str(chart), BROWSER_PATH=str(tmp_path / "no-such-chrome"))
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [line for line in result.stdout.splitlines() if "PNG" in line]
    assert line == (
        "could not write the PNG (no Chrome/Chromium found: install Debian's chromium or point "
        f"BROWSER_PATH at one); wrote the HTML instead: {chart.with_suffix('.html')}"
    )
    assert not chart.exists() and "trade-off front" in chart.with_suffix(".html").read_text()
    assert "Traceback" not in result.stdout + result.stderr


def test_other_chart_suffixes_are_refused_before_anything_runs(tmp_path: Path) -> None:
    chart = tmp_path / "tradeoff.svg"
    result = bench(*TRADEOFF, "--chart", str(chart))
    assert result.returncode == 2
    assert f"argument --chart: {chart}: a chart file ends in .html or .png (HTML or PNG)" in result.stderr
    assert "Traceback" not in result.stderr and not result.stdout and not list(tmp_path.iterdir())
