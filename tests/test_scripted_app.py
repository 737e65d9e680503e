"""The fast layer over HTTP: the real app on loopback, driven by gradio_client, with the scripted
backend and the installed example plugin as its lanes, so runs take a second and load no model.

The ``scripted_app`` fixture (conftest) sets ``PLAYGROUND_ONLY_BACKENDS`` so the start-up probe
covers these two (probing imports each real runtime in a worker: ~20 s here).
The real-runtime versions are in ``test_app_http.py`` (slow).
"""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest
from conftest import AppServer
from gradio_client import Client


@pytest.fixture(scope="module")
def client(scripted_app: AppServer) -> Client:
    return Client(scripted_app.url, verbose=False)


def compare(client: Client, prompt: str, backends: str, **kwargs) -> dict:
    return client.predict(api_name="/compare", prompt=prompt, backends=backends, **kwargs)


def test_backends_lists_the_scripted_backend_and_the_plugin(client: Client) -> None:
    rows = {row["name"]: row for row in client.predict(api_name="/backends")}
    assert set(rows) == {"scripted", "echo"}
    assert rows["scripted"]["usable"] and rows["scripted"]["selected"]
    assert rows["scripted"]["precisions"][0] == "scripted"
    assert rows["echo"]["usable"] and rows["echo"]["label"] == "echo (example plugin)"
    assert rows["echo"]["selected"]


def test_compare_runs_the_scripted_lane_and_the_plugin(client: Client) -> None:
    started = time.monotonic()
    result = compare(client, "tokens=12 delay=0.01 say hello", "scripted,echo", max_new_tokens=64,
                     stop_at_eos=False, runs=2)
    assert result["ok"], result
    records = result["records"]
    assert [(r["backend"], r["run"]) for r in records] == [("scripted", 1), ("scripted", 2), ("echo", 1),
                                                           ("echo", 2)]
    scripted = records[0]
    assert scripted["text"] == "".join(f" w{i}" for i in range(12)) and scripted["new_tokens"] == 12
    assert 0 < scripted["ttft_s"] <= scripted["e2e_s"] and scripted["decode_tokens_per_s"] > 0
    assert scripted["page_attached"] is False and scripted["mode"] == "sequential"
    assert "say hello" in records[2]["text"]
    assert time.monotonic() - started < 30  # no model loads: seconds, not minutes


def test_second_compare_reuses_the_loaded_workers(client: Client) -> None:
    first = compare(client, "tokens=3", "scripted")
    again = compare(client, "tokens=3", "scripted")
    assert first["ok"] and again["ok"]
    # a reused worker reports the load it did once, not a new one
    assert again["records"][0]["load_s"] == first["records"][0]["load_s"]


def test_crash_and_failure_messages_reach_the_api(client: Client) -> None:
    lanes = "scripted,scripted::load-slow,scripted::load-fails"
    result = compare(client, "tokens=20 load-slow:crash_after=2", lanes)
    assert not result["ok"]
    errors = {r["precision"]: r["error"] for r in result["records"]}
    assert errors["scripted"] == ""
    assert "worker crashed" in errors["load-slow"] and "signal 9" in errors["load-slow"], errors
    assert errors["load-fails"] == "scripted (test backend): this load fails on purpose (demo-model)."


def test_parallel_mode_over_the_api(client: Client) -> None:
    result = compare(client, "tokens=20 delay=0.01", "scripted,echo", mode="parallel")
    assert result["ok"], result
    assert {r["mode"] for r in result["records"]} == {"parallel"}


def test_bad_input_is_refused_before_any_worker(client: Client) -> None:
    assert "The prompt is empty" in compare(client, "", "scripted")["error"]
    refused = compare(client, "tokens=3", "no-such-backend")
    assert "Unknown backend" in " ".join(r["error"] for r in refused["records"]) + refused["error"]



def test_a_cancelled_compare_frees_the_machine_within_two_seconds(client: Client) -> None:
    """Cancel a 27 s /compare once it generates: the next call gets the machine at once. Were the
    cancelled comparison still running, the engine would make it wait 10 s (MACHINE_WAIT_S), then
    refuse it as "another comparison still holds the machine"."""
    job = client.submit(api_name="/compare", prompt="tokens=900 delay=0.03", backends="scripted",
                        max_new_tokens=900, stop_at_eos=False)  # the demo model's context: 1,024
    time.sleep(1.0)  # its worker is started (~0.3 s) and generating
    assert not job.done(), job.result()
    cancelled = time.monotonic()
    job.cancel()
    after = compare(client, "tokens=5", "scripted", stop_at_eos=False)
    took = time.monotonic() - cancelled
    print(f"\ncancelled a 27 s /compare after 1 s: the next call was done {took:.2f} s after the cancel")
    assert after["ok"] and not after["records"][0]["stopped"], after
    assert took <= 2.0 + 1.0  # the machine freed within 2 s, plus the next call's own ~0.5 s


def test_a_caller_who_just_drops_the_connection_frees_the_machine(scripted_app: AppServer,
                                                                 client: Client) -> None:
    """Raw HTTP, as a script or a closed laptop would: start a 27 s /compare, read its stream for
    a second, then close the socket without any cancel. Gradio sees the stream end; the comparison
    must end with it, so the next caller is served at once (not after 27 s, nor refused)."""
    from playground.ui.api import compare_signature

    values = {name: p.default for name, p in compare_signature().parameters.items()}
    values.update(prompt="tokens=900 delay=0.03", backends="scripted", max_new_tokens=900, stop_at_eos=False)
    host, port = scripted_app.url.split("//", 1)[1].rstrip("/").split(":")
    joined = http.client.HTTPConnection(host, int(port), timeout=10)
    joined.request("POST", "/gradio_api/call/compare", body=json.dumps({"data": list(values.values())}),
                   headers={"content-type": "application/json"})
    event_id = json.loads(joined.getresponse().read())["event_id"]
    stream = socket.create_connection((host, int(port)), timeout=10)
    stream.sendall(f"GET /gradio_api/call/compare/{event_id} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    time.sleep(1.0)  # its worker is started and generating
    assert stream.recv(65536).startswith(b"HTTP/1.1 200"), "the stream did not open"
    dropped = time.monotonic()
    stream.shutdown(socket.SHUT_RDWR)
    stream.close()
    after = compare(client, "tokens=5", "scripted", stop_at_eos=False)
    took = time.monotonic() - dropped
    print(f"\ndropped a 27 s /compare's connection after 1 s: the next call was done {took:.2f} s later")
    assert after["ok"] and not after["records"][0]["stopped"], after
    assert took <= 2.0 + 1.0  # freed within 2 s, plus the next call's own ~0.5 s
