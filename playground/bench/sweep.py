"""Prompt-length sweep: the same lanes at several prompt lengths, like llama-bench's pp / tg table.

python -m playground.bench --sweep 128,512,2048 --backends openvino-genai,onnxruntime-genai --chart sweep.html

Prompts of a given number of tokens are cut from a shipped long text (``assets/long-text``) with
the model folder's own tokenizer, so "512" means 512 tokens of the templated prompt the runtimes
read, give or take a token of the cut; the records carry the exact count. A length the model's
context cannot hold (with the new tokens asked for) is left out and said so. Each length is one
prompt of one comparison, so the lanes, runs, warm-up and thread budget are the same at every depth.
Reported per lane and length: prompt tokens, TTFT, prefill tok/s (prompt tokens / TTFT) and decode
tok/s, medians over the measured runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playground.bench.chart_files import ChartFile, write_figure
from playground.engine import stats
from playground.engine.records import RunRecord, by_lane
from playground.models.chat import render_prompt
from playground.models.tokens import count_prompt_tokens, cut_to_tokens
from playground.paths import REPO_ROOT

LONG_TEXT = REPO_ROOT / "assets" / "long-text" / "python-stdlib-docs.txt"
INSTRUCTION = "Summarize the following documentation in one sentence.\n\n"
MAX_LENGTHS = 12


class SweepError(ValueError):
    """A sweep that cannot be built (bad lengths, no tokenizer); its text is the user's message."""


@dataclass(frozen=True)
class SweepPrompt:
    target: int  # the length asked for, in tokens of the templated prompt
    prompt: str  # the user prompt (the runtimes read it templated)
    tokens: int  # the templated prompt's tokens, as the model folder's tokenizer counts them


def parse_lengths(text: str) -> list[int]:
    """``"128,512,2k"`` -> [128, 512, 2048]: ascending, distinct, each at least 16 tokens."""
    lengths = []
    for item in (part.strip().lower() for part in text.split(",")):
        if not item:
            continue
        scale = 1024 if item.endswith("k") else 1
        try:
            value = int(float(item.removesuffix("k")) * scale)
        except ValueError:
            raise SweepError(f"--sweep takes prompt lengths in tokens, e.g. 128,512,2k; got {item!r}"
                             ) from None
        if value < 16:
            raise SweepError(f"--sweep lengths must be at least 16 tokens, got {item!r}")
        lengths.append(value)
    if not lengths:
        raise SweepError("--sweep needs at least one prompt length, e.g. 128,512,2k")
    if len(set(lengths)) > MAX_LENGTHS:
        raise SweepError(f"--sweep takes at most {MAX_LENGTHS} lengths")
    return sorted(set(lengths))


def build_prompts(model_dir: Path, lengths: Sequence[int], system_prompt: str | None, max_new_tokens: int,
                  context: int | None, text: str | None = None) -> tuple[list[SweepPrompt], list[str]]:
    """The sweep's prompts, and a note for each length left out (too long for the context or the
    shipped text)."""
    text = text if text is not None else LONG_TEXT.read_text(encoding="utf-8")

    def templated_tokens(prompt: str) -> int:
        count = count_prompt_tokens(model_dir, render_prompt(model_dir, prompt, system_prompt))
        if count is None:
            raise SweepError(f"{model_dir.name} has no tokenizer.json this version can read: the sweep "
                             "cannot cut prompts to a number of tokens for it")
        return count

    overhead = templated_tokens(INSTRUCTION)
    available = templated_tokens(INSTRUCTION + text)
    prompts, skipped = [], []
    for target in lengths:
        if context and target + max_new_tokens > context:
            skipped.append(f"{target:,} tokens: with {max_new_tokens:,} new tokens it exceeds the model's "
                           f"context of {context:,}")
            continue
        if target > available:
            skipped.append(f"{target:,} tokens: longer than the shipped text ({available:,} tokens here)")
            continue
        if target <= overhead:
            skipped.append(f"{target:,} tokens: the template and instruction alone take {overhead:,}")
            continue
        body = target - overhead
        prompt = INSTRUCTION + cut_to_tokens(model_dir, text, body)
        tokens = templated_tokens(prompt)
        if tokens != target:  # the cut's edges can merge or split a token: correct once
            body += target - tokens
            prompt = INSTRUCTION + cut_to_tokens(model_dir, text, body)
            tokens = templated_tokens(prompt)
        prompts.append(SweepPrompt(target, prompt, tokens))
    return prompts, skipped


FIGURES = ("prompt_tokens", "ttft_s", "prefill_tokens_per_s", "decode_tokens_per_s")


def sweep_rows(records: Sequence[RunRecord], prompts: Sequence[SweepPrompt]) -> list[dict]:
    """One row per lane and length, medians over its measured runs that succeeded."""
    rows = []
    for (backend, device, precision), lane in by_lane(records).items():
        for index, prompt in enumerate(prompts):
            runs = [r for r in lane if r.prompt_index == index]
            good = [r for r in runs if r.ok]
            row: dict = {"backend": backend, "device": device, "precision": precision,
                         "target_tokens": prompt.target, "runs": len(good),
                         "error": next((r.error.splitlines()[0][:70] for r in runs if not r.ok), "")}
            for name in FIGURES:
                row[name] = stats.median([getattr(r, name) for r in good if getattr(r, name) is not None])
            rows.append(row)
    return rows


def format_sweep(rows: Sequence[dict]) -> str:
    header = ["backend", "device", "precision", "prompt tok", "TTFT ms", "prefill tok/s", "decode tok/s",
              "runs", "note"]
    table = [header]
    for row in rows:
        table.append([
            row["backend"], row["device"] or "-", row["precision"] or "-", stats.fmt(row["prompt_tokens"], 0),
            stats.fmt(row["ttft_s"], 1, 1000), stats.fmt(row["prefill_tokens_per_s"], 0),
            stats.fmt(row["decode_tokens_per_s"]), str(row["runs"]), row["error"],
        ])
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
             for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write_chart(rows: Sequence[dict], path: Path, title: str) -> ChartFile:
    """``sweep_figure`` as a self-contained HTML file (plotly.js embedded: it opens offline) or a
    PNG (``chart_files.write_figure``)."""
    return write_figure(sweep_figure(rows, title), path)


def sweep_figure(rows: Sequence[dict], title: str) -> Any:
    """Prefill and decode tok/s against prompt tokens, one line per lane (the CLI's file and the
    page's chart)."""
    import plotly.express as px
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=("prefill tok/s", "decode tok/s"))
    lanes = list(dict.fromkeys((r["backend"], r["device"], r["precision"]) for r in rows))
    palette = px.colors.qualitative.Plotly
    for index, lane in enumerate(lanes):
        mine = [r for r in rows if (r["backend"], r["device"], r["precision"]) == lane and r["prompt_tokens"]]
        name = " ".join(part for part in lane if part)
        colour = palette[index % len(palette)]  # one lane, one colour in both plots (the legend's)
        for column, metric in ((1, "prefill_tokens_per_s"), (2, "decode_tokens_per_s")):
            figure.add_trace(go.Scatter(x=[r["prompt_tokens"] for r in mine], y=[r[metric] for r in mine],
                                        mode="lines+markers", name=name, legendgroup=name,
                                        line={"color": colour}, marker={"color": colour},
                                        showlegend=column == 1), row=1, col=column)
    figure.update_xaxes(title_text="prompt tokens", type="log")
    figure.update_layout(title=title, height=480, width=1100)
    return figure
