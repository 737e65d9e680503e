"""The fast layer: the whole engine (registry, worker processes, pool, comparison, Stop, timeouts)
driven end to end by the scripted backend, which loads no model, so each test takes about a second.

Tests about what a run measures or how it ends take their worker from ``warm``, one pool for the
module (a worker start is ~0.3 s of CPU here), as the app does; those about starting, loading,
crashing and timeouts start their own.

The real runtimes' versions of these tests are in ``test_engine.py`` (marked slow).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from playground.backends import ONLY_ENV, backend_names
from playground.backends.scripted_backend import ENABLE_ENV, directives
from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.events import LaneEvent
from playground.engine.pool import WorkerPool
from playground.engine.records import BackendSpec
from playground.settings import GenerationSettings

SCRIPTED = BackendSpec.parse("scripted")


pytestmark = pytest.mark.usefixtures("scripted_backend")  # tests/conftest.py


@pytest.fixture(scope="module")
def warm() -> Iterator[WorkerPool]:
    """Loaded workers kept between this module's tests (only the latest selection's, as in the app)."""
    pool = WorkerPool()
    yield pool
    pool.close_all()


def request(prompt: str, *specs: str, **kwargs) -> ComparisonRequest:
    settings = kwargs.pop("settings", GenerationSettings(max_new_tokens=256, stop_at_eos=False))
    return ComparisonRequest(
        prompts=[prompt], specs=[BackendSpec.parse(s) for s in specs or ("scripted",)], settings=settings,
        **kwargs,
    )


def collect(req: ComparisonRequest, **kwargs) -> tuple[Comparison, list[LaneEvent]]:
    comparison = Comparison(req, **kwargs)
    return comparison, list(comparison.events())


def test_hidden_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "scripted" in backend_names()
    monkeypatch.delenv(ENABLE_ENV)
    assert "scripted" not in backend_names()
    assert backend_names()[:5] == [
        "transformers", "openvino-genai", "optimum-intel", "onnxruntime-genai", "npu-library"
    ]


def test_only_env_narrows_what_is_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ONLY_ENV, "scripted, transformers")
    assert backend_names() == ["transformers", "scripted"]


def test_directives_are_read_from_the_prompt() -> None:
    found = directives("say tokens=3 delay=0.5 and hang_after=2")
    assert found == {"tokens": 3, "delay": 0.5, "hang_after": 2}
    assert directives("What is the for statement?") == {}
    scoped = "tokens=3 load-slow:tokens=9 load-fails:crash_after=1"
    assert directives(scoped) == {"tokens": 3}
    assert directives(scoped, "load-slow") == {"tokens": 9}


def test_tokens_stream_in_batches_and_are_measured() -> None:
    comparison, events = collect(request("tokens=40 delay=0.01"))
    (record,) = comparison.records
    assert record.ok, record.error
    assert record.text == "".join(f" w{i}" for i in range(40))
    assert record.new_tokens == 40 and record.token_ids == list(range(40))
    batches = [e for e in events if e.kind == "tokens"]
    assert 2 < len(batches) < 40, f"{len(batches)} messages for 40 tokens spaced 10 ms: not batched"
    assert [b.tokens for b in batches] == sorted(b.tokens for b in batches) and batches[-1].tokens == 40
    assert "".join(b.text for b in batches) == record.text
    assert 0 < record.ttft_s < record.e2e_s
    assert 0.3 < 39 / record.decode_tokens_per_s < 2.0  # 39 gaps of 10 ms, on a busy machine
    assert record.prompt_tokens > 0 and record.device == "CPU" and record.precision == "scripted"
    states = [e.state for e in events if e.kind == "state"]
    assert states[0] == "queued" and states[-1] == "done"
    assert {"starting", "loading", "generating"} <= set(states)


def test_each_token_is_timed_and_a_stall_shows_in_the_tail_latency(warm: WorkerPool) -> None:
    """Per-token arrival times reach the record; the inter-token percentiles are read from them
    (a 0.4 s stall before token 30 of 40 lifts p99, not p50); prefill tok/s is prompt / TTFT."""
    comparison, _ = collect(request("tokens=40 delay=0.01 first_delay=0.05 stall_at=30 stall=0.4"), pool=warm)
    (record,) = comparison.records
    assert record.ok, record.error
    times = record.token_times_ms
    assert len(times) == 40 and times == sorted(times)
    assert times[0] == pytest.approx(record.ttft_s * 1000, abs=1.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) >= 400 and gaps.index(max(gaps)) == 29  # the gap before token 30 (0-based)
    assert 8 <= record.itl_p50_ms < 100 and record.itl_p50_ms <= record.itl_p90_ms <= record.itl_p99_ms
    assert record.itl_p99_ms > 3 * record.itl_p90_ms  # one 400 ms gap in 39 lands in the 99th only
    assert record.ttft_s >= 0.05
    assert record.prefill_tokens_per_s == pytest.approx(record.prompt_tokens / record.ttft_s, rel=1e-6)


def test_max_new_tokens_caps_the_script(warm: WorkerPool) -> None:
    comparison, _ = collect(request("tokens=50", settings=GenerationSettings(max_new_tokens=7)), pool=warm)
    assert comparison.records[0].new_tokens == 7


def test_warmup_and_runs_are_planned_per_lane(warm: WorkerPool) -> None:
    comparison, events = collect(request("tokens=3", warmup=1, runs=3), pool=warm)
    assert [r.run for r in comparison.records] == [1, 2, 3]
    assert sum(1 for e in events if e.kind == "state" and e.state == "generating") == 4


def test_worker_pool_reuses_the_loaded_worker() -> None:
    pool = WorkerPool()
    pids: list[int] = []
    try:
        for _ in range(2):
            comparison, events = collect(
                request("tokens=3"), pool=pool,
                on_worker=lambda lane, pid, started: started and pids.append(pid),
            )
            assert comparison.records[0].ok
        messages = [e.message for e in events if e.kind == "state"]
        assert pids[0] == pids[1]
        assert any("already loaded, reused" in m for m in messages), messages
        assert pool.idle_pids() == [pids[0]]
        # another selection retires the idle worker it no longer needs
        collect(request("tokens=3", "scripted::load-slow"), pool=pool)
        assert pids[0] not in pool.idle_pids() and len(pool.idle_pids()) == 1
    finally:
        pool.close_all()
    assert pool.idle_pids() == []


def test_stop_ends_a_long_generation_early(warm: WorkerPool) -> None:
    comparison = Comparison(request("tokens=2000 delay=0.01"), pool=warm)
    states = []
    for event in comparison.events():
        if event.kind == "tokens" and event.tokens >= 5:
            comparison.stop()
        if event.kind == "state":
            states.append(event.state)
    (record,) = comparison.records
    assert record.stopped and 5 <= record.new_tokens < 200
    assert states[-1] == "stopped"


def test_stop_while_loading_ends_the_lane() -> None:
    comparison = Comparison(request("tokens=3", "scripted::load-slow"))
    final = None
    for event in comparison.events():
        if event.kind == "state" and event.state == "loading":
            comparison.stop()
        if event.kind == "state":
            final = event
    assert final is not None and final.state == "stopped" and "while loading" in final.message


def test_hung_generation_is_killed_after_the_idle_timeout_and_others_carry_on() -> None:
    comparison, _ = collect(
        request("tokens=30 delay=0.01 load-slow:hang_after=3", "scripted", "scripted::load-slow",
                idle_timeout_s=0.5, mode="parallel")
    )
    errors = {r.precision: r.error for r in comparison.records}
    assert "produced nothing for 0.5 s and was stopped (worker killed)" in errors["load-slow"], errors
    assert errors["scripted"] == ""


def test_silent_prefill_gets_the_first_token_timeout() -> None:
    comparison, _ = collect(
        request("first_delay=0.6 tokens=3", idle_timeout_s=0.3, first_token_timeout_s=5.0)
    )
    assert comparison.records[0].ok, comparison.records[0].error  # 0.6 s of silence > the idle 0.3 s
    comparison, _ = collect(
        request("first_delay=30 tokens=3", idle_timeout_s=0.3, first_token_timeout_s=0.5)
    )
    assert "produced nothing for 0.5 s" in comparison.records[0].error


def test_hung_load_is_killed_after_the_load_timeout() -> None:
    comparison, _ = collect(request("tokens=3", "scripted::load-hangs", "scripted", load_timeout_s=1.0))
    errors = {r.precision or "": r.error for r in comparison.records}
    assert "did not finish loading within 1 s and was stopped (worker killed)" in errors["load-hangs"]
    assert errors["scripted"] == ""


def test_crash_mid_generation_is_reported_and_others_carry_on() -> None:
    comparison, _ = collect(request("tokens=20 crash_after=2", "scripted"))
    (crashed,) = comparison.records
    assert "worker crashed" in crashed.error and "signal 9" in crashed.error, crashed.error
    # the same request with a healthy lane beside it: only the crashing lane fails
    comparison, _ = collect(request("tokens=5", "scripted::load-crashes", "scripted"))
    errors = {r.precision: r.error for r in comparison.records}
    assert "exited" in errors["load-crashes"] or "crashed" in errors["load-crashes"], errors
    assert "signal 9" in errors["load-crashes"]
    assert errors["scripted"] == ""


def test_load_and_generation_failures_are_one_sentence(warm: WorkerPool) -> None:
    comparison, _ = collect(request("tokens=5", "scripted::load-fails", "scripted"))
    errors = {r.precision: r.error for r in comparison.records}
    assert errors["load-fails"] == "scripted (test backend): this load fails on purpose (demo-model)."
    assert errors["scripted"] == ""
    comparison, _ = collect(request("tokens=5 fail_after=2"), pool=warm)
    (record,) = comparison.records
    assert record.error == "scripted (test backend): generation fails on purpose after 2 tokens."


def test_unknown_device_and_precision_get_messages() -> None:
    comparison, _ = collect(request("tokens=2", "scripted:NPU", "scripted::int4"))
    errors = sorted(r.error for r in comparison.records)
    assert any("runs on CPU only, not 'NPU'" in e for e in errors), errors
    assert any("does not support precision 'int4'" in e for e in errors), errors


def test_sequential_mode_runs_one_lane_at_a_time(warm: WorkerPool) -> None:
    comparison, events = collect(request("tokens=10 delay=0.02", "scripted", "scripted::load-slow"),
                                 pool=warm)
    order = [(e.lane, e.kind) for e in events if e.kind in ("tokens", "result")]
    first, second = SCRIPTED.key, BackendSpec.parse("scripted::load-slow").key
    first_done = order.index((first, "result"))
    assert all(lane == first for lane, _ in order[:first_done + 1])
    assert all(lane == second for lane, _ in order[first_done + 1:])
    assert {r.mode for r in comparison.records} == {"sequential"}


def test_parallel_mode_overlaps_the_lanes() -> None:
    live: set[int] = set()
    most_live = 0

    def on_worker(lane: str, pid: int, started: bool) -> None:
        nonlocal most_live
        (live.add if started else live.discard)(pid)
        most_live = max(most_live, len(live))

    comparison, events = collect(
        request("tokens=40 delay=0.02", "scripted::load-slow", "scripted", mode="parallel"),
        on_worker=on_worker,
    )
    assert most_live == 2
    assert all(r.ok for r in comparison.records) and {r.mode for r in comparison.records} == {"parallel"}
    # the second lane streams while the first is still loading (LOAD_SLOW_S) or generating
    slow, quick = BackendSpec.parse("scripted::load-slow").key, SCRIPTED.key
    order = [(e.lane, e.kind) for e in events if e.kind in ("tokens", "result")]
    assert order.index((quick, "tokens")) < order.index((slow, "result"))


def test_identical_answers_agree_fully(warm: WorkerPool) -> None:
    comparison, _ = collect(request("tokens=12", "scripted", "scripted::load-slow"), pool=warm)
    by_precision = {r.precision: r for r in comparison.records}
    assert by_precision["load-slow"].agreement_pct == 100.0, by_precision["load-slow"]
