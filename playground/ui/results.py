"""The session's results table and its CSV / JSON downloads (the engine's RunRecords, as is)."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

from playground.engine.records import RunRecord

# (column shown, record field, digits) — the table is for reading; downloads carry every field.
COLUMNS: list[tuple[str, str, int | None]] = [
    ("backend", "backend", None),
    ("device", "device", None),
    ("precision", "precision", None),
    ("mode", "mode", None),
    ("run", "run", None),
    ("prompt tokens", "prompt_tokens", None),
    ("new tokens", "new_tokens", None),
    ("TTFT (s)", "ttft_s", 3),
    ("decode tok/s", "decode_tokens_per_s", 1),
    ("end-to-end (s)", "e2e_s", 2),
    ("load (s)", "load_s", 2),
    ("convert (s)", "convert_s", 1),
    ("peak RSS (MB)", "peak_rss_mb", 0),
    ("vs reference", "reference", None),
    ("agree %", "agreement_pct", 1),
    ("1st diff", "first_divergence", None),
    ("similarity", "text_similarity", 2),
    ("answer check", "agreement_flag", None),
    ("stopped", "stopped", None),
    ("error", "error", None),
]
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


def table_rows(rows: list[dict]) -> list[list]:
    table = []
    for row in rows:
        line = []
        for _, name, digits in COLUMNS:
            value = answer_check(row) if name == "agreement_flag" else row.get(name)
            if digits is not None and isinstance(value, (int, float)):
                value = round(float(value), digits) if digits else round(float(value))
            line.append("" if value is None else value)
        table.append(line)
    return table


def export_files(rows: list[dict], folder: Path | None = None) -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.json`` into a fresh temp folder gradio may serve."""
    folder = folder or Path(tempfile.mkdtemp(prefix="playground-results-"))
    fields = ["started_at", *RunRecord.field_names()]
    csv_path = folder / "results.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:  # token ids as one space-separated cell
            writer.writerow({**row, "token_ids": " ".join(map(str, row.get("token_ids") or []))})
    json_path = folder / "results.json"
    json_path.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    return csv_path, json_path
