"""Per-client quotas of an untrusted page (``engine.quotas``) on a fake clock, and who a client
is (``client_key``): milliseconds, no app."""

from __future__ import annotations

import pytest
from test_login_throttle import Clock  # the same fake clock

from playground.engine.quotas import ClientQuota, QuotaExceeded, client_key


def test_a_client_is_its_login_else_its_address_and_a_proxy_names_the_last_hop() -> None:
    assert client_key("ann", "10.0.0.1") == "user:ann"
    assert client_key(None, "10.0.0.1") == client_key(None, "10.0.0.1", "1.2.3.4")  # not behind a proxy
    # behind a proxy every client has its address; the hop the proxy added names the client, and
    # what the client wrote before it (forgeable) does not
    assert client_key(None, "127.0.0.1", "6.6.6.6, 1.2.3.4", behind_proxy=True) == "addr:1.2.3.4"
    assert client_key(None, "127.0.0.1", "9.9.9.9, 1.2.3.4", behind_proxy=True) == "addr:1.2.3.4"
    assert client_key(None, None) == "addr:unknown"
    assert len(client_key(None, "x" * 5000)) < 80  # a huge header cannot become a huge key


def test_jobs_at_once_are_refused_past_the_limit_with_the_option_named() -> None:
    quota = ClientQuota(max_jobs=2, max_tokens=None)
    quota.check_jobs("addr:a", pending=1)
    with pytest.raises(QuotaExceeded, match=r"2 per user at a time.*--max-jobs-per-client"):
        quota.check_jobs("addr:a", pending=2)
    ClientQuota(max_jobs=None).check_jobs("addr:a", pending=100)


def test_work_per_hour_is_counted_per_client_and_frees_as_the_window_moves() -> None:
    clock = Clock()
    quota = ClientQuota(max_jobs=None, max_tokens=1000, window_s=3600, clock=clock)
    quota.charge("addr:a", 600)
    clock.now += 600
    quota.charge("addr:a", 400)  # exactly at the limit
    with pytest.raises(QuotaExceeded) as refused:
        quota.charge("addr:a", 1)
    message = str(refused.value)
    assert "1,000 per hour" in message and "--max-tokens-per-client-hour" in message
    assert "about 50 min" in message, message  # the first 600 leave the window in 3,000 s
    assert quota.used("addr:a") == 1000  # a refusal counts nothing
    quota.charge("addr:b", 1000)  # another client has its own window
    clock.now += 3000  # the first charge leaves the window
    quota.charge("addr:a", 600)
    assert quota.used("addr:a") == 1000
    clock.now += 7200
    assert quota.used("addr:a") == 0 and quota.used("addr:b") == 0
    ClientQuota(max_tokens=None).charge("addr:a", 10**9)


def test_one_request_larger_than_the_window_is_refused_outright() -> None:
    quota = ClientQuota(max_tokens=100, clock=Clock())
    with pytest.raises(QuotaExceeded, match="100 per hour"):
        quota.charge("addr:a", 101)
