"""Download files (CSV / JSON of records) in a folder the app owns, one unguessable folder per export.

Under the data folder, not the system temp folder: only this user can list it, the app decides
how long files stay (``playground.history.retention``), and a file's URL holds 144 random bits,
so holding one export's link reveals no other. The app serves this folder alone
(``allowed_paths=[str(exports_root())]``).
"""

from __future__ import annotations

import csv
import json
import secrets
from pathlib import Path

from playground.engine.records import JSON_ONLY, RunRecord
from playground.history.location import data_dir

FOLDER = "exports"
LEAD_FIELDS = ("comparison", "started_at")  # which comparison a row is from, and when it started


def exports_root() -> Path:
    return data_dir(FOLDER)


def new_export_folder() -> Path:
    """A fresh folder with a random name (``secrets``), private to this user."""
    folder = exports_root() / secrets.token_urlsafe(18)
    folder.mkdir(mode=0o700)
    return folder


def csv_fields(rows: list[dict], record_type: type[RunRecord] = RunRecord) -> list[str]:
    lead = [name for name in LEAD_FIELDS if any(name in row for row in rows)]
    return [*lead, *(name for name in record_type.field_names() if name not in JSON_ONLY)]


def write_exports(
    rows: list[dict], folder: Path | None = None, record_type: type[RunRecord] = RunRecord,
    stem: str = "results",
) -> tuple[Path, Path]:
    """``<stem>.csv`` (every field but the per-token times, token ids as one space-separated cell)
    and ``<stem>.json`` (the rows as they are) in ``folder``, a new export folder by default."""
    folder = folder or new_export_folder()
    csv_path = folder / f"{stem}.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=csv_fields(rows, record_type), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "token_ids": " ".join(map(str, row.get("token_ids") or []))})
    json_path = folder / f"{stem}.json"
    json_path.write_text(json.dumps(rows, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return csv_path, json_path
