"""The history store, its owners, exports and retention: real SQLite and real files in a temp dir."""

from __future__ import annotations

import csv
import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from playground import logs
from playground.engine.records import JSON_ONLY, RunRecord, metric
from playground.history import owners, retention
from playground.history.exports import exports_root, new_export_folder
from playground.history.filters import MAX_FILTER_CHARS
from playground.history.limits import DAY_S, HOUR_S, Retention
from playground.history.limits import retention as retention_of
from playground.history.location import data_root
from playground.history.store import (
    MAX_DETAIL_CHARS,
    SCHEMA_VERSION,
    HistoryError,
    HistoryFilter,
    HistoryStore,
    default_store,
    record_from_dict,
)

ALICE, BOB = "user:alice", "user:bob"


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data folder and cache: nothing of the real user's is read or deleted."""
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PLAYGROUND_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(retention.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    for kind in ("EXPORTS", "LOGS", "HISTORY"):
        monkeypatch.delenv(f"PLAYGROUND_{kind}_KEEP", raising=False)
        monkeypatch.delenv(f"PLAYGROUND_{kind}_MAX_AGE_HOURS", raising=False)
    return tmp_path


def record(backend: str = "transformers", model: str = "demo", run: int = 1, **figures) -> RunRecord:
    figures.setdefault("decode_tokens_per_s", 40.0 + run)
    figures.setdefault("ttft_s", 0.05)
    figures.setdefault("text", f"answer of {backend} run {run}")
    figures.setdefault("token_ids", [1, 2, 3])
    return RunRecord(backend=backend, device="cpu", precision="fp32", model=model, run=run, **figures)


def new_store(tmp_path: Path, **options) -> HistoryStore:
    return HistoryStore(tmp_path / "data" / "history.sqlite3", **options)


# -- the store ------------------------------------------------------------------------------------


def test_saved_comparison_survives_a_restart(tmp_path):
    store = new_store(tmp_path)
    records = [record("transformers"), record("openvino-genai", error="boom")]
    started = time.time() - 60
    comparison = store.save_comparison(records, owner=ALICE, started_at=started, source="cli",
                                       details={"prompts": ["Hello"]})
    del store
    again = new_store(tmp_path)  # a new process would do the same: a new object on the same file
    [summary] = again.comparisons(ALICE)
    assert summary.id == comparison
    assert summary.model == "demo" and summary.source == "cli"
    assert summary.started_at == pytest.approx(started)
    assert summary.details == {"prompts": ["Hello"]}
    assert [lane.label for lane in summary.lanes] == ["transformers:cpu:fp32", "openvino-genai:cpu:fp32"]
    assert (summary.records, summary.errors) == (2, 1)
    assert again.records(ALICE) == records  # every field back, in order
    assert again.schema_version() == SCHEMA_VERSION


def test_a_new_metric_field_is_stored_without_changes(tmp_path):
    @dataclass
    class FutureRecord(RunRecord):
        joules_per_token: float | None = metric("J/token", digits=2)

    store = new_store(tmp_path)
    store.save_comparison([FutureRecord(backend="b", device="d", precision="p", model="m",
                                        joules_per_token=0.25)], owner=ALICE)
    [row] = store.rows(ALICE)
    assert row["joules_per_token"] == 0.25
    # Read back by today's RunRecord, which does not declare it: kept in ``extra``.
    assert store.records(ALICE)[0].extra == {"joules_per_token": 0.25}


def test_table_rows_of_the_page_are_accepted(tmp_path):
    store = new_store(tmp_path)
    row = {**record().to_dict(), "started_at": "2026-12-01 10:00:00"}
    store.save_comparison([row], owner=ALICE)
    assert store.records(ALICE) == [record()]


def test_nothing_to_save_saves_nothing(tmp_path):
    store = new_store(tmp_path)
    assert store.save_comparison([], owner=ALICE) is None
    assert store.count(ALICE) == 0


def test_filters_by_model_backend_and_dates(tmp_path):
    store = new_store(tmp_path)
    day = datetime(2026, 11, 20, 12, 0)
    store.save_comparison([record("transformers", "demo")], owner=ALICE, started_at=day)
    store.save_comparison([record("transformers", "smollm2"), record("openvino-genai", "smollm2")],
                          owner=ALICE, started_at=day + timedelta(days=1))
    store.save_comparison([record("onnxruntime-genai", "demo")], owner=ALICE,
                          started_at=day + timedelta(days=2))

    def models(**how) -> list[str]:
        return [s.model for s in store.comparisons(ALICE, HistoryFilter(**how))]

    assert models() == ["demo", "smollm2", "demo"]  # newest first
    assert models(model="smollm2") == ["smollm2"]
    assert models(backend="transformers") == ["smollm2", "demo"]
    assert models(since="2026-11-21") == ["demo", "smollm2"]
    assert models(until="2026-11-21") == ["smollm2", "demo"]  # a day as the end counts whole
    assert models(since="2026-11-21", until="2026-11-21") == ["smollm2"]
    assert models(since=day + timedelta(hours=1), until=(day + timedelta(days=1, hours=1)).timestamp()) \
        == ["smollm2"]
    assert models(model="demo", backend="onnxruntime-genai") == ["demo"]
    assert models(model="missing") == []
    # Records follow the same filter; a backend filter keeps that backend's records only.
    assert [r["backend"] for r in store.rows(ALICE, HistoryFilter(model="smollm2"))] \
        == ["transformers", "openvino-genai"]
    assert [r["model"] for r in store.rows(ALICE, HistoryFilter(backend="transformers"))] \
        == ["smollm2", "demo"]
    facets = store.facets(ALICE)
    assert facets.models == ["demo", "smollm2"]
    assert facets.backends == ["onnxruntime-genai", "openvino-genai", "transformers"]
    assert facets.first == pytest.approx(day.timestamp())


def test_listing_pages(tmp_path):
    store = new_store(tmp_path)
    ids = [store.save_comparison([record(run=n)], owner=ALICE, started_at=1_700_000_000 + n)
           for n in range(5)]
    assert [s.id for s in store.comparisons(ALICE, limit=2)] == ids[::-1][:2]
    assert [s.id for s in store.comparisons(ALICE, limit=2, offset=4)] == [ids[0]]


def test_owners_never_see_each_other(tmp_path):
    store = new_store(tmp_path)
    mine = store.save_comparison([record("transformers")], owner=ALICE)
    theirs = store.save_comparison([record("openvino-genai")], owner=BOB)
    assert [s.id for s in store.comparisons(ALICE)] == [mine]
    assert [r["backend"] for r in store.rows(BOB)] == ["openvino-genai"]
    # Naming the other's comparison does not reach it: not listed, not exported, not deleted.
    assert store.comparisons(ALICE, ids=[theirs]) == []
    assert store.rows(ALICE, ids=[theirs]) == []
    with pytest.raises(HistoryError, match="nothing to export"):
        store.export(ALICE, ids=[theirs])
    assert store.delete_comparison(ALICE, theirs) is False
    assert store.delete_all(ALICE) == 1
    assert [s.id for s in store.comparisons(BOB)] == [theirs]
    assert store.facets(ALICE).backends == [] and store.facets(BOB).backends == ["openvino-genai"]


def test_delete_one_and_all(tmp_path):
    store = new_store(tmp_path)
    first = store.save_comparison([record(run=1)], owner=ALICE)
    second = store.save_comparison([record(run=2), record(run=3)], owner=ALICE)
    store.save_comparison([record()], owner=BOB)
    assert store.delete_comparison(ALICE, first) is True
    assert store.delete_comparison(ALICE, first) is False  # already gone
    assert [s.id for s in store.comparisons(ALICE)] == [second]
    assert store.delete_all(ALICE) == 1
    assert store.count(ALICE) == 0 and store.count(BOB) == 1
    with sqlite3.connect(store.path) as conn:  # the records went with their comparisons
        assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 1


def test_export_round_trips(tmp_path):
    store = new_store(tmp_path)
    tricky = 'comma, "quote"\nnew line — ünïcode'
    store.save_comparison([record(text=tricky), record("openvino-genai", stopped=True)], owner=ALICE)
    store.save_comparison([record("onnxruntime-genai")], owner=ALICE)
    chosen = store.comparisons(ALICE)[1].id  # the older one only
    csv_path, json_path = store.export(ALICE, ids=[chosen])
    assert csv_path.parent == json_path.parent and csv_path.parent.parent == exports_root()
    rows = store.rows(ALICE, ids=[chosen])
    assert json.loads(json_path.read_text(encoding="utf-8")) == rows
    exported = [record_from_dict(row) for row in json.loads(json_path.read_text(encoding="utf-8"))]
    assert exported == store.records(ALICE, ids=[chosen])
    with csv_path.open(newline="", encoding="utf-8") as handle:
        read = list(csv.DictReader(handle))
    assert [row["backend"] for row in read] == ["transformers", "openvino-genai"]
    assert read[0]["text"] == tricky
    assert read[0]["comparison"] == chosen and read[0]["started_at"] == rows[0]["started_at"]
    assert read[0]["token_ids"] == "1 2 3"
    assert float(read[0]["decode_tokens_per_s"]) == rows[0]["decode_tokens_per_s"]
    assert read[1]["stopped"] == "True"
    assert set(read[0]) == {"comparison", "started_at", *RunRecord.field_names()} - set(JSON_ONLY)


def test_the_session_tables_downloads_go_where_the_janitor_prunes():
    """The page's CSV / JSON downloads are export folders of the data folder (pruned by the
    retention janitor), not temp folders that outlive every restart."""
    from playground.history.exports import exports_root, write_exports
    from playground.ui.results import record_dicts

    csv_path, json_path = write_exports(record_dicts([record()], "2026-12-02 07:00:00"))
    assert csv_path.parent == json_path.parent and csv_path.parent.parent == exports_root()


def test_each_export_gets_its_own_unguessable_folder(tmp_path):
    store = new_store(tmp_path)
    store.save_comparison([record()], owner=ALICE)
    first, _ = store.export(ALICE)
    second, _ = store.export(ALICE)
    assert first.parent != second.parent
    assert len(first.parent.name) >= 24  # 18 random bytes, URL-safe
    if os.name == "posix":
        assert (first.parent.stat().st_mode & 0o077) == 0  # this user's alone
        assert (data_root().stat().st_mode & 0o077) == 0
        assert (store.path.stat().st_mode & 0o077) == 0


def test_hostile_inputs_are_values_not_sql(tmp_path):
    store = new_store(tmp_path)
    injection = "x' OR '1'='1'; DROP TABLE comparisons; --"
    store.save_comparison([record(injection, model=injection)], owner=BOB)
    store.save_comparison([record()], owner=ALICE)
    assert store.comparisons(ALICE, HistoryFilter(model="demo' OR 1=1 --")) == []
    assert store.comparisons(ALICE, HistoryFilter(backend=injection)) == []  # Bob's name, Alice's query
    assert [s.model for s in store.comparisons(BOB, HistoryFilter(model=injection, backend=injection))] \
        == [injection]
    assert store.rows(ALICE, ids=["' OR 1=1 --", "%", "*"]) == []
    assert store.delete_comparison(ALICE, "' OR 1=1 --") is False
    assert store.delete_all("' OR owner != '") == 0
    assert store.count(ALICE) == 1 and store.count(BOB) == 1
    # Wildcards of LIKE mean nothing either.
    assert store.comparisons(ALICE, HistoryFilter(model="%")) == []


def test_huge_and_malformed_inputs_get_messages(tmp_path):
    store = new_store(tmp_path)
    with pytest.raises(HistoryError, match=f"at most {MAX_FILTER_CHARS}"):
        HistoryFilter(model="m" * 5_000_000)
    with pytest.raises(HistoryError, match="not a date"):
        HistoryFilter(since="yesterday'; --")
    with pytest.raises(HistoryError, match="not a date"):
        HistoryFilter(since="2" * 100_000)
    with pytest.raises(HistoryError, match="ends before it starts"):
        HistoryFilter(since="2026-12-02", until="2026-12-01")
    with pytest.raises(HistoryError, match="not a usable time"):
        HistoryFilter(until=float("nan"))
    with pytest.raises(HistoryError, match="must be text"):
        HistoryFilter(backend=["transformers"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most 256"):
        store.comparisons("u" * 10_000)
    with pytest.raises(ValueError, match="needs an owner"):
        store.save_comparison([record()], owner="")
    with pytest.raises(ValueError, match="control characters"):
        store.rows("user:\x00alice")
    with pytest.raises(HistoryError, match="limit"):
        store.rows(ALICE, limit=10**9)
    assert store.delete_comparison(ALICE, "i" * 1_000_000) is False
    # A huge answer is stored and comes back whole.
    big = "token " * 200_000
    store.save_comparison([record(text=big, device_note="n" * 100_000)], owner=ALICE,
                          details={"system_prompt": "s" * 5_000_000, "prompts": ["p" * 30_000]})
    assert store.records(ALICE)[0].text == big
    details = store.comparisons(ALICE)[0].details  # a comparison's details are bounded
    assert len(details["system_prompt"]) == MAX_DETAIL_CHARS + 1 and details["prompts"][0].endswith("…")


def test_an_owner_is_capped_oldest_first(tmp_path):
    store = new_store(tmp_path, max_per_owner=3)
    ids = [store.save_comparison([record(run=n)], owner=ALICE) for n in range(5)]
    store.save_comparison([record()], owner=BOB)
    assert {s.id for s in store.comparisons(ALICE)} == set(ids[2:])
    assert store.count(BOB) == 1


def test_anonymous_history_expires_logins_and_local_stay(tmp_path):
    store = new_store(tmp_path)
    stranger, _ = owners.browser_owner(None)
    for owner in (stranger, ALICE, owners.LOCAL):
        store.save_comparison([record()], owner=owner)
    assert store.prune_anonymous(older_than_s=30 * DAY_S) == 0  # just saved
    assert store.prune_anonymous(older_than_s=30 * DAY_S, now=time.time() + 31 * DAY_S) == 1
    assert store.count(stranger) == 0 and store.count(ALICE) == 1 and store.count(owners.LOCAL) == 1


def test_a_database_from_a_newer_version_is_refused_with_a_message(tmp_path):
    path = tmp_path / "newer.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(HistoryError, match="newer playground"):
        HistoryStore(path)
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(HistoryError, match="cannot be used"):
        HistoryStore(garbage)


def test_two_processes_share_one_database(tmp_path):
    """The CLI and the app write at the same time: a second process's writes are seen here."""
    store = new_store(tmp_path)
    store.save_comparison([record()], owner=owners.LOCAL)
    code = (
        "import sys; from playground.engine.records import RunRecord;"
        "from playground.history.store import HistoryStore;"
        "s = HistoryStore(sys.argv[1]);"
        "[s.save_comparison([RunRecord(backend='b', device='d', precision='p', model='m')], owner='local')"
        " for _ in range(20)]"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    other = subprocess.Popen([sys.executable, "-c", code, str(store.path)], env=env)
    for _ in range(20):
        store.save_comparison([record()], owner=owners.LOCAL)
    assert other.wait(60) == 0
    assert store.count(owners.LOCAL) == 41


def test_default_store_lives_in_the_data_folder(private_dirs):
    store = default_store()
    assert store.path == private_dirs / "data" / "history.sqlite3"
    assert default_store() is store


# -- owners ---------------------------------------------------------------------------------------


def test_browser_tokens_are_kept_when_valid_and_replaced_when_not():
    owner, token = owners.browser_owner(None)
    assert owner.startswith(owners.BROWSER_PREFIX) and token not in owner  # only a digest is stored
    assert owners.browser_owner(token) == (owner, token)  # the same browser after a reload
    for forged in ("", "short", token + "x", "' OR 1=1 --" + token[11:], 12345, ["x"]):
        other, fresh = owners.browser_owner(forged)
        assert other != owner and owners.valid_token(fresh) and fresh != forged
    assert owners.page_owner("alice", token)[0] == "user:alice"
    assert owners.page_owner(None, token) == (owner, token)
    assert owners.page_owner(None, token, trusted=True) == (owners.LOCAL, token)
    assert owners.page_owner("bob", "forged", trusted=True)[0] == "user:bob"
    with pytest.raises(ValueError):
        owners.user_owner("  ")


def test_the_browser_state_secret_lasts_and_stays_private():
    secret = owners.browser_state_secret()
    assert owners.valid_token(secret) and owners.browser_state_secret() == secret  # the same after a restart
    path = data_root() / owners.SECRET_FILE
    if os.name == "posix":
        assert (path.stat().st_mode & 0o077) == 0
    path.write_text("damaged")
    fresh = owners.browser_state_secret()
    assert owners.valid_token(fresh) and fresh != secret


# -- retention ------------------------------------------------------------------------------------


def aged(path: Path, age_s: float, now: float) -> Path:
    os.utime(path, (now - age_s, now - age_s))
    return path


def test_prune_keeps_the_newest_and_drops_the_old(tmp_path):
    now = time.time()
    folder = tmp_path / "things"
    folder.mkdir()
    entries = []
    for n in range(6):
        (folder / f"{n}.log").write_text("x")
        entries.append(aged(folder / f"{n}.log", n * HOUR_S, now))
    deleted = retention.prune(entries, Retention(keep=4, max_age_s=None), now)
    assert sorted(p.name for p in deleted) == ["4.log", "5.log"]
    assert sorted(p.name for p in folder.iterdir()) == ["0.log", "1.log", "2.log", "3.log"]
    deleted = retention.prune(list(folder.iterdir()), Retention(keep=None, max_age_s=1.5 * HOUR_S), now)
    assert sorted(p.name for p in deleted) == ["2.log", "3.log"]
    assert sorted(p.name for p in folder.iterdir()) == ["0.log", "1.log"]
    kept = retention.prune(list(folder.iterdir()), Retention(keep=0, max_age_s=0), now,
                           in_use=lambda path: path.name == "1.log")
    assert [p.name for p in kept] == ["0.log"] and [p.name for p in folder.iterdir()] == ["1.log"]


def test_exports_are_cleaned_beyond_their_limit(private_dirs):
    now = time.time()
    folders = []
    for n in range(5):
        folder = new_export_folder()
        (folder / "results.csv").write_text("x")
        folders.append(aged(folder, n * HOUR_S, now))
    legacy = private_dirs / "tmp" / "playground-results-abc"  # what ui.results left in the temp folder
    legacy.mkdir()
    (legacy / "results.json").write_text("[]")
    aged(legacy, 3 * DAY_S, now)
    unrelated = private_dirs / "tmp" / "somebody-else"
    unrelated.mkdir()
    aged(unrelated, 30 * DAY_S, now)
    deleted = retention.clean_exports(Retention(keep=3, max_age_s=DAY_S), now)
    assert set(deleted) == {folders[3], folders[4], legacy}
    assert [f.exists() for f in folders] == [True, True, True, False, False]
    assert unrelated.exists()


def test_logs_are_cleaned_but_never_one_in_use(private_dirs):
    now = time.time()
    folder = logs.configure("test-history", clean=False).parent
    try:
        dead_pid = 2**22 + 12345  # above the kernel's pid_max: never a live process
        files = {
            "old-app": folder / "app.log.1",
            "mine": folder / f"worker-transformers-{os.getpid()}-1.log",  # a worker of this process
            "dead": folder / f"worker-transformers-{dead_pid}-2.log",
            "fresh-dead": folder / f"worker-openvino-{dead_pid}-3.log",
            "not-a-log": folder / "notes.txt",
        }
        for path in files.values():
            path.write_text("x")
            aged(path, 30 * DAY_S, now)
        aged(files["fresh-dead"], 60, now)
        deleted = retention.clean_logs(Retention(keep=None, max_age_s=14 * DAY_S), now)
        assert set(deleted) == {files["old-app"], files["dead"]}
        assert (folder / "test-history.log").exists()  # the file this process writes
        assert files["mine"].exists() and files["fresh-dead"].exists() and files["not-a-log"].exists()
        # A count limit of 0 still spares what is in use.
        retention.clean_logs(Retention(keep=0, max_age_s=None), now)
        assert {p.name for p in folder.iterdir()} == {"test-history.log", files["mine"].name, "notes.txt"}
    finally:
        for handler in list(logging.getLogger("playground").handlers):
            if getattr(handler, "_playground", False):
                logging.getLogger("playground").removeHandler(handler)
                handler.close()


def test_configuring_logs_cleans_the_folder(private_dirs, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_LOGS_KEEP", "2")
    folder = private_dirs / "cache" / "logs"
    folder.mkdir(parents=True)
    now = time.time()
    for n in range(4):  # workers of parents long gone (pids above the kernel's pid_max)
        path = folder / f"worker-x-{2**22 + n}-{n}.log"
        path.write_text("x")
        aged(path, (n + 1) * HOUR_S, now)
    try:
        path = logs.configure("test-history")
        names = {p.name for p in folder.iterdir()}
        assert names == {path.name, "worker-x-4194304-0.log"}  # the open log counts among the 2
    finally:
        for handler in list(logging.getLogger("playground").handlers):
            if getattr(handler, "_playground", False):
                logging.getLogger("playground").removeHandler(handler)
                handler.close()


def test_limits_come_from_the_environment(monkeypatch):
    assert retention_of("exports") == Retention(keep=100, max_age_s=DAY_S)
    monkeypatch.setenv("PLAYGROUND_EXPORTS_KEEP", "7")
    monkeypatch.setenv("PLAYGROUND_EXPORTS_MAX_AGE_HOURS", "none")
    assert retention_of("exports") == Retention(keep=7, max_age_s=None)
    monkeypatch.setenv("PLAYGROUND_EXPORTS_KEEP", "-1")  # reported, default kept
    monkeypatch.setenv("PLAYGROUND_EXPORTS_MAX_AGE_HOURS", "0.5")
    assert retention_of("exports") == Retention(keep=100, max_age_s=0.5 * HOUR_S)
    monkeypatch.setenv("PLAYGROUND_HISTORY_KEEP", "lots")
    assert retention_of("history").keep == 1000
    with pytest.raises(ValueError):
        Retention(keep=-1, max_age_s=None)


def test_the_janitor_cleans_at_start_and_stops(private_dirs, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_EXPORTS_KEEP", "1")
    for _ in range(3):
        new_export_folder()
        time.sleep(0.01)
    stranger, _ = owners.browser_owner(None)
    default_store().save_comparison([record()], owner=stranger)
    monkeypatch.setenv("PLAYGROUND_HISTORY_MAX_AGE_HOURS", "0")
    janitor = retention.start_janitor(interval_s=3600)
    deadline = time.monotonic() + 10
    while janitor.passes < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    janitor.stop()
    assert janitor.passes == 1
    assert len(list(exports_root().iterdir())) == 1
    assert default_store().count(stranger) == 0
    assert not janitor._thread.is_alive()


def test_the_hook_saves_the_request_and_never_raises(tmp_path, caplog):
    from playground.engine.comparison import ComparisonRequest
    from playground.engine.records import BackendSpec
    from playground.history.store import save_to_history

    store = new_store(tmp_path)
    request = ComparisonRequest(prompts=["Hi there"], specs=[BackendSpec("transformers")], runs=2)
    started = time.time() - 5
    comparison = save_to_history([record(run=1), record(run=2)], owner=owners.LOCAL, started_at=started,
                                 source="cli", request=request, store=store)
    [summary] = store.comparisons(owners.LOCAL)
    assert summary.id == comparison and summary.source == "cli"
    assert summary.details["prompts"] == ["Hi there"] and summary.details["runs"] == 2
    assert summary.details["settings"]["max_new_tokens"] == request.settings.max_new_tokens
    # A broken database file: the hook logs why and returns None, the caller carries on.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store.path}{suffix}").unlink(missing_ok=True)
    store.path.write_bytes(b"\x00garbage" * 512)
    with caplog.at_level(logging.ERROR, logger="playground.history.store"):
        assert save_to_history([record()], owner=owners.LOCAL, store=store) is None
    assert "could not be saved" in caplog.text and "cannot be used" in caplog.text
    with pytest.raises(HistoryError, match="cannot be used"):
        store.comparisons(owners.LOCAL)


def test_a_real_comparison_round_trips_and_its_worker_log_is_spared(tmp_path, monkeypatch):
    """The scripted backend through the real engine: its records come back equal from a new store,
    and the live process's worker log survives even a keep-nothing log limit."""
    from playground.backends.scripted_backend import ENABLE_ENV
    from playground.engine.comparison import Comparison, ComparisonRequest
    from playground.engine.records import BackendSpec
    from playground.history.store import save_to_history
    from playground.settings import GenerationSettings

    monkeypatch.setenv(ENABLE_ENV, "1")
    request = ComparisonRequest(prompts=["say tokens=5"], specs=[BackendSpec("scripted")], runs=2,
                                settings=GenerationSettings(max_new_tokens=8, stop_at_eos=False))
    started = time.time()
    comparison = Comparison(request)
    list(comparison.events())
    assert len(comparison.records) == 2 and all(r.ok for r in comparison.records)
    comparison_id = save_to_history(comparison.records, owner=owners.LOCAL, started_at=started,
                                    source="cli", request=request, store=new_store(tmp_path))
    assert new_store(tmp_path).records(owners.LOCAL, ids=[comparison_id]) == comparison.records
    worker_logs = list((tmp_path / "cache" / "logs").glob("worker-*.log"))
    assert worker_logs
    retention.clean_logs(Retention(keep=0, max_age_s=0))
    assert all(path.exists() for path in worker_logs)


def test_the_cli_keeps_its_comparison_in_the_history(scripted_backend, tmp_path, monkeypatch, capsys):
    """The benchmark CLI saves what it measured, as the local owner, with how it was asked;
    ``--no-history`` keeps nothing."""
    from playground.bench.cli import main
    from playground.history.owners import LOCAL
    from playground.history.store import HistoryStore, default_path

    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "data"))
    argv = ["--model", "demo", "--backends", "scripted", "--prompt", "tokens=4", "--runs", "2",
            "--warmup", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "kept in the history as " in out and str(default_path()) in out
    store = HistoryStore(default_path())
    [saved] = store.comparisons(LOCAL)
    assert saved.source == "cli" and saved.records == 2 and saved.errors == 0
    assert [lane.backend for lane in saved.lanes] == ["scripted"]
    assert saved.details["prompts"] == ["tokens=4"] and saved.details["runs"] == 2
    rows = store.rows(LOCAL)
    assert len(rows) == 2 and all(row["new_tokens"] == 4 for row in rows)
    assert main([*argv, "--no-history"]) == 0
    assert "history" not in capsys.readouterr().out
    assert len(store.comparisons(LOCAL)) == 1


def test_the_page_keeps_nothing_it_could_not_read_back_and_survives_a_broken_store(tmp_path, monkeypatch):
    """An anonymous page without a valid token keeps nothing; a store that fails is logged, and the
    run handler still gets to show its results (save returns None instead of raising)."""
    from playground.ui.history_view import HistoryView

    record = RunRecord(backend="scripted", device="CPU", precision="scripted", model="demo")
    store = HistoryStore(tmp_path / "h.sqlite3")
    untrusted = HistoryView(trusted=False, store=store)
    assert untrusted.save(None, "not-a-token", [record], time.time(), None) is None
    token = owners.new_token()
    saved = untrusted.save(None, token, [record], time.time(), None)
    assert saved is not None
    assert [c.id for c in store.comparisons(untrusted.owner(None, token)[0])] == [saved]
    # a damaged database file: saving is logged and skipped, the listing says why
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "broken"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "history.sqlite3").write_bytes(b"this is not a database" * 100)
    view = HistoryView(trusted=True)
    assert view.save(None, None, [record], time.time(), None) is None
    token, rows, note, *_ = view.listing(None, None)
    assert rows is None and "cannot be used" in note and "file is not a database" in note
    _, note, file = view.export_json(None, None, "", None, "", "")
    assert "cannot be used" in note and file["visible"] is False
    assert "cannot be" in view.delete_selected(None, None, "", None, "", "", "ab" * 16)[2]


# -- the page's History section (its handlers against a real store) ------------------------------


@dataclass
class Listed:
    """A listing handler's outputs, by name (``HistorySection.listed()`` after the token)."""

    token: object
    rows: object
    note: str
    backends: object
    selectable: object
    file: object

    @property
    def ids(self) -> list[str]:
        return [value for _, value in self.selectable.choices]


def two_browsers(tmp_path: Path):
    """A shared page's view over a real store, and two browsers' (token, owner) on it."""
    from playground.ui.history_view import HistoryView

    store = new_store(tmp_path)
    view = HistoryView(trusted=False, store=store)
    browsers = []
    for _ in range(2):
        token = owners.new_token()
        browsers.append((token, view.owner(None, token)[0]))
    return store, view, browsers


def seed(store: HistoryStore, owner: str) -> dict[str, str]:
    """Three comparisons of ``owner`` on three days: name -> id."""
    day = datetime(2026, 11, 20, 12, 0)
    return {
        "demo-t": store.save_comparison([record("transformers", "demo")], owner=owner, started_at=day),
        "smol-to": store.save_comparison([record("transformers", "smollm2"),
                                          record("openvino-genai", "smollm2")],
                                         owner=owner, started_at=day + timedelta(days=1)),
        "demo-o": store.save_comparison([record("onnxruntime-genai", "demo", run=1),
                                         record("onnxruntime-genai", "demo", run=2)],
                                        owner=owner, started_at=day + timedelta(days=2)),
    }


def test_the_history_view_lists_filters_and_shows_ids(tmp_path):
    from playground.ui.history_view import ANY_BACKEND, SHORT_ID

    store, view, [(mine, me), (theirs, them)] = two_browsers(tmp_path)
    ids = seed(store, me)
    other = store.save_comparison([record("transformers", "demo")], owner=them)

    def listing(model="", backend=ANY_BACKEND, since="", until="", token=mine) -> Listed:
        return Listed(*view.listing(None, token, model, backend, since, until))

    every = listing()
    assert every.token == mine and every.note == "3 comparison(s) kept for this browser."
    assert every.ids == [ids["demo-o"], ids["smol-to"], ids["demo-t"]] and other not in every.ids
    assert [row[0] for row in every.rows] == [i[:SHORT_ID] for i in every.ids]  # the short id leads
    assert every.rows[0][1:] == ["2026-11-22 12:00:00", "demo", "onnxruntime-genai:cpu:fp32", 2, 0, "app"]
    labels = [label for label, _ in every.selectable.choices]
    assert labels[0] == f"{ids['demo-o'][:SHORT_ID]} · 2026-11-22 12:00:00 · demo"
    assert every.selectable.value is None  # nothing is picked for the user
    assert every.backends.choices == [(name, name) for name in
                                      (ANY_BACKEND, "onnxruntime-genai", "openvino-genai", "transformers")]
    assert every.file == {"__type__": "update", "value": None, "visible": False}
    assert listing(model="demo").ids == [ids["demo-o"], ids["demo-t"]]
    assert "matching the filters" in listing(model="demo").note
    assert listing(backend="transformers").ids == [ids["smol-to"], ids["demo-t"]]
    assert listing(backend=None).ids == every.ids  # a cleared dropdown: any backend
    assert listing(model="demo", backend="transformers").ids == [ids["demo-t"]]
    assert listing(since="2026-11-21").ids == [ids["demo-o"], ids["smol-to"]]
    assert listing(until="2026-11-21").ids == [ids["smol-to"], ids["demo-t"]]  # that day included
    assert listing(since=" 2026-11-21 ", until="2026-11-21").ids == [ids["smol-to"]]
    nothing = listing(model="missing")
    assert nothing.rows is None and nothing.ids == []
    assert nothing.note.startswith("No comparisons kept for this browser match the filters.")
    assert "`demo`, `smollm2`" in nothing.note and "`transformers`" in nothing.note
    # the other browser sees its own one only, and the choices of its own backends
    theirs_listed = listing(token=theirs)
    assert theirs_listed.ids == [other] and theirs_listed.backends.choices[1:] == [("transformers",) * 2]
    # a page with no token yet gets a fresh one and an empty list
    fresh = listing(token=None)
    assert owners.valid_token(fresh.token) and fresh.token not in (mine, theirs) and fresh.ids == []
    assert fresh.note == "No comparisons kept yet for this browser."


def test_the_history_view_answers_bad_filters_with_a_message(tmp_path):
    from playground.ui.history_view import ANY_BACKEND

    store, view, [(mine, me), _] = two_browsers(tmp_path)
    seed(store, me)
    skip = {"__type__": "update"}
    for since, until, expected in [("yesterday", "", "start date 'yesterday' is not a date"),
                                   ("", "2026-13-01", "end date '2026-13-01' is not a date"),
                                   ("2026-11-22", "2026-11-20", "ends before it starts"),
                                   ("2" * 100_000, "", "start date is not a date")]:
        listed = Listed(*view.listing(None, mine, "", ANY_BACKEND, since, until))
        assert expected in listed.note and listed.note.endswith("The list is unchanged."), listed.note
        assert listed.rows == listed.backends == listed.selectable == listed.file == skip  # nothing changed
        _, note, file = view.export_csv(None, mine, "", ANY_BACKEND, since, until)
        assert expected in note and file["visible"] is False
    for model, backend, expected in [("m" * 5_000_000, ANY_BACKEND, f"at most {MAX_FILTER_CHARS}"),
                                     ("demo", ["transformers"], "must be text"),
                                     (12, ANY_BACKEND, "must be text")]:
        assert expected in view.listing(None, mine, model, backend, "", "")[2]
    # a deletion still happens (and says so) when the filters it relists with are malformed
    gone = store.comparisons(me)[0].id
    listed = Listed(*view.delete_selected(None, mine, "", ANY_BACKEND, "nope", "", gone))
    assert listed.note.startswith(f"Deleted comparison {gone[:8]}.") and "not a date" in listed.note
    assert store.count(me) == 2


def test_delete_selected_deletes_only_the_owners_own(tmp_path):
    from playground.ui.history_view import ANY_BACKEND

    store, view, [(mine, me), (theirs, them)] = two_browsers(tmp_path)
    ids = seed(store, me)
    their_ids = seed(store, them)

    def delete(selected, token=mine, model="") -> Listed:
        return Listed(*view.delete_selected(None, token, model, ANY_BACKEND, "", "", selected))

    # a forged id (another browser's comparison, posted by hand): nothing of theirs, nor of mine, goes
    for forged in (their_ids["demo-t"], their_ids["demo-t"].upper(), their_ids["demo-t"][:8], "' OR 1=1 --",
                   "%", "f" * 1_000_000):
        listed = delete(forged)
        assert listed.note.startswith("Nothing was deleted: no comparison"), listed.note
        assert "OR 1=1" not in listed.note and len(listed.note) < 300  # what was sent is not echoed
        assert store.count(me) == 3 and store.count(them) == 3
    # the other browser naming mine, by its id from its own page: nothing of mine goes either
    assert delete(ids["demo-t"], token=theirs).note.startswith("Nothing was deleted: no comparison")
    assert store.count(me) == 3 and store.count(them) == 3
    for malformed in (12, ["x"], {"id": ids["demo-t"]}):
        assert delete(malformed).note == "Nothing was deleted: A comparison id must be text."
    for empty in (None, "", "   "):
        listed = delete(empty)
        assert listed.note == "Pick a comparison in the list first, then delete it."
        assert listed.rows == {"__type__": "update"}
    assert store.count(me) == 3 and store.count(them) == 3
    # my own: deleted, and the list (with its filters) comes back without it
    listed = delete(ids["smol-to"], model="smollm2")
    assert listed.note == (f"Deleted comparison {ids['smol-to'][:8]}. "
                           "No comparisons kept for this browser match the filters. Models kept: `demo`; "
                           "backends: `onnxruntime-genai`, `transformers`.")
    assert listed.rows is None and listed.ids == []
    listed = delete(f" {ids['demo-t']} ")
    assert listed.note == f"Deleted comparison {ids['demo-t'][:8]}. 1 comparison(s) kept for this browser."
    assert listed.ids == [ids["demo-o"]] and listed.selectable.value is None
    again = delete(ids["demo-t"]).note
    assert again.startswith(f"Nothing was deleted: no comparison {ids['demo-t'][:8]} is kept")
    assert [s.id for s in store.comparisons(them)] == [their_ids[n] for n in ("demo-o", "smol-to", "demo-t")]
    # "Delete my history" takes the rest of mine, whatever the filters, and nothing of theirs
    listed = Listed(*view.delete(None, mine, "smollm2", ANY_BACKEND, "", ""))
    assert listed.note.startswith("Deleted 1 comparison(s). ") and store.count(me) == 0
    assert store.count(them) == 3


def test_the_history_view_exports_what_the_filters_match(tmp_path):
    from playground.ui.history_view import ANY_BACKEND, SHOWN

    store, view, [(mine, me), (theirs, them)] = two_browsers(tmp_path)
    ids = seed(store, me)
    seed(store, them)
    token, note, file = view.export_json(None, mine, "", "transformers", "", "")
    assert token == mine and file["visible"] is True
    path = Path(file["value"])
    assert path.name == "history.json" and path.parent.parent == exports_root()  # the janitor prunes it
    exported = json.loads(path.read_text(encoding="utf-8"))
    assert exported == store.rows(me, HistoryFilter(backend="transformers"))
    assert [(row["comparison"], row["backend"], row["model"]) for row in exported] == [
        (ids["smol-to"], "transformers", "smollm2"), (ids["demo-t"], "transformers", "demo")]
    assert note == ("Exported 2 record(s) of 2 comparison(s) matching the filters as JSON: "
                    "download it below.")
    _, note, file = view.export_csv(None, mine, "demo", ANY_BACKEND, "2026-11-21", "")
    path = Path(file["value"])
    assert path.name == "history.csv" and path.parent.parent == exports_root()
    with path.open(newline="", encoding="utf-8") as handle:
        read = list(csv.DictReader(handle))
    assert [(row["comparison"], row["run"]) for row in read] == [(ids["demo-o"], "1"), (ids["demo-o"], "2")]
    assert read[0]["started_at"] == "2026-11-22 12:00:00" and read[0]["token_ids"] == "1 2 3"
    assert "2 record(s) of 1 comparison(s)" in note
    _, note, file = view.export_json(None, mine, "missing", ANY_BACKEND, "", "")
    assert note == "No records match the filters: nothing to export." and file["visible"] is False
    _, _, file = view.export_json(None, theirs, "", "transformers", "", "")  # theirs are theirs alone
    assert {row["comparison"] for row in json.loads(Path(file["value"]).read_text())} \
        == {s.id for s in store.comparisons(them, HistoryFilter(backend="transformers"))}
    _, note, file = view.export_json(None, owners.new_token(), "", ANY_BACKEND, "", "")  # a new browser
    assert "nothing to export" in note and file["visible"] is False
    # every matched comparison is exported, not only the listed newest ones
    for n in range(SHOWN + 2):
        store.save_comparison([record(run=n)], owner=me, started_at=1_800_000_000 + n)
    listed = Listed(*view.listing(None, mine, "", ANY_BACKEND, "", ""))
    assert len(listed.rows) == len(listed.ids) == SHOWN
    assert listed.note.startswith(f"The newest {SHOWN} comparison(s) kept for this browser are listed; more")
    _, note, file = view.export_json(None, mine, "", ANY_BACKEND, "", "")
    assert len({row["comparison"] for row in json.loads(Path(file["value"]).read_text())}) == SHOWN + 5
