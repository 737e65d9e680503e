"""OpenAI-compatible endpoints as lanes: configuration, real loopback servers, failures per lane.

The servers are real HTTP servers on 127.0.0.1 (``tests/openai_servers.py``; and llama.cpp's own
``python -m llama_cpp.server`` serving SmolLM2 when llama-cpp-python is built): every lane goes
through the engine's workers like a local runtime.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from playground import backends
from playground.engine import endpoints
from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.endpoints import EndpointError, parse_endpoint, parse_endpoints
from playground.engine.records import BackendSpec, RunRecord
from playground.settings import GenerationSettings
from tests.openai_servers import WORDS, LoopbackServer

PROMPT = "What is the for statement?"


def configure(monkeypatch: pytest.MonkeyPatch, *texts: str) -> list[endpoints.EndpointConfig]:
    """``--endpoint`` values for this process and the workers it starts (they inherit the env)."""
    monkeypatch.setenv(backends.ONLY_ENV, ",".join(text.split("=", 1)[0] for text in texts))
    # recorded as unset first (a delenv of an unset variable records nothing, and the restore
    # below would then keep this test's endpoints for every later test in the process)
    monkeypatch.setenv(endpoints.ENDPOINTS_ENV, "")
    found = endpoints.configure(texts)
    monkeypatch.setenv(endpoints.ENDPOINTS_ENV, os.environ[endpoints.ENDPOINTS_ENV])  # undone afterwards
    return found


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    yield
    backends.reload()


def run(names: list[str], model: str = "demo", max_new_tokens: int = 8) -> dict[str, RunRecord]:
    comparison = Comparison(ComparisonRequest(
        prompts=[PROMPT], specs=[BackendSpec(name) for name in names], model=model,
        settings=GenerationSettings(max_new_tokens=max_new_tokens, stop_at_eos=False),
    ))
    events = list(comparison.events())
    assert events
    return {record.backend: record for record in comparison.records}


# -- configuration -------------------------------------------------------------------------------


def test_an_endpoint_option_is_parsed_with_its_defaults() -> None:
    found = parse_endpoint("ollama=http://127.0.0.1:11434/v1/,model=llama3.2,key_env=OLLAMA_KEY,timeout=5")
    assert (found.name, found.url, found.model, found.key_env, found.timeout_s) == (
        "ollama", "http://127.0.0.1:11434/v1", "llama3.2", "OLLAMA_KEY", 5.0)
    assert found.title == "ollama on this machine"
    assert parse_endpoint("vllm=https://lab.example:8000/v1,label=vLLM on the lab server").title == \
        "vLLM on the lab server"
    assert parse_endpoint("lab=http://10.0.0.5:8000/v1").title == "lab at 10.0.0.5"


@pytest.mark.parametrize(("text", "says"), [
    ("ollama", "not name=URL"),
    ("Bad Name=http://127.0.0.1/v1", "lowercase letters"),
    ("x=file:///etc/passwd", "is not an http"),
    ("x=http://127.0.0.1/v1,api_key=sk-123", "unknown option"),
    ("x=http://127.0.0.1/v1,key_env=sk-123", "never written on the command line"),
    ("x=http://127.0.0.1/v1,timeout=soon", "timeout must be seconds"),
])
def test_a_bad_endpoint_option_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(EndpointError, match=says):
        parse_endpoint(text)


def test_an_endpoint_cannot_take_a_backends_name_or_another_endpoints() -> None:
    with pytest.raises(EndpointError, match="already taken"):
        parse_endpoints(["openvino-genai=http://127.0.0.1:1/v1"], taken=["openvino-genai"])
    with pytest.raises(EndpointError, match="already taken"):
        parse_endpoints(["a=http://127.0.0.1:1/v1", "a=http://127.0.0.1:2/v1"])


def test_configured_endpoints_are_backends_here_and_in_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_KEY", "secret-key-value")
    configure(monkeypatch, "ollama=http://127.0.0.1:9/v1,model=m", "lab=http://127.0.0.1:8/v1,key_env=LAB_KEY")
    classes = backends.backend_classes()
    assert list(classes) == ["lab", "ollama"]
    assert "secret-key-value" not in os.environ[endpoints.ENDPOINTS_ENV]  # only the variable's name travels
    assert classes["lab"].endpoint.api_key() == "secret-key-value"
    target = backends.class_target("ollama")
    assert backends.resolve_class("ollama", target) is not classes["lab"]
    assert backends.resolve_class("ollama", target).endpoint.url == "http://127.0.0.1:9/v1"


# -- lanes against real loopback servers ---------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[dict[str, LoopbackServer]]:
    started = {kind: LoopbackServer(kind) for kind in ("good", "drop", "http500", "hang", "no_usage_option")}
    yield started
    for server in started.values():
        server.close()


@pytest.mark.slow
def test_each_failing_server_gets_its_message_in_its_lane_while_the_others_carry_on(
    monkeypatch: pytest.MonkeyPatch, servers: dict[str, LoopbackServer]
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: connection refused
    configure(monkeypatch, *(f"{kind}={server.url},timeout=2" for kind, server in servers.items()),
              f"refused=http://127.0.0.1:{port}/v1,model=m,timeout=2")
    order = ["good", "drop", "http500", "hang", "refused", "no_usage_option"]
    started = time.monotonic()
    records = run(order)
    took = time.monotonic() - started
    good = records["good"]
    assert good.ok, good.error
    assert good.text == "".join(WORDS[:8]) and good.new_tokens == 8
    assert good.server_completion_tokens == 8 and good.prompt_tokens == 7  # the server's usage
    assert 0 < good.ttft_s <= good.e2e_s and good.decode_tokens_per_s > 0
    assert good.device == "remote" and "network included" in good.device_note
    assert servers["good"].behaviour.requests[0]["messages"][-1] == {"role": "user", "content": PROMPT}
    messages = {name: records[name].error for name in order if name != "good"}
    assert "broke off the answer while streaming, after 3 token(s)" in messages["drop"], messages["drop"]
    assert "HTTP 500" in messages["http500"] and "model crashed" in messages["http500"]
    assert "no answer within 2 s" in messages["hang"]
    assert "cannot reach the server" in messages["refused"]
    for name, message in messages.items():
        if name != "no_usage_option":
            assert "\n" not in message and "Traceback" not in message, (name, message)
    usage_less = records["no_usage_option"]  # refused stream_options: asked again without it
    assert usage_less.ok and usage_less.new_tokens == 8 and usage_less.server_completion_tokens is None
    assert took < 60, f"the failures took {took:.0f} s: a timeout is not the endpoint's"


@pytest.mark.slow
def test_a_page_cannot_point_a_lane_at_a_url(monkeypatch: pytest.MonkeyPatch,
                                             servers: dict[str, LoopbackServer]) -> None:
    """No server-side request forgery: a lane names a configured endpoint, never an address."""
    configure(monkeypatch, f"good={servers['good'].url}")
    target = servers["hang"]
    comparison = Comparison(ComparisonRequest(
        prompts=[PROMPT], specs=[BackendSpec.parse(target.url), BackendSpec("good", "elsewhere")],
        model="demo", settings=GenerationSettings(max_new_tokens=4), allow_local_paths=False,
    ))
    list(comparison.events())
    errors = [record.error for record in comparison.records]
    assert any("Unknown backend" in error for error in errors), errors
    assert any("its device is 'remote'" in error for error in errors), errors
    assert target.behaviour.paths == [] and servers["good"].behaviour.requests == []


# -- llama.cpp's own OpenAI-compatible server ----------------------------------------------------


def _smollm2_gguf() -> Path:
    from playground.models.catalog import SMOLLM2

    path = SMOLLM2.gguf_path
    if path is None or not path.is_file() or not SMOLLM2.is_ready():
        pytest.skip(reason="SmolLM2 is not set up here: run `bash scripts/setup.sh`")
    return path


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not importlib.util.find_spec("llama_cpp") or not importlib.util.find_spec("sse_starlette"):
        pytest.skip(reason="llama-cpp-python[server] is not built here: "
                    "run `python scripts/install_llama_cpp.py`")
    gguf = _smollm2_gguf()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from playground.backends.llama_cpp_backend import has_amx, system_info

    # llama.cpp's own server, as its users start it; on an AMX build with the extra weight buffers off,
    # as the backend runs it (they crash multi-token prefill on this project's AMX machine)
    launcher = ["-m", "llama_cpp.server"] if not has_amx(system_info()) else ["-c", (
        "import runpy, sys; from playground.backends.llama_cpp_backend import model_params\n"
        "sys.argv[0] = 'llama_cpp.server'\n"
        "with model_params(use_extra_bufts=False):\n"
        "    runpy.run_module('llama_cpp.server', run_name='__main__')")]
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, *launcher, "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
             "--n_ctx", "2048", "--n_threads", "1", "--model_alias", "smollm2", "--verbose", "False"],
            stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent,
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"llama_cpp.server did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(15)


@pytest.mark.slow
def test_llama_cpp_server_is_compared_as_a_remote_lane(monkeypatch: pytest.MonkeyPatch, llama_server: str,
                                                       servers: dict[str, LoopbackServer]) -> None:
    configure(monkeypatch, f"llama-server={llama_server},label=llama.cpp server on this machine",
              f"http500={servers['http500'].url}")
    records = run(["llama-server", "http500"], model="smollm2", max_new_tokens=12)
    lane = records["llama-server"]
    assert lane.ok, lane.error
    assert lane.text.strip() and lane.new_tokens == 12, lane.text
    # llama_cpp.server 0.3.36 ignores stream_options: it streams no usage, so none is recorded
    assert lane.server_completion_tokens is None and lane.prompt_tokens == 0
    assert 0 < lane.ttft_s <= lane.e2e_s and lane.decode_tokens_per_s > 0
    assert "model smollm2" in lane.device_note
    assert "HTTP 500" in records["http500"].error


# -- the app over HTTP -------------------------------------------------------------------------


@pytest.mark.slow
def test_the_app_lists_configured_endpoints_and_compares_them_over_http(
    monkeypatch: pytest.MonkeyPatch, servers: dict[str, LoopbackServer], launch_app
) -> None:
    from gradio_client import Client

    monkeypatch.setenv(backends.ONLY_ENV, "good,http500")  # start-up probes only these
    monkeypatch.setenv("GOOD_KEY", "key-from-the-environment")
    app = launch_app(["--model", "demo", "--public",  # untrusted: whoever calls must not add endpoints
                      "--endpoint", f"good={servers['good'].url},key_env=GOOD_KEY,label=Good server here",
                      "--endpoint", f"http500={servers['http500'].url}"], "app-endpoints.log")
    assert "key-from-the-environment" not in app.log()
    client = Client(app.url, verbose=False)
    listed = {row["name"]: row for row in client.predict(api_name="/backends")}
    assert set(listed) == {"good", "http500"}
    assert listed["good"]["label"] == "Good server here" and listed["good"]["usable"]
    assert listed["good"]["devices"] == ["remote"] and servers["good"].url in listed["good"]["note"]
    result = client.predict(api_name="/compare", prompt=PROMPT, backends="good,http500", model="demo",
                            max_new_tokens=6, stop_at_eos=False)
    records = {r["backend"]: r for r in result["records"]}
    assert records["good"]["error"] == "" and records["good"]["new_tokens"] == 6
    assert records["good"]["text"] == "".join(WORDS[:6]) and records["good"]["ttft_s"] > 0
    assert "HTTP 500" in records["http500"]["error"] and "Traceback" not in records["http500"]["error"]
    hang = servers["hang"]
    refused = client.predict(api_name="/compare", prompt=PROMPT, backends=hang.url, model="demo")
    assert not refused["ok"] and hang.behaviour.paths == []  # a URL is no backend: nothing was sent


def test_an_endpoint_lane_reserves_no_model_memory_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 7B model served elsewhere must not be refused for this laptop's memory."""
    from playground.engine.admission import REMOTE_CLIENT_MB, estimate_lane
    from playground.paths import DEMO_MODEL_DIR

    configure(monkeypatch, "lab=http://10.0.0.5:8000/v1,model=big")
    needed, alternatives = estimate_lane(DEMO_MODEL_DIR, BackendSpec("lab"), 4096)
    assert needed.total_mb == REMOTE_CLIENT_MB and needed.weights_mb == 0 and alternatives == []


def test_the_server_gets_the_messages_the_prompt_was_rendered_from(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine renders the model's template once for every local runtime; an endpoint's server
    applies its own, so its lane sends the system and user messages themselves (``Generate``
    carries them), not the templated text."""
    server = LoopbackServer("good")
    try:
        configure(monkeypatch, f"good={server.url},timeout=5")
        comparison = Comparison(ComparisonRequest(
            prompts=[PROMPT], specs=[BackendSpec("good")], model="demo", system_prompt="  Be brief.  ",
            settings=GenerationSettings(max_new_tokens=4, stop_at_eos=False),
        ))
        list(comparison.events())
        assert comparison.records[0].ok, comparison.records[0].error
        assert server.behaviour.requests[0]["messages"] == [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]
    finally:
        server.close()
