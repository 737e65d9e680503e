"""The prompt-length sweep (issue 13): prompts cut to a number of tokens by the model's own
tokenizer, and the CLI's ``--sweep`` / ``--chart`` run through the scripted backend (fast layer).
The real-model sweep is in ``test_smollm2.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from playground.backends.scripted_backend import ENABLE_ENV
from playground.bench.sweep import INSTRUCTION, SweepError, build_prompts, parse_lengths
from playground.models.resolve import resolve_model
from playground.paths import REPO_ROOT


def test_lengths_are_parsed_sorted_and_bounded() -> None:
    assert parse_lengths("512, 128,2k,128") == [128, 512, 2048]
    for bad, message in (("12", "at least 16"), ("many", "prompt lengths in tokens"), (",", "at least one")):
        with pytest.raises(SweepError, match=message):
            parse_lengths(bad)


def test_prompts_have_the_asked_number_of_tokens_and_the_context_bounds_them() -> None:
    demo = resolve_model("demo")  # context 1,024
    prompts, skipped = build_prompts(demo.path, [64, 300, 896, 2048], None, 128, demo.context_length)
    assert [(p.target, p.tokens) for p in prompts] == [(64, 64), (300, 300), (896, 896)]  # 896 + 128 fits
    assert all(p.prompt.startswith(INSTRUCTION) for p in prompts)
    assert skipped == ["2,048 tokens: with 128 new tokens it exceeds the model's context of 1,024"]
    short, why = build_prompts(demo.path, [64], None, 8, None, text="just a few words")
    assert short == [] and "longer than the shipped text" in why[0]  # said, not padded


def run_bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, ENABLE_ENV: "1", "PLAYGROUND_ONLY_BACKENDS": "scripted"}
    return subprocess.run([sys.executable, "-m", "playground.bench", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_cli_sweeps_prompt_lengths_and_draws_them(tmp_path: Path) -> None:
    chart, out = tmp_path / "sweep.html", tmp_path / "sweep.json"
    result = run_bench("--backends", "scripted", "--sweep", "64,256", "--runs", "2", "--no-history",
                       "--chart", str(chart), "--json", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("scripted")]
    assert len(lines) == 2, result.stdout  # one row per length
    assert "prefill tok/s" in result.stdout and "decode tok/s" in result.stdout
    records = json.loads(out.read_text())
    assert sorted({r["prompt_index"] for r in records}) == [0, 1] and len(records) == 4
    assert all(r["prefill_tokens_per_s"] and r["token_times_ms"] for r in records)
    html = chart.read_text()
    assert "prefill tok" in html and "decode tok" in html
    assert len(html) > 100_000 and "plotly" in html.lower()  # plotly.js inside: it opens offline


def test_sweep_mistakes_get_one_line_each() -> None:
    with_prompt = run_bench("--backends", "scripted", "--sweep", "64", "--prompt", "hi", "--no-history")
    assert with_prompt.returncode == 2 and "leave out --prompt" in with_prompt.stderr
    too_long = run_bench("--backends", "scripted", "--sweep", "4k", "--no-history")
    assert too_long.returncode == 2 and "no length fits" in too_long.stderr
    assert "exceeds the model's context of 1,024" in too_long.stderr
    assert "Traceback" not in with_prompt.stderr + too_long.stderr
