"""What a History query may ask for, validated before it reaches SQLite (a shared page is hostile).

A filter string is a value bound to ``?``, never SQL, and matched exactly (no LIKE wildcards); its
length is bounded, and dates are parsed here, so a bad one gets a message instead of a traceback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

MAX_FILTER_CHARS = 500
MAX_TIME_CHARS = 40  # the longest date / time text parsed (YYYY-MM-DD HH:MM:SS.ffffff+HH:MM fits)


class HistoryError(ValueError):
    """A message for the user: a malformed filter, nothing to export, a database this version cannot read."""


def parse_time(value: object, what: str, end_of_day: bool = False) -> float | None:
    """Unix seconds from a number, a datetime, a date, or text (``YYYY-MM-DD[ HH:MM[:SS]]``, local
    time); a bare day given as an end means the end of that day. None / "" mean no bound."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise HistoryError(f"The {what} must be a date or a time.")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or not 0 <= value < 1e11:
            raise HistoryError(f"The {what} is not a usable time.")
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, date):
        day = datetime(value.year, value.month, value.day)
        return (day + timedelta(days=1) if end_of_day else day).timestamp()
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_TIME_CHARS:
            raise HistoryError(f"The {what} is not a date (YYYY-MM-DD).")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise HistoryError(f"The {what} {text!r} is not a date (YYYY-MM-DD) or time "
                               "(YYYY-MM-DD HH:MM).") from None
        if end_of_day and len(text) <= 10:
            parsed += timedelta(days=1)
        return parsed.timestamp()
    raise HistoryError(f"The {what} must be a date or a time.")


def _text_filter(value: object, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise HistoryError(f"The {what} filter must be text.")
    if len(value) > MAX_FILTER_CHARS:
        raise HistoryError(f"The {what} filter is at most {MAX_FILTER_CHARS} characters.")
    return value.strip()


@dataclass(frozen=True)
class HistoryFilter:
    """Which comparisons / records to show: exact model and backend names ("" = any) and a time range
    (``since`` inclusive, ``until`` exclusive; days as text count whole, so until "2026-12-02" includes
    that day). Validated on creation; raises ``HistoryError`` with the message to show."""

    model: str = ""
    backend: str = ""
    since: Any = None
    until: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", _text_filter(self.model, "model"))
        object.__setattr__(self, "backend", _text_filter(self.backend, "backend"))
        since = parse_time(self.since, "start date")
        until = parse_time(self.until, "end date", end_of_day=True)
        if since is not None and until is not None and since >= until:
            raise HistoryError("The date range ends before it starts.")
        object.__setattr__(self, "since", since)
        object.__setattr__(self, "until", until)
