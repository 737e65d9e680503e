"""Cleaning what piles up: export folders, log files, anonymous history (limits in ``limits``).

Run at start (``logs.configure`` cleans the logs; the app's ``start_janitor`` cleans everything at
once) and then every ``interval_s`` by the janitor thread. Each kind keeps its newest ``keep``
entries and drops what is older than ``max_age_s``; what is in use is never deleted: the log files
this process writes, and the logs of workers whose parent process is still alive (their names carry
that pid), so a running app's worker log survives any limit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from playground.history.exports import exports_root
from playground.history.limits import Retention, retention
from playground.paths import cache_dir

log = logging.getLogger(__name__)
LEGACY_EXPORT_PREFIX = "playground-results-"  # ui.results' folders under the system temp folder
LOG_FILE = re.compile(r".+\.log(\.\d+)?")
WORKER_LOG_PID = re.compile(r"-(\d+)-\d+\.log(\.\d+)?$")  # worker-<label>-<parent pid>-<ns>.log
OWNER_PID = re.compile(r"-(\d+)\.log(\.\d+)?$")  # e.g. fidelity-app-<pid>.log
DEFAULT_INTERVAL_S = 15 * 60.0


def _mtime(path: Path) -> float | None:
    try:
        return path.lstat().st_mtime
    except OSError:
        return None


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("retention: cannot delete %s: %s", path, exc)
        return False
    return True


def prune(
    entries: Iterable[Path], limit: Retention, now: float | None = None,
    in_use: Callable[[Path], bool] = lambda path: False,
) -> list[Path]:
    """Delete the entries (files or folders) beyond ``limit``: all but the newest ``keep`` (by
    modification time), and any older than ``max_age_s``. Entries ``in_use`` stay (and count among
    the kept). Returns what was deleted, oldest last."""
    now = time.time() if now is None else now
    dated = [(mtime, path) for path in entries if (mtime := _mtime(path)) is not None]
    dated.sort(key=lambda item: item[0], reverse=True)
    deleted = []
    for index, (mtime, path) in enumerate(dated):
        over_count = limit.keep is not None and index >= limit.keep
        too_old = limit.max_age_s is not None and now - mtime > limit.max_age_s
        if (over_count or too_old) and not in_use(path) and _remove(path):
            deleted.append(path)
    return deleted


# -- exports --------------------------------------------------------------------------------------


def export_entries() -> list[Path]:
    """Our export folders: the data folder's, and the old ones ``ui.results`` left in the temp folder."""
    entries = [path for path in exports_root().iterdir() if not path.name.startswith(".")]
    with contextlib.suppress(OSError):
        temp = Path(tempfile.gettempdir())
        entries += [path for path in temp.glob(LEGACY_EXPORT_PREFIX + "*")
                    if path.is_dir() and not path.is_symlink() and _ours(path)]
    return entries


def _ours(path: Path) -> bool:
    """Made by this user (the temp folder is shared with other accounts on POSIX)."""
    getuid = getattr(os, "getuid", None)
    return getuid is None or path.lstat().st_uid == getuid()


def clean_exports(limit: Retention | None = None, now: float | None = None) -> list[Path]:
    return prune(export_entries(), limit or retention("exports"), now)


# -- logs -----------------------------------------------------------------------------------------


def _open_logs() -> set[Path]:
    """The files this process's ``playground`` log handlers write."""
    paths = set()
    for handler in logging.getLogger("playground").handlers:
        name = getattr(handler, "baseFilename", None)
        if name:
            paths.add(Path(name).resolve())
    return paths


def _alive(pid: int) -> bool:
    return pid == os.getpid() or (pid > 0 and psutil.pid_exists(pid))


def log_in_use(path: Path, open_logs: set[Path] | None = None) -> bool:
    """A log this process writes, or one of a live process (a worker's parent, an app's own)."""
    if path.resolve() in (open_logs if open_logs is not None else _open_logs()):
        return True
    pattern = WORKER_LOG_PID if path.name.startswith("worker-") else OWNER_PID
    match = pattern.search(path.name)
    return bool(match) and _alive(int(match.group(1)))


def log_entries(folder: Path | None = None) -> list[Path]:
    folder = folder or cache_dir("logs")
    return [path for path in folder.iterdir() if path.is_file() and LOG_FILE.fullmatch(path.name)]


def clean_logs(
    limit: Retention | None = None, now: float | None = None, folder: Path | None = None
) -> list[Path]:
    open_logs = _open_logs()
    return prune(log_entries(folder), limit or retention("logs"), now,
                 in_use=lambda path: log_in_use(path, open_logs))


# -- all of it ------------------------------------------------------------------------------------


@dataclass
class Cleaned:
    exports: int = 0
    logs: int = 0
    history: int = 0


def clean_all(now: float | None = None) -> Cleaned:
    """One pass over every kind; a failure of one kind is logged and does not stop the others."""
    from playground.history.store import default_store  # the store imports exports, like us

    cleaned = Cleaned()
    for kind, clean in (
        ("exports", lambda: len(clean_exports(now=now))),
        ("logs", lambda: len(clean_logs(now=now))),
        ("history", lambda: default_store().prune_anonymous(now=now)),
    ):
        try:
            setattr(cleaned, kind, clean())
        except Exception:  # a full disk or a locked database must not take the app down
            log.exception("retention: cleaning %s failed", kind)
    if cleaned.exports or cleaned.logs or cleaned.history:
        log.info("retention: deleted %d export(s), %d log file(s), %d anonymous comparison(s)",
                 cleaned.exports, cleaned.logs, cleaned.history)
    return cleaned


class Janitor:
    """A daemon thread that runs ``clean_all`` now and every ``interval_s``; ``stop()`` ends it."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if not interval_s > 0:
            raise ValueError("The cleaning interval must be > 0 seconds.")
        self.interval_s = interval_s
        self.passes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> Janitor:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            clean_all()
            self.passes += 1
            if self._stop.wait(self.interval_s):
                return

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


def start_janitor(interval_s: float = DEFAULT_INTERVAL_S) -> Janitor:
    """Clean at start and then periodically (the app's hook)."""
    return Janitor(interval_s).start()
