"""Who counts as the machine's owner, and how much work a stranger's comparison may ask for
(``engine.policy``, ``ui.options``, ``app.py``'s options). Milliseconds: no app, no worker."""

from __future__ import annotations

import pytest

import app
from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.parameters import SettingsError
from playground.engine.policy import DEFAULT_MAX_QUEUE, UNTRUSTED_MAX_TOKENS, Policy, work_tokens
from playground.engine.quotas import DEFAULT_MAX_JOBS_PER_CLIENT, DEFAULT_MAX_TOKENS_PER_CLIENT_HOUR
from playground.engine.records import BackendSpec
from playground.settings import GenerationSettings
from playground.ui.options import SHARE_USER, AppOptions, share_login


def request(lanes: int, warmup: int, runs: int, tokens: int, prompts: int = 1) -> ComparisonRequest:
    specs = [BackendSpec("scripted", f"d{i}") for i in range(lanes)]
    return ComparisonRequest(prompts=["hello"] * prompts, specs=specs, warmup=warmup, runs=runs,
                             settings=GenerationSettings(max_new_tokens=tokens))


@pytest.mark.parametrize(("host", "owner"), [
    ("127.0.0.1", True), ("::1", True), ("localhost", True),
    ("127.0.0.2", False), ("127.1.2.3", False), ("0.0.0.0", False), ("192.168.1.20", False), ("::", False),
])
def test_only_127_0_0_1_and_its_names_are_the_owners_page(host: str, owner: bool) -> None:
    assert AppOptions(host=host).untrusted is not owner
    assert AppOptions(host=host, public=True).untrusted  # behind a proxy or tunnel: trust nobody
    assert AppOptions(host=host, share=True).untrusted


def test_work_is_lanes_times_prompts_times_runs_times_tokens() -> None:
    assert work_tokens(request(lanes=3, warmup=1, runs=3, tokens=128, prompts=2)) == 3 * 2 * 4 * 128


def test_a_comparison_over_the_work_limit_is_refused_with_its_figures() -> None:
    policy = Policy(untrusted=True, max_tokens_per_request=1000)
    policy.check_work(request(lanes=1, warmup=1, runs=3, tokens=250))  # exactly 1,000: allowed
    with pytest.raises(SettingsError) as refused:
        policy.check_work(request(lanes=2, warmup=1, runs=3, tokens=128))
    message = str(refused.value)
    assert "up to 1,024 tokens" in message and "allows 1,000" in message, message
    assert "--max-tokens-per-request" in message
    # what the issue saw accepted: runs=100, warm-up 10 on six lanes
    with pytest.raises(SettingsError):
        Policy(untrusted=True, max_tokens_per_request=UNTRUSTED_MAX_TOKENS).check_work(
            request(lanes=6, warmup=10, runs=100, tokens=128))


def test_the_owners_page_has_no_work_limit_and_a_strangers_has_the_launch_options() -> None:
    huge = request(lanes=6, warmup=10, runs=100, tokens=4096)
    AppOptions(host="127.0.0.1").policy.check_work(huge)  # the owner may ask for hours
    Policy.local().check_work(huge)  # so may the CLI
    assert AppOptions(host="127.0.0.1", public=True).policy.max_tokens_per_request == UNTRUSTED_MAX_TOKENS
    assert AppOptions(share=True, max_tokens_per_request=500).policy.max_tokens_per_request == 500
    assert AppOptions(share=True, max_tokens_per_request=0).policy.max_tokens_per_request is None


def test_only_a_strangers_prompt_is_capped_in_characters_the_owners_by_the_model_context(
        scripted_backend: None) -> None:
    """Issue 13: the owner's page and the CLI may send a prompt as long as the model's context; the
    32,000-character cap is an untrusted page's, applied before anything tokenises the prompt."""
    long = request(lanes=1, warmup=0, runs=1, tokens=8)
    long.prompts = ["word " * 8_000]  # 40,000 characters
    with pytest.raises(SettingsError, match=r"The prompt is 40,000 characters long; the limit is 32,000\."):
        AppOptions(share=True).policy.check_work(long)
    AppOptions(host="127.0.0.1").policy.check_work(long)
    Policy.local().check_work(long)
    # the engine then bounds it by the model's context (the demo model's: 1,024 tokens)
    with pytest.raises(SettingsError, match="the model's context is 1,024 tokens"):
        Comparison(long)


def test_a_lane_is_the_same_whatever_the_case_of_its_device(scripted_backend: None) -> None:
    twice = ComparisonRequest(prompts=["tokens=2"], specs=[BackendSpec.parse("scripted:CPU:scripted"),
                                                           BackendSpec.parse("scripted:cpu:scripted")])
    with pytest.raises(SettingsError, match="selected twice"):
        Comparison(twice)


def test_launch_options_for_trust_and_limits() -> None:
    args = app.parse_args(["--public", "--max-tokens-per-request", "2048", "--max-queue", "3"])
    assert args.public and args.max_tokens_per_request == 2048 and args.max_queue == 3
    defaults = app.parse_args([])
    assert not defaults.public and defaults.max_tokens_per_request == UNTRUSTED_MAX_TOKENS
    assert defaults.max_queue == DEFAULT_MAX_QUEUE
    for bad in (["--max-queue", "0"], ["--max-tokens-per-request", "-1"]):
        with pytest.raises(SystemExit):
            app.parse_args(bad)


def test_a_shared_link_without_auth_gets_a_generated_login_unless_the_owner_says_no_auth() -> None:
    generated = share_login(share=True, auth=None, no_auth=False)
    assert generated is not None and generated[0] == SHARE_USER and len(generated[1]) >= 16
    assert share_login(share=True, auth=None, no_auth=False) != generated  # a new secret each start
    assert share_login(share=True, auth=("me", "pw"), no_auth=False) == ("me", "pw")
    assert share_login(share=True, auth=None, no_auth=True) is None  # said explicitly
    assert share_login(share=False, auth=None, no_auth=False) is None  # the owner's loopback page
    assert app.parse_args(["--share", "--no-auth"]).no_auth
    with pytest.raises(SystemExit):
        app.parse_args(["--no-auth", "--auth", "a:b"])


def test_per_client_quotas_are_launch_options_of_untrusted_pages_only() -> None:
    args = app.parse_args(["--max-jobs-per-client", "3", "--max-tokens-per-client-hour", "500"])
    assert args.max_jobs_per_client == 3 and args.max_tokens_per_client_hour == 500
    defaults = app.parse_args([])
    assert defaults.max_jobs_per_client == DEFAULT_MAX_JOBS_PER_CLIENT
    assert defaults.max_tokens_per_client_hour == DEFAULT_MAX_TOKENS_PER_CLIENT_HOUR
    with pytest.raises(SystemExit):
        app.parse_args(["--max-jobs-per-client", "-1"])
    assert AppOptions().client_quota() is None  # the owner's loopback page has none
    quota = AppOptions(public=True, max_jobs_per_client=3, max_tokens_per_client_hour=0).client_quota()
    assert quota is not None and quota.max_jobs == 3 and quota.max_tokens is None
    assert AppOptions(share=True, max_jobs_per_client=0, max_tokens_per_client_hour=0).client_quota() is None


def test_the_default_selection_never_exceeds_the_lane_limit() -> None:
    """Six local runtimes and two configured endpoints: all eight usable, but a page allows six
    lanes, so the default picks the first six in panel order (the endpoints come after) and Run
    works at once; an explicit --backends list is taken as given."""
    from playground.backends.base import BackendProbe, DeviceProbe
    from playground.engine.policy import MAX_LANES
    from playground.ui.backend_picker import build_rows

    names = ["transformers", "openvino-genai", "optimum-intel", "onnxruntime-genai", "npu-library",
             "llama.cpp", "lab", "ollama"]
    probes = {name: BackendProbe(name, name, installed=True, devices=[DeviceProbe("CPU", True)],
                                 precisions=["int4"]) for name in names}
    rows = build_rows(probes, (), MAX_LANES)
    assert [r.name for r in rows if r.selected] == names[:MAX_LANES]
    assert all(r.usable for r in rows)  # still pickable: the user chooses which six
    assert sum(r.selected for r in build_rows(probes, ())) == 8  # the CLI's view: no limit
    chosen = build_rows(probes, ("lab", "ollama"), MAX_LANES)
    assert [r.name for r in chosen if r.selected] == ["lab", "ollama"]
