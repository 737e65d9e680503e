"""Stop and unload reach a logged-in user's run only from that login (``ui.sessions``): a replayed
session hash, or a heartbeat dropped without the login, leaves it running. Real LiveRuns of the
scripted backend, not driven (no worker starts): milliseconds."""

from __future__ import annotations

import gradio as gr

from playground.engine.comparison import ComparisonRequest
from playground.engine.records import BackendSpec
from playground.ui.controller import Controller
from playground.ui.live import LiveRun
from playground.ui.monitoring import RunMonitor
from playground.ui.options import AppOptions


def live_run() -> LiveRun:
    request = ComparisonRequest(prompts=["tokens=1000 delay=0.01"], specs=[BackendSpec.parse("scripted")])
    return LiveRun(request)


def controller_with(run: LiveRun, owner: str | None, session: str = "tab-1") -> Controller:
    controller = Controller(AppOptions(), [], RunMonitor())
    controller.sessions.put(session, run, owner=owner)
    return controller


def test_a_replayed_session_hash_cannot_stop_another_logins_run(scripted_backend: None) -> None:
    run = live_run()
    controller = controller_with(run, owner="alice")
    refused = "Nothing of yours is running."
    assert controller.stop(gr.Request(username="mallory", session_hash="tab-1")) == refused
    assert controller.stop(gr.Request(username=None, session_hash="tab-1")) == refused
    assert not run.comparison.stopping
    assert controller.stop(gr.Request(username="alice", session_hash="tab-1")) == "Stopping…"
    assert run.comparison.stopping


def test_a_heartbeat_without_the_login_does_not_end_the_run(scripted_backend: None) -> None:
    run = live_run()
    controller = controller_with(run, owner="alice")
    controller.close_session(gr.Request(username=None, session_hash="tab-1"))  # a stranger's heartbeat
    assert not run.comparison.cancelled and controller.sessions.get("tab-1") is run
    controller.close_session(gr.Request(username="alice", session_hash="tab-1"))  # alice closed her tab
    assert run.comparison.cancelled and controller.sessions.get("tab-1") is None


def test_without_a_login_the_session_is_the_only_identity(scripted_backend: None) -> None:
    run = live_run()
    controller = controller_with(run, owner=None)
    assert controller.stop(gr.Request(session_hash="tab-1")) == "Stopping…"
    assert controller.stop(gr.Request(session_hash="tab-2")) == "Stopped."  # tab 2 has nothing running
    assert controller.sessions.get("tab-1") is run


def test_a_stop_before_the_start_counts_only_from_the_runs_owner() -> None:
    sessions = Controller(AppOptions(), [], RunMonitor()).sessions
    sessions.cancel("tab-1", "mallory")
    assert not sessions.take_cancel("tab-1", "alice")
    sessions.cancel("tab-1", "alice")
    assert sessions.take_cancel("tab-1", "alice")
    sessions.cancel("tab-1", None)
    assert sessions.take_cancel("tab-1", None)
