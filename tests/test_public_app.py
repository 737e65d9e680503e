"""A ``--public`` app with a login (what sits behind a reverse proxy or tunnel, where every client
looks local) on loopback, driven over HTTP as a stranger would: its work limit and its bounded queue
refuse with messages before anything runs, and guessing its password is throttled. Marked slow for
its own app start (~4 s), not for a runtime."""

from __future__ import annotations

import http.cookiejar
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

import pytest
from conftest import AppServer, scripted_app_env
from gradio_client import Client

pytestmark = pytest.mark.slow
LOGIN = ("owner", "correct horse")


@pytest.fixture(scope="module")
def public_app(echo_plugin, launch_app: Callable[[list[str], str], AppServer]) -> AppServer:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in scripted_app_env({}, echo_plugin).items():
            patch.setenv(name, value)
        return launch_app(["--model", "demo", "--backends", "scripted,echo", "--public",
                           "--max-tokens-per-request", "1000", "--max-queue", "1", "--auth", ":".join(LOGIN),
                           # the per-client quotas are tested on their own app (quota_app)
                           "--max-jobs-per-client", "0", "--max-tokens-per-client-hour", "0"],
                          "app-public.log")


@pytest.fixture(scope="module")
def quota_app(echo_plugin, launch_app: Callable[[list[str], str], AppServer]) -> AppServer:
    """Behind a (pretend) reverse proxy: every client is 127.0.0.1, told apart by the hop the
    proxy adds to ``X-Forwarded-For``."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in scripted_app_env({}, echo_plugin).items():
            patch.setenv(name, value)
        return launch_app(["--model", "demo", "--backends", "scripted", "--public",
                           "--max-jobs-per-client", "1", "--max-tokens-per-client-hour", "2000"],
                          "app-quota.log")


def via_proxy(app: AppServer, address: str) -> Client:
    return Client(app.url, headers={"X-Forwarded-For": f"203.0.113.9, {address}"}, verbose=False)


def test_one_client_cannot_hold_more_than_its_jobs_and_others_still_get_theirs(quota_app: AppServer) -> None:
    log = quota_app.log()
    assert "Each user (login, else address): 1 comparison(s) at a time" in log, log[-2000:]
    first, second = via_proxy(quota_app, "198.51.100.1"), via_proxy(quota_app, "198.51.100.2")
    long = {"prompt": "tokens=300 delay=0.01", "backends": "scripted", "max_new_tokens": 300,
            "stop_at_eos": False, "warmup": 0, "runs": 1}
    running = first.submit(api_name="/compare", **long)
    time.sleep(1.0)
    started = time.monotonic()
    with pytest.raises(Exception) as refused:
        first.predict(api_name="/compare", **long)
    took = time.monotonic() - started
    response = getattr(refused.value, "response", None)  # gradio_client raises the HTTP status
    assert response is not None and response.status_code == 429, refused.value
    detail = response.json()["detail"]
    print(f"\nsame client, second comparison while its first runs: 429 in {took:.2f} s: {detail}")
    assert "1 per user at a time" in detail and "--max-jobs-per-client" in detail, detail
    other = second.submit(api_name="/compare", **long)  # another client waits its turn and runs
    assert running.result(timeout=60)["ok"] and other.result(timeout=60)["ok"]


def test_work_per_hour_is_counted_per_client(quota_app: AppServer) -> None:
    client = via_proxy(quota_app, "198.51.100.3")
    small = {"prompt": "tokens=3", "backends": "scripted", "max_new_tokens": 600, "warmup": 0, "runs": 1}
    for _ in range(3):  # 3 x 600 of the 2,000 an hour
        assert client.predict(api_name="/compare", **small)["ok"]
    refused = client.predict(api_name="/compare", **small)
    print(f"\nfourth comparison of 600 tokens with 2,000 an hour: {refused['error']}")
    assert not refused["ok"] and "2,000 per hour" in refused["error"], refused
    assert "--max-tokens-per-client-hour" in refused["error"]
    assert via_proxy(quota_app, "198.51.100.4").predict(api_name="/compare", **small)["ok"]  # another client


def test_the_public_page_says_it_is_untrusted_and_its_limit(public_app: AppServer) -> None:
    log = public_app.log()
    assert "Untrusted page: local model folders are refused" in log, log[-2000:]
    assert "at most 1,000 generated tokens per comparison" in log


def test_work_over_the_limit_is_refused_before_any_worker(public_app: AppServer) -> None:
    client = Client(public_app.url, auth=LOGIN, verbose=False)
    started = time.monotonic()
    refused = client.predict(api_name="/compare", prompt="tokens=3", backends="scripted,echo",
                             max_new_tokens=128, runs=3, warmup=1)
    took = time.monotonic() - started
    print(f"\nover the limit (2 lanes x 4 runs x 128 = 1,024 > 1,000): refused in {took:.2f} s")
    assert not refused["ok"] and "allows 1,000 per comparison" in refused["error"], refused
    assert refused["records"] == []
    allowed = client.predict(api_name="/compare", prompt="tokens=3", backends="scripted", max_new_tokens=250,
                             runs=3, warmup=1, stop_at_eos=False)
    assert allowed["ok"], allowed
    # a local folder from a stranger's page is refused too (the trust is the network page's)
    folder = client.predict(api_name="/compare", prompt="tokens=3", backends="scripted", model="/etc")
    assert not folder["ok"] and folder["error"], folder
    # a stranger's prompt is capped in characters before it is tokenised (the owner's is not)
    long = client.predict(api_name="/compare", prompt="tokens=3 " + "x" * 40_000, backends="scripted")
    assert not long["ok"] and "the limit is 32,000" in long["error"] and long["records"] == [], long


def test_a_full_queue_refuses_the_next_comparison(public_app: AppServer) -> None:
    clients = [Client(public_app.url, auth=LOGIN, verbose=False) for _ in range(3)]
    long = {"prompt": "tokens=400 delay=0.01", "backends": "scripted", "max_new_tokens": 400,
            "stop_at_eos": False}
    running = clients[0].submit(api_name="/compare", **long)
    time.sleep(1.0)  # the first one runs (4 s); the second waits in the queue's one place
    waiting = clients[1].submit(api_name="/compare", **long)
    time.sleep(0.5)
    with pytest.raises(Exception) as full:
        clients[2].predict(api_name="/compare", **long)
    print(f"\nthird comparison with --max-queue 1: {type(full.value).__name__}: {full.value}")
    assert "queue" in str(full.value).lower() and "full" in str(full.value).lower(), full.value
    assert running.result(timeout=60)["ok"] and waiting.result(timeout=60)["ok"]


BAD_VALUES = [None, math.nan, math.inf, -math.inf, "x" * 5000, [], {"a": 1}, True, -1, 10**30, "false", 1.5]


def logged_in(url: str) -> urllib.request.OpenerDirector:
    """An HTTP opener holding the login's cookie, so raw calls reach gradio's own checks."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    body = urllib.parse.urlencode({"username": LOGIN[0], "password": LOGIN[1]}).encode()
    with opener.open(url + "login", data=body, timeout=10) as response:
        assert response.status == 200
    return opener


def raw(opener: urllib.request.OpenerDirector, url: str, path: str, body: bytes) -> int:
    headers = {"content-type": "application/json"}
    request = urllib.request.Request(url + path.lstrip("/"), data=body, headers=headers)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_two_hundred_malformed_calls_get_4xx_or_messages_and_no_traceback(public_app: AppServer) -> None:
    from playground.ui.api import compare_signature

    client = Client(public_app.url, auth=LOGIN, verbose=False)
    tracebacks_before = public_app.log().count("Traceback")
    outcomes: dict[str, int] = {}
    calls = 0
    for name in compare_signature().parameters:
        for value in BAD_VALUES:
            arguments = {"prompt": "tokens=1", "backends": "scripted", "max_new_tokens": 4, name: value}
            calls += 1
            try:
                result = client.predict(api_name="/compare", **arguments)
            except Exception as error:  # a refusal by gradio's own checks
                assert "500" not in str(error) and "Traceback" not in str(error), (name, value, error)
                outcomes["refused by gradio"] = outcomes.get("refused by gradio", 0) + 1
                continue
            assert isinstance(result, dict), (name, value, result)
            assert "Traceback" not in result.get("error", ""), (name, value, result)
            kind = "ran (a valid value)" if result["ok"] else "refused with a message"
            messages = [result["error"], *(r["error"] for r in result["records"])]  # a lane's own refusal
            assert result["ok"] or any(messages), (name, value, result)
            assert all("Traceback" not in m for m in messages), (name, value, result)
            outcomes[kind] = outcomes.get(kind, 0) + 1
    opener = logged_in(public_app.url)
    raw_calls = [
        ("/gradio_api/queue/join", json.dumps({"data": [], "fn_index": index, "session_hash": "s"}).encode())
        for index in (999, -1, 10**12, 2**31)
    ] + [
        ("/gradio_api/queue/join", b"not json"), ("/gradio_api/queue/join", b"[1, 2]"),
        ("/gradio_api/queue/join", json.dumps({"data": "x", "fn_index": "a"}).encode()),
        ("/gradio_api/call/compare", json.dumps({"data": ["only the prompt"]}).encode()),
        ("/gradio_api/call/compare", json.dumps({"data": None}).encode()),
        ("/gradio_api/call/no-such-api", json.dumps({"data": []}).encode()),
        ("/gradio_api/queue/join", b"{" + b" " * (5 * 2**20) + b"}"),
    ]
    for path, body in raw_calls * 4:
        calls += 1
        code = raw(opener, public_app.url, path, body)
        assert 400 <= code < 500, (path, body[:80], code)
        outcomes[f"HTTP {code}"] = outcomes.get(f"HTTP {code}", 0) + 1
    time.sleep(0.5)  # let the log catch up
    new_tracebacks = public_app.log().count("Traceback") - tracebacks_before
    print(f"\n{calls} malformed calls: {dict(sorted(outcomes.items()))}; tracebacks in the app log: "
          f"{new_tracebacks}")
    assert calls >= 200 and new_tracebacks == 0, public_app.log()[-3000:]


def login(url: str, user: str, password: str) -> tuple[int, str]:
    body = urllib.parse.urlencode({"username": user, "password": password}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "login", data=body), timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_guessing_the_password_is_throttled(public_app: AppServer) -> None:
    """Runs last in the module: it leaves the login locked for a few seconds."""
    started = time.monotonic()
    codes = [login(public_app.url, LOGIN[0], f"guess {i}")[0] for i in range(40)]
    took = time.monotonic() - started
    print(f"\n40 wrong passwords in {took:.2f} s: {codes.count(400)} checked (400), "
          f"{codes.count(429)} refused unheard (429)")
    assert codes[:5] == [400] * 5 and codes.count(429) >= 30, codes
    code, body = login(public_app.url, *LOGIN)
    assert code == 429 and "try again in" in json.loads(body)["detail"], body  # locked: even the owner waits
    deadline = time.monotonic() + 70
    while (code := login(public_app.url, *LOGIN)[0]) == 429 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert code == 200, code  # once the lock has passed, the right password gets in
