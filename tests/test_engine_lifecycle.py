"""A run's life and its end (issue 11): a Stop is bound to one run, a cancelled comparison frees
its workers within 2 s, one comparison at a time, stalls are marked, worker logs stay bounded.

Real worker processes throughout, driven by the scripted backend (fast); the real-runtime
versions at the end are marked slow.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from playground.backends import get_backend_class
from playground.engine import comparison as comparison_module
from playground.engine.comparison import Comparison, ComparisonRequest, MachineBusy
from playground.engine.launcher import LOG_PREFIX, WorkerProcess, prune_worker_logs, safe_name
from playground.engine.pool import WorkerPool
from playground.engine.protocol import Generate, Load, Loaded, Result, Stop, Tokens
from playground.engine.records import BackendSpec, RunRecord
from playground.engine.stall import judge
from playground.paths import DEMO_MODEL_DIR
from playground.settings import GenerationSettings

FREED_WITHIN_S = 2.0  # issue 11: cancel, disconnect, Stop and page close free the workers this fast


pytestmark = pytest.mark.usefixtures("scripted_backend")  # tests/conftest.py


def request(prompt: str, *specs: str, **kwargs) -> ComparisonRequest:
    settings = kwargs.pop("settings", GenerationSettings(max_new_tokens=900, stop_at_eos=False))
    return ComparisonRequest(
        prompts=[prompt], specs=[BackendSpec.parse(s) for s in specs or ("scripted",)], settings=settings,
        **kwargs,
    )


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def freed(pids: list[int], pool: WorkerPool | None) -> bool:
    """Every worker is gone, or idle in the pool (it answered its Stop: nothing generating)."""
    idle = set(pool.idle_pids()) if pool else set()
    return all(pid in idle or not alive(pid) for pid in pids)


# -- 1. a Stop can never reach a later run --------------------------------------------------------


def stop_between_runs(pool: WorkerPool) -> None:
    """A 3-run comparison stopped after run 1 ended in the worker but before the engine read its
    result: the engine's Stop reaches the worker between two runs."""
    comparison = Comparison(request("tokens=3", runs=3), pool=pool)
    for event in comparison.events():
        if event.kind == "tokens" and event.tokens == 3 and event.run == 1 and not comparison.stopping:
            worker = comparison.lanes[0].worker
            assert worker is not None and worker.conn.poll(10)  # run 1's result is sent: the worker is idle
            comparison.stop()
    assert [r.run for r in comparison.records] == [1]


def test_a_stop_between_runs_never_reaches_the_next_comparison() -> None:
    pool = WorkerPool()
    try:
        for _ in range(3):  # before the fix: 3 of 3 next comparisons stopped after 1 token
            stop_between_runs(pool)
            comparison = Comparison(request("tokens=20"), pool=pool)
            messages = [e.message for e in comparison.events() if e.kind == "state"]
            assert any("already loaded, reused" in m for m in messages), messages  # the same worker
            (record,) = comparison.records
            assert record.ok and not record.stopped and record.new_tokens == 20, record
    finally:
        pool.close_all()


def test_a_stop_in_the_pause_before_a_run_keeps_that_run_from_starting() -> None:
    """With a page attached the engine announces a run, pauses, then sends it: a Stop in that pause
    (no Generate out yet, so nothing for the worker to stop) must end the lane there."""
    pool = WorkerPool()
    try:
        comparison = Comparison(request("tokens=40 delay=0.01", runs=2, settle_s=0.3), pool=pool)
        for event in comparison.events():
            if event.kind == "state" and event.state == "generating" and "run 2/2" in event.message:
                comparison.stop()
        assert [r.run for r in comparison.records] == [1] and comparison.records[0].new_tokens == 40
        assert event.kind == "state" and event.state == "stopped"
        assert len(pool.idle_pids()) == 1  # the worker is idle: the next comparison has it at once
        after = Comparison(request("tokens=9"), pool=pool)
        list(after.events())
        assert after.records[0].new_tokens == 9 and not after.records[0].stopped
    finally:
        pool.close_all()


def run_on(worker: WorkerProcess, prompt: str, run_id: str, stop_after: int | None = None) -> Result:
    worker.send(Generate(prompt, GenerationSettings(max_new_tokens=4096).to_dict(), 0.01, run_id=run_id))
    while True:
        message = worker.recv()
        if isinstance(message, Tokens) and stop_after is not None and message.count >= stop_after:
            worker.request_stop(run_id)
            stop_after = None
        if isinstance(message, Result):
            assert message.run_id == run_id
            return message


def test_the_worker_ignores_a_stop_for_any_other_run() -> None:
    worker = WorkerProcess("scripted-protocol")
    try:
        worker.send(Load("scripted", str(DEMO_MODEL_DIR), "CPU", "scripted"))
        while not isinstance(worker.recv(), Loaded):
            pass
        assert run_on(worker, "tokens=3", "a").new_tokens == 3
        worker.send(Stop("a"))  # late: run a has ended
        worker.send(Stop("never-sent"))
        full = run_on(worker, "tokens=25", "b")
        assert full.new_tokens == 25 and not full.stopped
        stopped = run_on(worker, "tokens=5000 delay=0.002", "c", stop_after=5)
        assert stopped.stopped and 5 <= stopped.new_tokens < 5000
        # a stop for a run still queued behind another stops that run, and only that one
        settings = GenerationSettings(max_new_tokens=4096).to_dict()
        worker.send(Generate("tokens=30 delay=0.01", settings, 0.01, run_id="d"))
        worker.send(Generate("tokens=30", settings, 0.01, run_id="e"))
        worker.send(Stop("e"))
        results = {}
        while len(results) < 2:
            message = worker.recv()
            if isinstance(message, Result):
                results[message.run_id] = message
        assert results["d"].new_tokens == 30 and not results["d"].stopped
        assert results["e"].stopped and results["e"].new_tokens == 1
        assert run_on(worker, "tokens=12", "f").new_tokens == 12  # and nothing lingers
    finally:
        worker.close()


# -- 2. a run ends when its user leaves ---------------------------------------------------------


def start_long(comparison: Comparison, lanes: int, tokens: int = 3) -> tuple[object, list[int]]:
    """Iterate until ``lanes`` lanes stream tokens; returns the suspended generator and the pids."""
    pids: list[int] = []
    streaming: set[str] = set()
    events = comparison.events()
    for event in events:
        if event.kind == "worker":
            pids.append(event.pid)
        if event.kind == "tokens" and event.tokens >= tokens:
            streaming.add(event.lane)
            if len(streaming) == lanes:
                return events, pids
    raise AssertionError("the lanes never streamed")


def wait_freed(pids: list[int], pool: WorkerPool | None, since: float, what: str) -> float:
    while not freed(pids, pool) and time.monotonic() - since < 10:
        time.sleep(0.01)
    took = time.monotonic() - since
    print(f"\n{what}: workers freed {took:.2f} s after cancel")
    assert freed(pids, pool), f"still busy after {took:.1f} s"
    assert took <= FREED_WITHIN_S, f"{what}: {took:.2f} s to free the workers"
    return took


def test_closing_the_events_frees_every_worker_within_two_seconds() -> None:
    """A responsive lane (stops, goes idle into the pool) beside a hung one (deaf to Stop: killed)."""
    pool = WorkerPool()
    try:
        comparison = Comparison(
            request("tokens=100000 delay=0.01 load-slow:hang_after=5", "scripted", "scripted::load-slow",
                    mode="parallel"),
            pool=pool,
        )
        events, pids = start_long(comparison, lanes=2, tokens=1)
        time.sleep(0.3)  # the hung lane is past its 5 tokens and deaf to Stop
        since = time.monotonic()
        events.close()  # type: ignore[attr-defined]  # what a dropped page's generator gets
        took = wait_freed(pids, pool, since, "events() closed (one lane answers Stop, one is killed)")
        assert took >= comparison_module.CANCEL_GRACE_S  # the hung one had its grace, then was killed
        assert comparison.cancelled and not comparison.records  # nothing half-measured is kept
        assert len(pool.idle_pids()) == 1  # the responsive worker answered its Stop: idle, reusable
        # a comparison started right after runs alone: it gets the machine at once, on the idle worker
        started = time.monotonic()
        after = Comparison(request("tokens=20"), pool=pool)
        messages = [e.message for e in after.events() if e.kind == "state"]
        assert time.monotonic() - started < 2.0
        assert after.records[0].new_tokens == 20 and not after.records[0].stopped
        assert any("already loaded, reused" in m for m in messages)
        assert not any(alive(pid) for pid in pids if pid not in pool.idle_pids())
    finally:
        pool.close_all()


def test_cancel_from_another_thread_ends_the_driving_thread() -> None:
    """The page drives events() in a background thread; cancel() comes from the page's handler."""
    comparison = Comparison(request("tokens=100000 delay=0.01", "scripted", "scripted::load-slow"))
    pids: list[int] = []
    seen = threading.Event()
    after_cancel: list[str] = []

    def drive() -> None:
        for event in comparison.events():
            if comparison.cancelled:
                after_cancel.append(event.kind)
            if event.kind == "worker":
                pids.append(event.pid)
            if event.kind == "tokens":
                seen.set()

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    assert seen.wait(30)
    since = time.monotonic()
    took = comparison.cancel()
    wait_freed(pids, None, since, "cancel()")
    thread.join(FREED_WITHIN_S)
    assert not thread.is_alive() and took <= FREED_WITHIN_S
    assert len(after_cancel) <= 1  # at most the event already in flight; the second lane never started
    assert len(pids) == 1


def test_cancel_without_waiting_returns_at_once_and_still_frees_the_workers() -> None:
    """What a gradio handler on the server's event loop calls: it must not block there."""
    comparison = Comparison(request("tokens=100000 delay=0.01"))
    events, pids = start_long(comparison, lanes=1)
    since = time.monotonic()
    assert comparison.cancel(wait=False) == 0.0 and time.monotonic() - since < 0.1
    after = Comparison(request("tokens=5"))
    list(after.events())  # waits for the machine until the first one's worker is gone
    assert not any(alive(pid) for pid in pids)
    assert after.records[0].new_tokens == 5 and time.monotonic() - since < FREED_WITHIN_S + 1
    del events


def test_a_dropped_generator_cancels_its_comparison() -> None:
    comparison = Comparison(request("tokens=100000 delay=0.01"))
    events, pids = start_long(comparison, lanes=1)
    since = time.monotonic()
    del events  # garbage: the generator is closed
    wait_freed(pids, None, since, "generator dropped")
    assert comparison.cancelled


def test_cancel_kills_a_worker_still_loading() -> None:
    comparison = Comparison(request("tokens=3", "scripted::load-hangs"))
    pids: list[int] = []
    events = comparison.events()
    for event in events:
        if event.kind == "worker":
            pids.append(event.pid)
        if event.kind == "state" and event.state == "loading" and pids:
            break
    since = time.monotonic()
    comparison.cancel()
    wait_freed(pids, None, since, "cancel() while loading")
    assert list(events) == []  # a cancelled comparison says nothing more


def test_one_comparison_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    first = Comparison(request("tokens=100000 delay=0.01"))
    events, pids = start_long(first, lanes=1)
    second = Comparison(request("tokens=7"))
    got: list[str] = []
    thread = threading.Thread(target=lambda: got.extend(e.kind for e in second.events()), daemon=True)
    thread.start()
    time.sleep(0.5)
    assert got == [], "a second comparison ran beside the first"
    # one that cannot wait long is refused, clearly
    monkeypatch.setattr(comparison_module, "MACHINE_WAIT_S", 0.2)
    with pytest.raises(MachineBusy, match="Another comparison has been running on this machine"):
        list(Comparison(request("tokens=7")).events())
    first.cancel()
    thread.join(10)
    assert not thread.is_alive() and "result" in got
    assert second.records[0].new_tokens == 7
    assert not any(alive(pid) for pid in pids)
    del events


# -- 3. stalls are visible ----------------------------------------------------------------------


def test_a_paused_worker_is_marked_stalled() -> None:
    pool = WorkerPool()
    comparison = Comparison(request("tokens=20 delay=0.02"), pool=pool)
    pid = 0
    paused = False
    for event in comparison.events():
        if event.kind == "worker":
            pid = event.pid
        if event.kind == "tokens" and event.tokens >= 5 and not paused:
            paused = True
            os.kill(pid, signal.SIGSTOP)
            threading.Timer(1.5, os.kill, (pid, signal.SIGCONT)).start()
    (record,) = comparison.records
    print(f"\npaused 1.5 s: stalled_s={record.stalled_s} cpu_pct={record.cpu_pct} "
          f"decode={record.decode_tokens_per_s:.1f} tok/s; note: {record.stall_note}")
    assert record.ok and record.new_tokens == 20
    assert 1.1 <= record.stalled_s <= 2.0, record.stalled_s
    assert record.stalled and "stalled: the worker did not run for" in record.stall_note
    assert "not the runtime's speed" in record.stall_note
    assert record.to_dict()["stall_note"] == record.stall_note and record.cpu_s is not None
    # the same run unpaused: no stall, no note
    comparison = Comparison(request("tokens=20 delay=0.02"), pool=pool)
    list(comparison.events())
    pool.close_all()
    (calm,) = comparison.records
    assert calm.stalled_s is not None and calm.stalled_s < 0.5 and not calm.stalled, calm.stall_note
    assert calm.cpu_pct is not None and calm.cpu_pct < 100  # a sleeping script: little CPU, no stall


def test_the_stall_judgement() -> None:
    assert judge(0.0, 10.0, 5.0) == "" and judge(None, 10.0, None) == ""
    assert judge(0.6, 30.0, 20.0) == ""  # a short freeze in a long run: noise
    assert judge(0.6, 1.0, 0.3).startswith("stalled")  # ...but most of a short one
    note = judge(20.0, 21.0, 0.4)
    assert "did not run for 20.0 s of this run's 21.0 s; it got 0.4 s of CPU time" in note
    assert RunRecord("scripted", "CPU", "scripted", "demo", stall_note=note).stalled


# -- 4. worker log files ------------------------------------------------------------------------


def test_a_huge_device_name_gets_a_bounded_log_file_name(tmp_path: Path) -> None:
    device = "D" * 5000
    comparison = Comparison(request("tokens=2", f"scripted:{device}"))
    list(comparison.events())
    (record,) = comparison.records
    assert "runs on CPU only" in record.error and "File name too long" not in record.error, record.error[:300]
    logs = list((Path(os.environ["PLAYGROUND_CACHE"]) / "logs").glob(f"{LOG_PREFIX}scripted*"))
    assert logs and max(len(path.name) for path in logs) <= 120
    name = safe_name("scripted@" + device + ":/../é")
    assert len(name) <= 60 and all(c.isascii() and (c.isalnum() or c in "-_.") for c in name), name
    assert safe_name("a" * 100) != safe_name("a" * 101)  # cut names stay distinct
    assert safe_name("../..") == "_" and safe_name("") == "worker"


def test_old_worker_logs_are_pruned_newest_kept(tmp_path: Path) -> None:
    for index in range(12):
        path = tmp_path / f"{LOG_PREFIX}lane-{index}.log"
        path.write_text("x")
        os.utime(path, (1000 + index, 1000 + index))
    (tmp_path / "app.log").write_text("not a worker log")
    assert prune_worker_logs(tmp_path, keep=5) == 7
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["app.log", *(f"{LOG_PREFIX}lane-{i}.log" for i in range(7, 12))])


def test_a_worker_start_prunes_the_log_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PLAYGROUND_CACHE", str(tmp_path))
    monkeypatch.setattr("playground.engine.launcher.KEEP_LOGS", 4)
    logs = tmp_path / "logs"
    logs.mkdir()
    for index in range(10):
        (logs / f"{LOG_PREFIX}old-{index}.log").write_text("x")
        os.utime(logs / f"{LOG_PREFIX}old-{index}.log", (1000 + index, 1000 + index))
    worker = WorkerProcess("scripted")
    try:
        names = {p.name for p in logs.iterdir()}
        assert worker.log_path.name in names and len(names) <= 4
    finally:
        worker.close()


# -- 5. echoes of what a user typed are cut -------------------------------------------------------


def test_an_unknown_backend_is_echoed_cut() -> None:
    name = "b" * 10_000
    comparison = Comparison(request("tokens=2", name))
    list(comparison.events())
    (record,) = comparison.records
    assert record.error.startswith("Unknown backend 'bbbb") and "(10,000 characters)" in record.error
    assert len(record.error) < 400, len(record.error)
    with pytest.raises(KeyError) as raised:
        get_backend_class(name)
    assert len(str(raised.value)) < 400


# -- the same on a real runtime (slow) ----------------------------------------------------------

REAL = "transformers"


@pytest.mark.slow
def test_a_stop_between_runs_spares_the_next_comparison_on_a_real_runtime() -> None:
    pool = WorkerPool()
    settings = GenerationSettings(max_new_tokens=12, stop_at_eos=False)
    try:
        for _ in range(2):
            comparison = Comparison(ComparisonRequest(["What is the for statement?"], [BackendSpec(REAL)],
                                                      settings=settings, runs=3), pool=pool)
            for event in comparison.events():
                last = event.kind == "tokens" and event.tokens == 12 and event.run == 1
                if last and not comparison.stopping:
                    time.sleep(0.3)
                    comparison.stop()
            assert [r.run for r in comparison.records] == [1]
            after = Comparison(ComparisonRequest(["What is a loop?"], [BackendSpec(REAL)], settings=settings),
                               pool=pool)
            list(after.events())
            (record,) = after.records
            assert record.ok and not record.stopped and record.new_tokens == 12, record
    finally:
        pool.close_all()


@pytest.mark.slow
def test_cancel_frees_a_real_runtime_within_two_seconds() -> None:
    pool = WorkerPool()
    try:
        comparison = Comparison(
            ComparisonRequest(["What is the for statement?"], [BackendSpec(REAL)],
                              settings=GenerationSettings(max_new_tokens=900, stop_at_eos=False)),
            pool=pool,
        )
        events, pids = start_long(comparison, lanes=1)
        since = time.monotonic()
        comparison.cancel()
        wait_freed(pids, pool, since, f"{REAL}: cancel()")
        busy = psutil.Process(pids[0]).cpu_percent(interval=0.5) if alive(pids[0]) else 0.0
        print(f"{REAL}: idle worker CPU after cancel {busy:.0f} %")
        assert busy < 20, busy  # answered its Stop: not generating any more
        del events
    finally:
        pool.close_all()


@pytest.mark.slow
def test_a_paused_real_runtime_is_marked_and_a_calm_one_is_not() -> None:
    """The watch must hold on a runtime that computes (and holds the GIL between its ops): a calm
    run is not marked, one paused 3 s is."""
    settings = GenerationSettings(max_new_tokens=120, stop_at_eos=False)
    pool = WorkerPool()
    try:
        records = []
        for pause in (0.0, 3.0):
            comparison = Comparison(ComparisonRequest(["What is the for statement?"], [BackendSpec(REAL)],
                                                      settings=settings), pool=pool)
            pid, paused = 0, False
            for event in comparison.events():
                if event.kind == "worker":
                    pid = event.pid
                if pause and event.kind == "tokens" and event.tokens >= 10 and not paused:
                    paused = True
                    os.kill(pid, signal.SIGSTOP)
                    threading.Timer(pause, os.kill, (pid, signal.SIGCONT)).start()
            (record,) = comparison.records
            print(f"\n{REAL} paused {pause} s: stalled_s={record.stalled_s} cpu_pct={record.cpu_pct} "
                  f"decode={record.decode_tokens_per_s:.1f} tok/s e2e={record.e2e_s:.2f} s")
            records.append(record)
        calm, paused_record = records
        assert calm.ok and not calm.stalled and calm.stalled_s < 0.5, calm.stall_note
        assert calm.cpu_pct is not None and calm.cpu_pct > 0  # measured (its level depends on the machine)
        assert paused_record.ok and paused_record.stalled and 2.5 <= paused_record.stalled_s <= 3.6
    finally:
        pool.close_all()
