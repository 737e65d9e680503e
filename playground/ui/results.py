"""The session's results table and its CSV / JSON downloads (the engine's RunRecords, as is), and
the last comparison's answer quality over its prompts."""

from __future__ import annotations

from collections.abc import Sequence

from playground.engine.answer_quality import lane_quality
from playground.engine.records import RunRecord, metric_fields

Column = tuple[str, str, int | None]  # (column shown, record field, digits)
# The table is for reading; downloads carry every field. Around the declared metrics: what the
# lane is, and how its answer compares.
LANE_COLUMNS: list[Column] = [
    ("backend", "backend", None),
    ("device", "device", None),
    ("precision", "precision", None),
    ("mode", "mode", None),
    ("run", "run", None),
]
ANSWER_COLUMNS: list[Column] = [
    ("vs reference", "reference", None),
    ("agree %", "agreement_pct", 1),
    ("1st diff", "first_divergence", None),
    ("similarity", "text_similarity", 2),
    ("answer check", "agreement_flag", None),
    ("stopped", "stopped", None),
    ("error", "error", None),
]


def columns(record_type: type = RunRecord) -> list[Column]:
    """The results table's columns: the lane, every metric declared for the table, the answer."""
    metrics = [(m.title, f.name, m.digits) for f, m in metric_fields(record_type) if m.table]
    return [*LANE_COLUMNS, *metrics, *ANSWER_COLUMNS]


COLUMNS = columns()
HEADERS = [column for column, _, _ in COLUMNS]


def answer_check(row: dict) -> str:
    """The engine's verdict on the answer, in words: a flag stands out, a note explains."""
    note = row.get("agreement_note") or ""
    if row.get("agreement_flag"):
        return f"⚠ FLAGGED: {note}"
    return note


def record_dicts(records: list[RunRecord], started_at: str) -> list[dict]:
    """Records as plain dicts (what gr.State keeps), stamped with when the comparison started."""
    rows = []
    for record in records:
        row = record.to_dict()
        row["started_at"] = started_at
        rows.append(row)
    return rows


def table_rows(rows: list[dict], record_type: type = RunRecord) -> list[list]:
    table = []
    shown = columns(record_type)
    for row in rows:
        line = []
        for _, name, digits in shown:
            value = answer_check(row) if name == "agreement_flag" else row.get(name)
            if digits is not None and isinstance(value, (int, float)):
                value = round(float(value), digits) if digits else round(float(value))
            line.append("" if value is None else value)
        table.append(line)
    return table


def quality_markdown(records: list[RunRecord], prompts: Sequence[str]) -> str:
    """The last comparison's answer quality per lane over its prompts (``engine.answer_quality``),
    as a small table under the results; "" for a single prompt (the rows above say it all)."""
    qualities = lane_quality(records)
    if len(prompts) < 2 or not qualities:
        return ""
    references = ", ".join(sorted({q.name for q in qualities if q.reference})) or "the reference lane"
    lines = [f"**Answer quality over the {len(prompts)} prompts** of the last comparison, against "
             f"{references}: per prompt the median of its runs, then the mean over the prompts.", "",
             "| lane | mean agree % | mean similarity | worst prompt | flagged | not computed |",
             "|---|---|---|---|---|---|"]
    for quality in qualities:
        if quality.reference:
            flagged = f"{len(quality.flagged)}/{len(quality.prompts)}"
            lines.append(f"| {quality.name} | reference | | | {flagged} | |")
            continue
        worst = quality.worst
        shown = "" if worst is None else (f"#{worst.prompt_index + 1} ({worst.agreement_pct:.1f} %): "
                                          f"{_cell(prompts[worst.prompt_index])}")
        missing = "; ".join(f"#{p.prompt_index + 1}: {_cell(p.note)}" for p in quality.not_computed)
        lines.append(f"| {quality.name} | {_number(quality.mean_agreement_pct, 1)} | "
                     f"{_number(quality.mean_similarity, 2)} | {shown} | "
                     f"{len(quality.flagged)}/{len(quality.prompts)} | {missing} |")
    return "\n".join(lines)


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _cell(text: str, limit: int = 60) -> str:
    """Text safe in a markdown table cell (the prompt comes from the user)."""
    text = " ".join(text.split()).replace("|", "/")
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return "".join("\\" + c if c in "\\`*_[]<>#" else c for c in text)
