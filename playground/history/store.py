"""The history database: every comparison's records in SQLite, scoped to the owner that ran it.

One file (``<data dir>/history.sqlite3``), stdlib ``sqlite3`` only. A comparison is a row of
``comparisons`` (owner, model, when, where from, free-form details such as the prompts); its records
are rows of ``records``, each the whole ``RunRecord.to_dict()`` as JSON beside the few columns that
are filtered on (backend, device, precision, model). A metric added to ``RunRecord`` is therefore
stored, listed and exported with no change here; a stored field that a later ``RunRecord`` no longer
declares comes back in ``extra``.

Privacy is structural: every query takes the owner and has ``owner = ?`` in its WHERE clause, so
no call can list, export or delete another owner's rows. Every value reaches SQLite as a bound
parameter, never as SQL text.

Each call opens its own connection (the app calls from gradio's worker threads, the CLI from its
own process, at the same time): WAL journal, a busy timeout, and writes in ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import datetime
from pathlib import Path

from playground.engine.records import RunRecord
from playground.history.exports import LEAD_FIELDS, write_exports
from playground.history.filters import HistoryError, HistoryFilter, parse_time
from playground.history.limits import retention
from playground.history.location import data_root
from playground.history.owners import BROWSER_PREFIX, check_owner

log = logging.getLogger(__name__)
DB_NAME = "history.sqlite3"
SCHEMA_VERSION = 1  # PRAGMA user_version; each step of MIGRATIONS brings a database one version up
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE comparisons (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            model TEXT NOT NULL,
            started_at REAL NOT NULL,  -- when the comparison started, Unix seconds
            saved_at REAL NOT NULL,    -- when it was stored (retention goes by this)
            source TEXT NOT NULL,      -- "app", "api", "cli"
            details TEXT NOT NULL      -- JSON object: prompts, settings, whatever the caller keeps
        )""",
        "CREATE INDEX comparisons_by_owner ON comparisons (owner, started_at)",
        "CREATE INDEX comparisons_by_model ON comparisons (owner, model, started_at)",
        "CREATE INDEX comparisons_by_saved ON comparisons (owner, saved_at)",
        """CREATE TABLE records (
            comparison_id TEXT NOT NULL REFERENCES comparisons (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            backend TEXT NOT NULL,
            device TEXT NOT NULL,
            precision TEXT NOT NULL,
            model TEXT NOT NULL,
            ok INTEGER NOT NULL,
            data TEXT NOT NULL,        -- JSON: RunRecord.to_dict()
            PRIMARY KEY (comparison_id, position)
        ) WITHOUT ROWID""",
        "CREATE INDEX records_by_backend ON records (backend, comparison_id)",
    ],
}
MAX_DETAIL_CHARS = 20_000  # a longer text in a comparison's details (a huge system prompt) is cut
MAX_ID_CHARS = 64
MAX_ROWS = 100_000
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # the session table's ``started_at`` (local time)
BUSY_TIMEOUT_S = 30.0


# -- inputs ---------------------------------------------------------------------------------------


def _ids(values: Iterable[object] | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, (str, bytes)):
        values = [values]
    ids = []
    for value in values:
        if not isinstance(value, str):
            raise HistoryError("A comparison id must be text.")
        if len(value) <= MAX_ID_CHARS:  # longer ones match nothing anyway
            ids.append(value)
        if len(ids) > MAX_ROWS:
            raise HistoryError(f"At most {MAX_ROWS} comparisons at once.")
    return ids


def _limit(value: object, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise HistoryError(f"A limit is a whole number from 1 to {most}.")
    return value


def _record_dict(record: RunRecord | Mapping) -> dict:
    if isinstance(record, RunRecord):
        return record.to_dict()
    if isinstance(record, Mapping):  # a row of the page's table: the same fields, stamped
        return {key: value for key, value in record.items() if key not in LEAD_FIELDS}
    raise HistoryError(f"Cannot store a {type(record).__name__} as a record.")


def _lane_text(data: Mapping, name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else "" if value is None else str(value)


def _bounded(value: object) -> object:
    """``value`` with every text longer than ``MAX_DETAIL_CHARS`` cut (marked with an ellipsis)."""
    if isinstance(value, str):
        return value if len(value) <= MAX_DETAIL_CHARS else value[:MAX_DETAIL_CHARS] + "…"
    if isinstance(value, Mapping):
        return {str(key)[:MAX_DETAIL_CHARS]: _bounded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_bounded(item) for item in value]
    return value


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def record_from_dict(data: Mapping) -> RunRecord:
    """A ``RunRecord`` from a stored (or exported JSON) row; fields it no longer declares go to ``extra``."""
    names = {f.name for f in fields(RunRecord)}
    known = {key: value for key, value in data.items() if key in names}
    unknown = {key: value for key, value in data.items() if key not in names and key not in LEAD_FIELDS}
    for name in ("backend", "device", "precision", "model"):
        known.setdefault(name, "")
    extra = known.get("extra")
    known["extra"] = {**(extra if isinstance(extra, dict) else {}), **unknown}
    return RunRecord(**known)


# -- results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lane:
    backend: str
    device: str
    precision: str

    @property
    def label(self) -> str:
        return ":".join(part for part in (self.backend, self.device, self.precision) if part)


@dataclass(frozen=True)
class ComparisonSummary:
    """One comparison as the History list shows it."""

    id: str
    owner: str
    model: str
    started_at: float
    source: str
    details: dict
    lanes: tuple[Lane, ...] = ()
    records: int = 0
    errors: int = 0

    @property
    def started_text(self) -> str:
        return _time_text(self.started_at)

    @property
    def backends(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(lane.backend for lane in self.lanes))


@dataclass(frozen=True)
class Facets:
    """What an owner's history holds: the choices of the model and backend filters."""

    models: list[str] = field(default_factory=list)
    backends: list[str] = field(default_factory=list)
    first: float | None = None
    last: float | None = None


# -- the store ------------------------------------------------------------------------------------


class HistoryStore:
    """The database at ``path`` (created, or migrated to ``SCHEMA_VERSION``, on first use).

    ``max_per_owner``: an owner's oldest comparisons beyond this many are deleted as new ones are
    saved (None: no limit), so one client cannot fill the disk."""

    def __init__(self, path: Path | str, max_per_owner: int | None = None) -> None:
        self.path = Path(path)
        self.max_per_owner = max_per_owner if max_per_owner is not None else retention("history").keep
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():  # private to this user, like the folder (WAL files follow suit)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        self._migrate()

    # -- connections

    # A failing database (disk full, a locked or corrupt file) raises HistoryError with its reason,
    # the one exception a caller catches to show a message instead of a traceback.

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise HistoryError(f"The history database {self.path} cannot be used: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable at checkpoints, never corrupt
        return conn

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._guard():
            conn = self._connect()
            try:
                yield conn
            finally:
                conn.close()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._guard():
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                conn.close()

    def _migrate(self) -> None:
        with self._writing() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise HistoryError(
                    f"{self.path} was written by a newer playground (schema {version}; this one reads "
                    f"up to {SCHEMA_VERSION}). Update the playground, or point PLAYGROUND_DATA_DIR elsewhere."
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {int(step)}")
        with self._reading() as conn:
            conn.execute("PRAGMA journal_mode = WAL")  # readers do not wait for a writer

    def schema_version(self) -> int:
        with self._reading() as conn:
            return conn.execute("PRAGMA user_version").fetchone()[0]

    # -- writing

    def save_comparison(
        self,
        records: Iterable[RunRecord | Mapping],
        *,
        owner: str,
        model: str | None = None,
        started_at: float | datetime | str | None = None,
        source: str = "app",
        details: Mapping | None = None,
    ) -> str | None:
        """Store one finished (or stopped) comparison's records; returns its id (None: no records).

        ``started_at``: Unix seconds (``time.time()`` when it started) or a datetime; default now.
        ``details``: JSON-able facts the records do not carry (the prompts, the settings)."""
        owner = check_owner(owner)
        rows = [_record_dict(record) for record in records]
        if not rows:
            return None
        model = model if model is not None else _lane_text(rows[0], "model")
        if not isinstance(model, str) or not isinstance(source, str):
            raise HistoryError("The model and the source of a comparison are text.")
        started = parse_time(started_at, "start time") if started_at is not None else time.time()
        comparison_id = secrets.token_hex(16)
        kept = _dumps(_bounded(dict(details or {})))
        lanes = [
            (comparison_id, position, _lane_text(row, "backend"), _lane_text(row, "device"),
             _lane_text(row, "precision"), _lane_text(row, "model"), int(not row.get("error")), _dumps(row))
            for position, row in enumerate(rows)
        ]
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO comparisons (id, owner, model, started_at, saved_at, source, details) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (comparison_id, owner, model, started, time.time(), source, kept),
            )
            conn.executemany(
                "INSERT INTO records (comparison_id, position, backend, device, precision, model, ok, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                lanes,
            )
            if self.max_per_owner is not None:
                conn.execute(
                    "DELETE FROM comparisons WHERE owner = ? AND id NOT IN ("
                    " SELECT id FROM comparisons WHERE owner = ? ORDER BY saved_at DESC, rowid DESC LIMIT ?)",
                    (owner, owner, self.max_per_owner),
                )
        return comparison_id

    def delete_comparison(self, owner: str, comparison_id: str) -> bool:
        """Delete one of ``owner``'s comparisons; False when ``owner`` has none with that id."""
        owner = check_owner(owner)
        ids = _ids([comparison_id])
        if not ids:
            return False
        with self._writing() as conn:
            cursor = conn.execute("DELETE FROM comparisons WHERE owner = ? AND id = ?", (owner, ids[0]))
            return cursor.rowcount > 0

    def delete_all(self, owner: str) -> int:
        """Delete every comparison of ``owner``; returns how many."""
        owner = check_owner(owner)
        with self._writing() as conn:
            return conn.execute("DELETE FROM comparisons WHERE owner = ?", (owner,)).rowcount

    def prune_anonymous(self, older_than_s: float | None = None, now: float | None = None) -> int:
        """Delete anonymous browser owners' comparisons saved more than ``older_than_s`` ago (default:
        the history retention's age); logins' and the CLI's history stays. Returns how many."""
        age = older_than_s if older_than_s is not None else retention("history").max_age_s
        if age is None:
            return 0
        cutoff = (now if now is not None else time.time()) - age
        with self._writing() as conn:
            return conn.execute(
                "DELETE FROM comparisons WHERE substr(owner, 1, ?) = ? AND saved_at < ?",
                (len(BROWSER_PREFIX), BROWSER_PREFIX, cutoff),
            ).rowcount

    # -- reading

    @staticmethod
    def _where(owner: str, filters: HistoryFilter, ids: list[str] | None) -> tuple[list[str], list]:
        clauses, params = ["c.owner = ?"], [owner]
        if filters.model:
            clauses.append("c.model = ?")
            params.append(filters.model)
        if filters.since is not None:
            clauses.append("c.started_at >= ?")
            params.append(filters.since)
        if filters.until is not None:
            clauses.append("c.started_at < ?")
            params.append(filters.until)
        if ids is not None:
            clauses.append("c.id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(ids))
        return clauses, params

    def comparisons(
        self, owner: str, filters: HistoryFilter | None = None, ids: Sequence[str] | None = None,
        limit: int = 200, offset: int = 0,
    ) -> list[ComparisonSummary]:
        """``owner``'s comparisons, newest first; a backend filter keeps those with a lane of it."""
        owner = check_owner(owner)
        filters = filters or HistoryFilter()
        limit = _limit(limit, MAX_ROWS)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise HistoryError("An offset is a whole number >= 0.")
        clauses, params = self._where(owner, filters, _ids(ids))
        if filters.backend:
            clauses.append("EXISTS (SELECT 1 FROM records b WHERE b.comparison_id = c.id AND b.backend = ?)")
            params.append(filters.backend)
        with self._reading() as conn:
            found = conn.execute(
                "SELECT c.id, c.owner, c.model, c.started_at, c.source, c.details FROM comparisons c "
                f"WHERE {' AND '.join(clauses)} ORDER BY c.started_at DESC, c.rowid DESC LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
            lanes: dict[str, list[tuple]] = {row[0]: [] for row in found}
            for comparison_id, backend, device, precision, ok in conn.execute(
                "SELECT comparison_id, backend, device, precision, ok FROM records "
                "WHERE comparison_id IN (SELECT value FROM json_each(?)) ORDER BY comparison_id, position",
                (json.dumps(list(lanes)),),
            ):
                lanes[comparison_id].append((Lane(backend, device, precision), ok))
        summaries = []
        for comparison_id, row_owner, model, started, source, details in found:
            got = lanes[comparison_id]
            summaries.append(ComparisonSummary(
                comparison_id, row_owner, model, started, source, _loads_object(details),
                tuple(dict.fromkeys(lane for lane, _ in got)), len(got), sum(1 for _, ok in got if not ok),
            ))
        return summaries

    def rows(
        self, owner: str, filters: HistoryFilter | None = None, ids: Sequence[str] | None = None,
        limit: int = MAX_ROWS,
    ) -> list[dict]:
        """``owner``'s records as the page's table rows (``RunRecord.to_dict()`` plus ``comparison``
        and ``started_at``), newest comparison first, each comparison's in the order they ran. A
        backend filter keeps that backend's records only."""
        owner = check_owner(owner)
        filters = filters or HistoryFilter()
        limit = _limit(limit, MAX_ROWS)
        clauses, params = self._where(owner, filters, _ids(ids))
        if filters.backend:
            clauses.append("r.backend = ?")
            params.append(filters.backend)
        with self._reading() as conn:
            found = conn.execute(
                "SELECT c.id, c.started_at, r.data FROM records r "
                "JOIN comparisons c ON c.id = r.comparison_id "
                f"WHERE {' AND '.join(clauses)} ORDER BY c.started_at DESC, c.rowid DESC, r.position LIMIT ?",
                (*params, limit),
            ).fetchall()
        rows = []
        for comparison_id, started, data in found:
            row = {"comparison": comparison_id, "started_at": _time_text(started)}
            row.update(_loads_object(data))
            rows.append(row)
        return rows

    def records(
        self, owner: str, filters: HistoryFilter | None = None, ids: Sequence[str] | None = None,
        limit: int = MAX_ROWS,
    ) -> list[RunRecord]:
        """The same selection as ``rows``, as ``RunRecord`` objects."""
        return [record_from_dict(row) for row in self.rows(owner, filters, ids, limit)]

    def facets(self, owner: str) -> Facets:
        """The models and backends in ``owner``'s history (the filters' choices), and its time span."""
        owner = check_owner(owner)
        with self._reading() as conn:
            models = [row[0] for row in conn.execute(
                "SELECT DISTINCT model FROM comparisons WHERE owner = ? ORDER BY model", (owner,))]
            backends = [row[0] for row in conn.execute(
                "SELECT DISTINCT r.backend FROM records r JOIN comparisons c ON c.id = r.comparison_id "
                "WHERE c.owner = ? ORDER BY r.backend", (owner,))]
            first, last = conn.execute(
                "SELECT min(started_at), max(started_at) FROM comparisons WHERE owner = ?", (owner,)
            ).fetchone()
        return Facets(models, backends, first, last)

    def count(self, owner: str) -> int:
        owner = check_owner(owner)
        with self._reading() as conn:
            return conn.execute("SELECT count(*) FROM comparisons WHERE owner = ?", (owner,)).fetchone()[0]

    def export(
        self, owner: str, filters: HistoryFilter | None = None, ids: Sequence[str] | None = None,
        folder: Path | None = None,
    ) -> tuple[Path, Path]:
        """``owner``'s selected records as ``history.csv`` and ``history.json`` in a new export folder
        (see ``playground.history.exports``). Raises ``HistoryError`` when nothing matches."""
        rows = self.rows(owner, filters, ids)
        if not rows:
            raise HistoryError("No records match: nothing to export.")
        return write_exports(rows, folder, stem="history")


def _time_text(seconds: float) -> str:
    return time.strftime(TIME_FORMAT, time.localtime(seconds))


def _loads_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


_stores: dict[Path, HistoryStore] = {}
_stores_lock = threading.Lock()


def default_path() -> Path:
    return data_root() / DB_NAME


def default_store() -> HistoryStore:
    """The store at ``<data dir>/history.sqlite3`` (one object per path, shared by threads)."""
    path = default_path()
    with _stores_lock:
        store = _stores.get(path)
        if store is None:
            store = _stores[path] = HistoryStore(path)
        return store


# What a comparison's records do not say about it, kept as its details (the History view shows the
# prompt; a re-run could start from the settings).
REQUEST_DETAILS = ("prompts", "system_prompt", "settings", "mode", "warmup", "runs", "reference")


def request_details(request: object) -> dict:
    """The ``REQUEST_DETAILS`` fields of a ``ComparisonRequest`` (dataclasses as dicts)."""
    details = {}
    for name in REQUEST_DETAILS:
        value = getattr(request, name, None)
        details[name] = asdict(value) if is_dataclass(value) and not isinstance(value, type) else value
    return details


def save_to_history(
    records: Iterable[RunRecord | Mapping],
    *,
    owner: str,
    started_at: float | datetime | str | None = None,
    source: str = "app",
    request: object = None,
    store: HistoryStore | None = None,
) -> str | None:
    """The hook of the app and the CLI: store a finished comparison in the default store; returns
    its id. A failure is logged and returns None: results on the screen matter more than their copy."""
    try:
        return (store or default_store()).save_comparison(
            records, owner=owner, started_at=started_at, source=source,
            details=request_details(request) if request is not None else None,
        )
    except (HistoryError, OSError):
        log.exception("the comparison could not be saved to the history")
        return None
