"""The running app over HTTP (gradio_client): the /compare API shares the page's engine path."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gradio_client import Client

REPO_ROOT = Path(__file__).resolve().parent.parent

PROMPT = "What is the for statement?"


@pytest.fixture(scope="module")
def client(app_server) -> Client:
    return Client(app_server.url, verbose=False)


@pytest.fixture(scope="module")
def backends(client: Client) -> list[dict]:
    return client.predict(api_name="/backends")


def compare(client: Client, **kwargs) -> dict:
    return client.predict(api_name="/compare", **kwargs)


def test_help_lists_the_launch_options() -> None:
    result = subprocess.run([sys.executable, "app.py", "--help"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    for option in ("--host", "--port", "--share", "--auth", "--model", "--backends", "--allow-downloads"):
        assert option in result.stdout, option
    assert "GRADIO_SERVER_PORT" in result.stdout


@pytest.mark.slow
def test_compare_returns_text_and_metrics_for_every_backend(client: Client, backends: list[dict]) -> None:
    usable = {b["name"] for b in backends if b["usable"]}
    assert usable, backends
    result = compare(client, prompt=PROMPT, max_new_tokens=12, stop_at_eos=False)
    assert result["ok"], result
    records = {r["backend"]: r for r in result["records"]}
    assert set(records) == usable
    for name, record in records.items():
        assert record["error"] == "", (name, record["error"])
        assert record["text"].strip(), name
        assert record["new_tokens"] == 12, name
        assert 0 < record["ttft_s"] <= record["e2e_s"], name
        assert record["decode_tokens_per_s"] > 0, name
        assert record["load_s"] is not None and record["peak_rss_mb"] > 0, name
        assert record["run"] == 1 and record["mode"] == "sequential"
        assert len(record["token_ids"]) == 12 and record["reference"], name
        assert 0 <= record["agreement_pct"] <= 100 and 0 <= record["text_similarity"] <= 1, name


@pytest.mark.slow
def test_compare_takes_the_reference_lane(client: Client) -> None:
    result = compare(client, prompt=PROMPT, max_new_tokens=8, stop_at_eos=False,
                     backends="onnxruntime-genai,openvino-genai:CPU:int8", reference="openvino-genai")
    assert result["ok"], result
    records = {r["backend"]: r for r in result["records"]}
    assert records["openvino-genai"]["agreement_note"] == "reference"
    assert records["onnxruntime-genai"]["reference"] == "openvino-genai:CPU:int8"
    refused = compare(client, prompt=PROMPT, backends="onnxruntime-genai", reference="transformers")
    assert not refused["ok"] and "not one of the selected backends" in refused["error"]


@pytest.mark.slow
def test_unavailable_device_gives_an_error_row_while_others_succeed(
    client: Client, backends: list[dict]
) -> None:
    candidates = [(b, d) for b in backends if b["usable"] for d in b["devices"]
                  if d not in b["available_devices"]]
    if not candidates:
        pytest.skip(reason="every device of every backend is present on this machine")
    # Prefer a quick loader for the lane that must succeed.
    backend, missing = min(candidates, key=lambda c: c[0]["name"] != "openvino-genai")
    good = backend["device"]
    result = compare(client, prompt=PROMPT, max_new_tokens=8,
                     backends=f"{backend['name']}:{missing},{backend['name']}:{good}")
    assert not result["ok"]
    rows = {r["device"]: r for r in result["records"]}
    assert set(rows) == {missing, good}, rows
    assert missing in rows[missing]["error"], rows[missing]["error"]
    assert rows[good]["error"] == "" and rows[good]["text"].strip()


@pytest.mark.slow
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"prompt": ""}, "The prompt is empty"),
    ({"prompt": "   \n"}, "The prompt is empty"),
    ({"prompt": "word " * 8_000}, "model's context"),  # the owner's page: no character cap (issue 13)
    ({"prompt": PROMPT, "model": "no-such-org/no-such-model"}, "no-such-org/no-such-model"),
    ({"prompt": PROMPT, "model": "not a model!"}, "neither 'demo'"),
    ({"prompt": PROMPT, "model": "/no/such/folder"}, "does not exist"),
    ({"prompt": PROMPT, "max_new_tokens": 5000}, "between 1 and 4096"),
    ({"prompt": PROMPT, "backends": "no-such-backend"}, "Unknown backend"),
])
def test_bad_input_returns_its_message(client: Client, kwargs: dict, message: str) -> None:
    result = compare(client, **kwargs)
    assert not result["ok"]
    text = result["error"] or " ".join(r["error"] for r in result["records"])
    assert message in text, result


@pytest.fixture(scope="module")
def shared_server(app_model: str, launch_app):
    """``--share`` without internet (and without --auth): must say so and serve locally."""
    server = launch_app(["--share", "--model", app_model], "app-share.log")
    yield server
    server.stop()  # free the memory before the browser tests


def generated_login(server) -> tuple[str, str]:
    """The login ``--share`` without ``--auth`` generated and printed."""
    found = re.search(r"Shared page login \(generated.*?\): user (\S+)  password (\S+)", server.log())
    assert found, server.log()[-2000:]
    return found.group(1), found.group(2)


@pytest.mark.slow
def test_share_failure_is_reported_and_the_app_keeps_serving(shared_server) -> None:
    deadline = time.monotonic() + 60
    while "SHARE LINK FAILED" not in shared_server.log() and time.monotonic() < deadline:
        time.sleep(0.5)
    log = shared_server.log()
    assert "SHARE LINK FAILED" in log, log
    assert "Still serving locally" in log
    user, password = generated_login(shared_server)  # a public link never opens without a login
    assert user == "playground" and len(password) >= 16
    assert shared_server.proc.poll() is None and shared_server.serving()
    with pytest.raises(Exception, match=r"(?i)login|credentials|401|auth"):
        Client(shared_server.url, verbose=False)


@pytest.mark.slow
def test_shared_page_refuses_local_folders_and_downloads(shared_server) -> None:
    client = Client(shared_server.url, auth=generated_login(shared_server), verbose=False)
    local = compare(client, prompt=PROMPT, model=str(REPO_ROOT / "tests"))
    assert "Local model folders can only be chosen by whoever started the app" in local["error"]
    hub = compare(client, prompt=PROMPT, model="no-such-org/no-such-model")
    assert "--allow-downloads" in hub["error"], hub
