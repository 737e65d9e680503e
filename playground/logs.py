"""Logging for the app and the benchmark CLI, configured once at their entry points.

Every module logs to its own ``logging.getLogger(__name__)``; this sends those records to a log
file under the cache's ``logs`` folder (where the workers' logs are too), so a failure's
traceback is kept even though the page shows one sentence. What a command prints for its user
stays ``print``.

The folder is bounded: configuring cleans it (``playground.history.retention.clean_logs``: the
newest ``PLAYGROUND_LOGS_KEEP`` files, none older than ``PLAYGROUND_LOGS_MAX_AGE_HOURS``, never one
in use), so the app and the CLI clean at start, and the app's janitor again periodically.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from playground.paths import cache_dir

FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
MAX_BYTES = 5 * 2**20  # then one older file is kept


def configure(name: str, console_level: int | None = None, clean: bool = True) -> Path:
    """Log ``playground.*`` at INFO to ``<cache>/logs/<name>.log``; with ``console_level``, also
    to stderr from that level. Returns the file's path. Calling it again replaces the handlers.
    ``clean``: apply the logs' retention limit to the folder first."""
    path = cache_dir("logs") / f"{name}.log"
    logger = logging.getLogger("playground")
    for handler in list(logger.handlers):
        if getattr(handler, "_playground", False):
            logger.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=1, encoding="utf-8")
    ]
    if console_level is not None:
        console = logging.StreamHandler()
        console.setLevel(console_level)
        handlers.append(console)
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._playground = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    if clean:
        clean_logs_now()
    return path


def clean_logs_now() -> int:
    """Apply the logs' retention limit; a failure is logged, never raised (logging must not stop
    the app). Returns how many files went."""
    from playground.history.retention import clean_logs  # history imports the engine: import late

    try:
        deleted = clean_logs()
    except Exception:
        logging.getLogger(__name__).exception("cleaning the log folder failed")
        return 0
    if deleted:
        logging.getLogger(__name__).info("deleted %d old log file(s)", len(deleted))
    return len(deleted)
