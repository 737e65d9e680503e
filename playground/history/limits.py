"""How much piles up before it is cleaned: one ``Retention`` per kind, set by the machine's owner.

Each kind reads ``PLAYGROUND_<KIND>_KEEP`` (how many of the newest to keep) and
``PLAYGROUND_<KIND>_MAX_AGE_HOURS`` (older ones go); ``none`` lifts that limit. A malformed value is
reported in the log and the default used: a typo in a retention setting must not stop the app.

- ``exports``: download folders (a page's CSV / JSON), each entry one export;
- ``logs``: the app's, the CLI's and the workers' log files;
- ``history``: ``keep`` comparisons per owner (every owner); ``max_age`` for anonymous browser
  owners only (a stranger's history on a shared page does not last forever; a login's and the
  CLI's do).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)
HOUR_S = 3600.0
DAY_S = 24 * HOUR_S


@dataclass(frozen=True)
class Retention:
    keep: int | None  # the newest this many stay (None: no count limit)
    max_age_s: float | None  # older than this goes (None: no age limit)

    def __post_init__(self) -> None:
        if self.keep is not None and (isinstance(self.keep, bool) or not isinstance(self.keep, int)
                                      or self.keep < 0):
            raise ValueError(f"keep must be a whole number >= 0, not {self.keep!r}")
        if self.max_age_s is not None and (
            isinstance(self.max_age_s, bool) or not isinstance(self.max_age_s, (int, float))
            or not math.isfinite(self.max_age_s) or self.max_age_s < 0
        ):
            raise ValueError(f"max_age_s must be a number of seconds >= 0, not {self.max_age_s!r}")


DEFAULTS: dict[str, Retention] = {
    "exports": Retention(keep=100, max_age_s=1 * DAY_S),
    "logs": Retention(keep=200, max_age_s=14 * DAY_S),
    "history": Retention(keep=1000, max_age_s=30 * DAY_S),
}


def env_names(kind: str) -> tuple[str, str]:
    upper = kind.upper()
    return f"PLAYGROUND_{upper}_KEEP", f"PLAYGROUND_{upper}_MAX_AGE_HOURS"


def retention(kind: str) -> Retention:
    """The limits of ``kind`` (see the module's docstring), from the environment or the defaults."""
    default = DEFAULTS[kind]
    keep_name, age_name = env_names(kind)
    keep = _read(keep_name, default.keep, int, 1.0)
    age = _read(age_name, default.max_age_s, float, HOUR_S)
    return Retention(keep=None if keep is None else int(keep), max_age_s=age)


def _read(name: str, default, kind: type, scale: float):
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if text.lower() == "none":
        return None
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < 0:
        log.warning("%s=%r is not a number >= 0 (or 'none'); using %r", name, text[:40], default)
        return default
    return value * scale if kind is float else value
