"""What each backend panel says: a header and the live / final figures (engine numbers only)."""

from __future__ import annotations

from playground.engine.protocol import LaneState
from playground.engine.records import RunRecord, metric_fields
from playground.ui.live import LaneView
from playground.ui.phases import timeline_html


def badge(state: LaneState | str, text: str = "") -> str:
    """A colored state label (CSS ``state-<value>`` in page.py); plain text, so it reads the same
    without emoji fonts."""
    value = state.value if isinstance(state, LaneState) else state
    return f'<span class="state-badge state-{value}">{text or value}</span>'


def figure_lines(record: RunRecord) -> list[list[str]]:
    """The record's declared panel figures (``Metric.panel``), one list per panel line."""
    lines: list[list[str]] = [[], []]
    for spec, metric in metric_fields(type(record)):
        value = getattr(record, spec.name)
        if metric.panel is None or (not metric.panel_zero and not value):
            continue
        while len(lines) <= metric.panel_line:
            lines.append([])
        lines[metric.panel_line].append(_num(metric.panel, value, metric.unit, metric.digits))
    return lines


def agreement_markdown(record: RunRecord) -> str:
    """The answer's agreement with the reference run, as the engine judged it."""
    if not record.reference:
        return f"answer agreement: {_escape(record.agreement_note)}" if record.agreement_note else ""
    if record.agreement_note.startswith("reference"):
        note = record.agreement_note.removeprefix("reference").lstrip(";: ")
        return "answer agreement: **reference** for the other lanes" + (f" ({_escape(note)})" if note else "")
    parts = [f"agreement with `{record.reference}`:"]
    if record.agreement_pct is not None:
        divergence = "none" if record.first_divergence is None else f"token {record.first_divergence}"
        parts += [f"**{record.agreement_pct:.1f}%** of tokens", f"first difference: {divergence}"]
    parts.append(_num("text similarity", record.text_similarity, "", 2))
    line = " · ".join(filter(None, parts)).replace(": · ", ": ", 1)
    if record.agreement_note and not record.agreement_flag:
        line += f" ({_escape(record.agreement_note)})"
    return line


def header_markdown(lane: LaneView) -> str:
    record = lane.record
    device = (record.device if record else "") or lane.device or "auto device"
    precision = (record.precision if record else "") or lane.precision or "default precision"
    return f"### {lane.label}\n`{lane.backend}` · {device} · {precision}"


def metrics_markdown(lane: LaneView) -> str:
    message = lane.error if lane.state == "error" and lane.error else lane.message
    record = lane.record
    flagged = record is not None and record.ok and record.agreement_flag and lane.state is LaneState.DONE
    state = badge("flagged", "done: answer flagged") if flagged else badge(lane.state)
    lines = [state + (f" {_escape(_one_line(message))}" if message else "")]
    if record is not None and record.ok and flagged:
        lines.append(
            '<span class="agreement-warning">⚠ This answer looks broken: '
            f"{_escape(record.agreement_note)}</span>"
        )
    if record is not None and record.ok:
        figures = figure_lines(record)
        figures[1] += ["stopped early" if record.stopped else "", record.device_note]
        if record.perplexity is None and record.perplexity_note:
            figures[1].append(f"perplexity - ({_escape(record.perplexity_note)})")
        lines += [" · ".join(filter(None, line)) for line in figures]
        lines.append(timeline_html(record))  # conversion, load, prefill, decode on one time axis
        lines.append(agreement_markdown(record))
        if record.busy_machine:
            lines.append(f"**Busy machine:** other processes used {record.other_cpu_percent:.0f} % of the "
                         "CPU during this run, more than the thread budget leaves free; these figures "
                         "understate the runtime")
        if record.contended_host:
            lines.append(f"**Shared host:** this virtual machine's host took {record.host_steal_percent:.0f} "
                         "% of its CPU time during this run; these figures understate the runtime and "
                         "vary from run to run")
        if record.stalled:
            lines.append(f"**Stalled:** {_escape(record.stall_note)}")
    elif lane.tokens:
        lines.append(" · ".join(filter(None, [
            _num("TTFT ≈", lane.rates.first_tokens_s, "s", 2),
            _num("", lane.rates.rate(), "tok/s", 1),
            f"{lane.tokens} tokens in {lane.elapsed_s:.1f} s",
        ])))
    return "\n\n".join(lines)


def _escape(text: str) -> str:
    """Engine messages are plain text: keep their <, >, * and _ from turning into markup."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for char in "\\`*_[]#|":
        text = text.replace(char, "\\" + char)
    return text


def _num(name: str, value: float | None, unit: str, digits: int | None) -> str:
    if value is None:
        return ""
    shown = f"{value:,}" if digits is None else f"{value:,.{digits}f}"
    return f"{name} {shown} {unit}".strip()


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
