"""Fidelity benchmark: does the playground change the numbers it shows?

python -m playground.bench.fidelity --json fidelity.json
python -m playground.bench.fidelity --backends transformers --max-new-tokens 16 --rounds 1 --runs 1

For every backend, in one invocation and interleaved (by default each round runs every mode twice,
mirrored: native engine api page page api engine native, the mirror flipped the next round):

- ``native``: the runtime's own loop on the model the adapter loaded (``playground.bench.native``);
- ``engine``: the engine headless (a Comparison in this process, workers kept loaded);
- ``api``:    ``/compare`` of a real app on loopback, through ``gradio_client``;
- ``page``:   the same app's page in headless Chromium (Playwright), Run pressed, records downloaded.

Every mode uses the same prompt, max new tokens (EOS ignored, greedy; by default chosen per backend
so a run lasts ~1.5 s), warm-up and runs, thread budget and sequential mode. The tables give medians
per mode and the ratios engine / native (the engine's overhead), api / engine and page / engine
(what the page costs) as the median of per-round ratios with a 95 % bootstrap interval, min-max,
the TTFT differences in ms and a verdict against the target (met, missed, or cannot tell). Every
run records how much CPU time a VM's host took ("steal"); the "quiet" ratios use only the runs
where it stayed within ``STEAL_LIMIT_PERCENT``, since on a shared host steal moves the figures more
than the page does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from playground.engine import stats
from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.contention import STEAL_LIMIT_PERCENT
from playground.engine.policy import Policy
from playground.engine.pool import WorkerPool
from playground.engine.records import BackendSpec, parse_backend_specs
from playground.engine.threads import THREADS_ENV, thread_budget, worker_env
from playground.models.chat import DEFAULT_SYSTEM_PROMPT, render_prompt
from playground.models.resolve import resolve_model
from playground.paths import DEMO_MODEL_ID, REPO_ROOT, cache_dir
from playground.settings import GenerationSettings

MODES = ("native", "engine", "api", "page")
DEFAULT_PROMPT = "Explain what a Python list is."
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
# The largest token count --run-seconds may choose: the demo model's context is 1,024 tokens.
MAX_TOKENS_CAP = 768
# What each ratio must reach (issue 9): the page and the API cost a fast runtime at most 5 %, the
# engine at most 2 % of the runtime's own loop.
TARGETS = {"engine/native": 0.98, "api/engine": 0.95, "page/engine": 0.95}
RATIOS = {"engine/native": ("engine", "native"), "api/engine": ("api", "engine"),
          "page/engine": ("page", "engine")}
APP_START_TIMEOUT_S = 240.0
RUN_TIMEOUT_S = 900.0


@dataclass
class Settings:
    model: str
    prompt: str
    max_new_tokens: int
    warmup: int
    runs: int
    system_prompt: str = DEFAULT_SYSTEM_PROMPT  # the page's default: every path gets the same prompt


# -- native ------------------------------------------------------------------------------------

class NativeProcess:
    """``python -m playground.bench.native`` for one backend, with the workers' environment."""

    def __init__(self) -> None:
        env = {**os.environ, **worker_env(thread_budget()),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
               "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "playground.bench.native"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, env=env, cwd=str(cache_dir("workdir")),
        )

    def call(self, cmd: str, **args: Any) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"native loop process exited ({self.proc.poll()})")
        answer = json.loads(line)
        if not answer.pop("ok"):
            raise RuntimeError(f"native {cmd} failed: {answer['error']}")
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write('{"cmd": "exit"}\n')  # no answer to wait for
            self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def run_native(native: NativeProcess, loaded: dict, templated: str, settings: Settings) -> list[dict]:
    for _ in range(settings.warmup):
        native.call("generate", prompt=templated, max_new_tokens=settings.max_new_tokens)
    return [{**loaded, "page_attached": False,
             **native.call("generate", prompt=templated, max_new_tokens=settings.max_new_tokens)}
            for _ in range(settings.runs)]


# -- engine headless ---------------------------------------------------------------------------

def run_engine(spec: BackendSpec, pool: WorkerPool, settings: Settings) -> list[dict]:
    request = ComparisonRequest(
        prompts=[settings.prompt], specs=[spec], model=settings.model, system_prompt=settings.system_prompt,
        settings=GenerationSettings(max_new_tokens=settings.max_new_tokens, stop_at_eos=False),
        warmup=settings.warmup, runs=settings.runs,
    )
    model, _ = Policy.local().admit(request.model, request.specs)
    comparison = Comparison(request, pool=pool, model=model)
    for _ in comparison.events():
        pass
    return [record.to_dict() for record in comparison.records]


# -- the app: API and page ---------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class App:
    """``python app.py`` on loopback in its own process group (its workers go with it)."""

    def __init__(self, model: str, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
        env.pop("GRADIO_SERVER_PORT", None)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(REPO_ROOT / "app.py"), "--port", str(self.port), "--model", model],
                cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        deadline = time.monotonic() + APP_START_TIMEOUT_S
        while not self._serving():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"app.py did not start serving:\n{tail}")
            time.sleep(0.5)

    def _serving(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def run_api(client: Any, spec: BackendSpec, settings: Settings) -> list[dict]:
    text = ":".join([spec.backend, spec.device, spec.precision])
    answer = client.predict(
        prompt=settings.prompt, backends=text, model=settings.model, max_new_tokens=settings.max_new_tokens,
        stop_at_eos=False, mode="sequential", warmup=settings.warmup, runs=settings.runs,
        system_prompt=settings.system_prompt, api_name="/compare",
    )
    if not answer.get("ok"):
        raise RuntimeError(f"/compare failed: {answer.get('error') or answer.get('records')}")
    return answer["records"]


# Resolves when the run has ended. A MutationObserver on the two elements that say so, rather than
# Playwright's polling: the harness must not wake the browser (and itself) while a run is timed;
# a real user's page has no harness at all.
RUN_ENDED_JS = """(timeoutMs) => new Promise((resolve, reject) => {
  const ended = () => { const status = document.querySelector('#run-status').textContent;
    return !document.querySelector('#download-json').disabled || status.includes('Cannot run')
           || status.includes('failed'); };
  if (ended()) return resolve(true);
  const observer = new MutationObserver(() => { if (ended()) { observer.disconnect(); resolve(true); } });
  observer.observe(document.body, {subtree: true, childList: true, characterData: true,
                                   attributes: true, attributeFilter: ['disabled']});
  setTimeout(() => { observer.disconnect(); reject(new Error('the run did not end in time')); }, timeoutMs);
})"""


class PageDriver:
    """The live page in headless Chromium, set up and run like a user would."""

    def __init__(self, url: str) -> None:
        from playwright.sync_api import sync_playwright

        if not CHROMIUM.exists():
            raise RuntimeError("Chromium is missing: install it with `apt-get install -y chromium`")
        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                                        args=CHROMIUM_ARGS)
        self.page = self.browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        self.page.set_default_timeout(60_000)
        self.page.goto(url)
        self.page.wait_for_selector("#run-button")
        self._configured: dict[str, Any] = {}

    def _checkbox(self, selector: str, checked: bool) -> None:
        box = self.page.locator(f"{selector} input[type=checkbox]")
        if box.is_checked() != checked:
            box.click()

    def _number(self, selector: str, value: int) -> None:
        box = self.page.locator(f"{selector} input[type=number]")
        box.fill(str(value))
        box.press("Enter")
        box.blur()

    def configure(self, spec: BackendSpec, settings: Settings) -> None:
        page = self.page
        cards = page.locator('[id^="pick-"]')
        for index in range(cards.count()):
            card = cards.nth(index).get_attribute("id") or ""
            # by attribute: a backend's name may hold a "." ("llama.cpp"), which "#id" reads as a class
            self._checkbox(f'[id="{card}"]', card == f"pick-{spec.backend}")
        if self._configured.get("settings") != settings:
            page.locator("#prompt textarea").fill(settings.prompt)
            page.locator("#system-prompt textarea").fill(settings.system_prompt)
            self._number("#max-new-tokens", settings.max_new_tokens)
            self._checkbox("#stop-at-eos", False)
            page.get_by_label("one after another (fair)").check()
            if not page.locator("#runs input[type=number]").is_visible():
                page.locator("#more-settings").get_by_text("More settings").click()
            self._number("#warmup", settings.warmup)
            self._number("#runs", settings.runs)
            self._configured["settings"] = settings

    def run(self, spec: BackendSpec, settings: Settings) -> list[dict]:
        page = self.page
        self.configure(spec, settings)
        page.locator("#clear-table").click()
        page.wait_for_function("() => document.querySelector('#download-json').disabled")
        page.locator("#run-button").click()
        page.evaluate(RUN_ENDED_JS, RUN_TIMEOUT_S * 1000)  # one call, no polling while it runs
        status = page.locator("#run-status").inner_text()
        if "Finished" not in status:
            raise RuntimeError(f"the page's run did not finish: {status}")
        with page.expect_download() as download:
            page.locator("#download-json").click()
        rows = json.loads(Path(download.value.path()).read_text())
        return [row for row in rows if row.get("backend") == spec.backend]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.browser.close()
        with contextlib.suppress(Exception):
            self._playwright.stop()


# -- orchestration -----------------------------------------------------------------------------

@dataclass
class Result:
    backend: str
    mode: str
    round: int
    record: dict


@dataclass
class Bench:
    settings: Settings
    specs: list[BackendSpec]
    modes: Sequence[str]
    rounds: int
    order: str = "palindrome"
    run_seconds: float = 0.0  # > 0: each backend's token count is chosen so a run lasts about this long
    max_tokens_cap: int = MAX_TOKENS_CAP
    app: App | None = None
    client: Any = None
    driver: PageDriver | None = None
    results: list[Result] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # backend -> why it was not measured
    new_tokens: dict[str, int] = field(default_factory=dict)  # backend -> the max new tokens it ran

    def run(self, log: Callable[[str], None]) -> list[Result]:
        model_dir = resolve_model(self.settings.model).path
        templated = render_prompt(model_dir, self.settings.prompt, self.settings.system_prompt)
        for spec in self.specs:
            try:
                self._backend(spec, model_dir, templated, log)
            except Exception as exc:  # one backend failing must not lose the others' figures
                message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                self.failures[spec.backend] = message
                log(f"[{spec.backend}] FAILED: {message}")
        return self.results

    def settings_for(self, spec: BackendSpec, pool: WorkerPool, log: Callable[[str], None]) -> Settings:
        """The settings of ``spec``'s runs: with ``run_seconds``, as many new tokens as its decode
        rate (one calibration run through the engine) gives in that time, within the asked count
        and the cap. A fast runtime's 128 tokens last a fraction of a second, shorter than this
        host's swings; a longer run averages them out."""
        settings = self.settings
        if self.run_seconds > 0:
            calibration = replace(settings, warmup=1, runs=1)
            rate = stats.median(r.get("decode_tokens_per_s") for r in run_engine(spec, pool, calibration))
            wanted = math.ceil((rate or 0.0) * self.run_seconds)
            settings = replace(settings, max_new_tokens=min(self.max_tokens_cap,
                                                            max(settings.max_new_tokens, wanted)))
            log(f"[{spec.backend}] calibrated: {rate or 0:,.1f} tok/s -> "
                f"{settings.max_new_tokens} new tokens per run")
        self.new_tokens[spec.backend] = settings.max_new_tokens
        return settings

    def _backend(self, spec: BackendSpec, model_dir: Path, templated: str,
                 log: Callable[[str], None]) -> None:
        """Every mode for one backend, interleaved; its loaded processes are closed afterwards."""
        native = NativeProcess() if "native" in self.modes else None
        pool = WorkerPool()
        try:
            settings = self.settings_for(spec, pool, log)
            loaded: dict = {}
            if native is not None:
                loaded = native.call("load", backend=spec.backend, model_dir=str(model_dir),
                                     device=spec.device, precision=spec.precision)
                log(f"[{spec.backend}] native loop loaded on {loaded['device']} {loaded['precision']}")
            runners: dict[str, Callable[[], list[dict]]] = {
                "native": lambda: run_native(native, loaded, templated, settings),  # type: ignore[arg-type]
                "engine": lambda: run_engine(spec, pool, settings),
                "api": lambda: run_api(self.client, spec, settings),
                "page": lambda: self.driver.run(spec, settings),  # type: ignore[union-attr]
            }
            for round_ in range(self.rounds):
                for mode in round_order(self.modes, round_, self.order):
                    started = time.perf_counter()
                    records = runners[mode]()
                    self.results += [Result(spec.backend, mode, round_ + 1, record) for record in records]
                    rates = ", ".join(f"{r.get('decode_tokens_per_s') or 0:,.1f}" for r in records)
                    log(f"[{spec.backend}] round {round_ + 1} {mode}: {rates} tok/s "
                        f"({time.perf_counter() - started:.1f} s)")
        finally:
            pool.close_all()
            if native is not None:
                native.close()


def round_order(modes: Sequence[str], round_index: int, order: str) -> list[str]:
    """The modes of one round, in the order they run.

    ``palindrome`` (the default): every mode twice, mirrored (A B C C B A), and the mirror flipped
    each round (C B A A B C). The host's speed drifts over a round; a mirrored order gives each mode
    the same mean time in the round, so a linear drift cancels from every ratio, and a mode's two
    runs are averaged. ``rotate``: every mode once, the order rotating each round (the first design,
    which left a drift within a round in the ratios)."""
    modes = list(modes)
    if order == "rotate":
        shift = round_index % len(modes)
        return modes[shift:] + modes[:shift]
    if order != "palindrome":
        raise ValueError(f"unknown order {order!r}: palindrome or rotate")
    if round_index % 2:
        modes.reverse()
    return modes + modes[::-1]


def resolve_specs(names: list[str], backends_api: list[dict] | None) -> list[BackendSpec]:
    """Explicit device and precision (the page's defaults), so every mode reuses one loaded worker."""
    rows = {row["name"]: row for row in backends_api or []}
    specs = []
    for spec in parse_backend_specs(names):
        row = rows.get(spec.backend)
        if row is not None and not row["usable"]:
            raise RuntimeError(f"{spec.backend} cannot run here: {row['note']}")
        specs.append(BackendSpec(spec.backend, spec.device or (row or {}).get("device", ""),
                                 spec.precision or (row or {}).get("precision", "")))
    return specs


def _values(results: list[Result], mode: str, name: str, round_: int | None = None) -> list[float]:
    return [r.record[name] for r in results if r.mode == mode and r.record.get(name) is not None
            and (round_ is None or r.round == round_)]


def paired_ratio(results: list[Result], top: str, bottom: str, target: float | None = None) -> dict[str, Any]:
    """Median over rounds of (top's median / bottom's median in that round), with the min-max,
    a 95 % bootstrap interval of that median, and whether it shows ``target`` met.

    Pairing by round compares runs taken minutes apart at most: the machine's speed drifts
    (a VM's host takes more or less of it), and a ratio of two all-run medians would carry that
    drift; a per-round ratio mostly cancels it (the palindrome order cancels a linear drift within
    the round as well)."""
    per_round = []
    for round_ in sorted({r.round for r in results}):
        a = stats.median(_values(results, top, "decode_tokens_per_s", round_))
        b = stats.median(_values(results, bottom, "decode_tokens_per_s", round_))
        if a and b:
            per_round.append(a / b)
    interval = stats.median_interval(per_round)
    return {"ratio": stats.median(per_round), "rounds": len(per_round),
            "min": min(per_round) if per_round else None, "max": max(per_round) if per_round else None,
            "interval": list(interval) if interval else None, "per_round": per_round,
            "target": target, "verdict": stats.verdict(interval, target) if target is not None else None}


def summarize(results: list[Result], modes: Sequence[str]) -> list[dict]:
    """Per backend: median decode tok/s and TTFT per mode, and paired ratios with their spread,
    over every run and over the quiet runs (no VM-host steal above the limit)."""
    summary = []
    for backend in dict.fromkeys(r.backend for r in results):
        mine = [r for r in results if r.backend == backend and not r.record.get("error")]
        quiet = [r for r in mine if not r.record.get("contended_host")]
        row: dict[str, Any] = {"backend": backend}
        for mode in modes:
            rates = _values(mine, mode, "decode_tokens_per_s")
            ttfts = _values(mine, mode, "ttft_s")
            row[mode] = {"decode_tokens_per_s": stats.median(rates), "ttft_s": stats.median(ttfts),
                         "n": len(rates), "min": min(rates) if rates else None,
                         "max": max(rates) if rates else None}
        for name, (top, bottom) in RATIOS.items():
            if top not in modes or bottom not in modes:
                continue
            ta, tb = row[top]["ttft_s"], row[bottom]["ttft_s"]
            row[name] = {**paired_ratio(mine, top, bottom, TARGETS[name]),
                         "quiet": paired_ratio(quiet, top, bottom, TARGETS[name]),
                         "ttft_delta_ms": (ta - tb) * 1000 if ta is not None and tb is not None else None}
        busy = [r for r in mine if r.record.get("busy_machine")]
        row["busy_runs"] = {mode: sum(r.mode == mode for r in busy) for mode in modes}
        row["contended_runs"] = {mode: sum(r.mode == mode for r in mine if r.record.get("contended_host"))
                                 for mode in modes}
        steal = [r.record["host_steal_percent"] for r in mine
                 if r.record.get("host_steal_percent") is not None]
        row["host_steal_percent"] = {"median": stats.median(steal), "max": max(steal) if steal else None}
        row["threads"] = next((r.record.get("threads") for r in mine if r.record.get("threads")), None)
        row["new_tokens"] = stats.median(r.record.get("new_tokens") for r in mine)
        summary.append(row)
    return summary


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def format_table(summary: list[dict], modes: Sequence[str]) -> str:
    """Two tables: the median decode rate of every mode per backend; then every ratio with its
    95 % interval, min-max, the ratio over the quiet rounds, TTFT difference and the verdict."""
    rates = [["backend", "threads", "new tokens", "steal % (max)", *[f"{m} tok/s" for m in modes]]]
    for row in summary:
        steal = row.get("host_steal_percent", {})
        rates.append([row["backend"], str(row["threads"] or "-"), stats.fmt(row.get("new_tokens"), 0),
                      f"{stats.fmt(steal.get('median'), 0)} ({stats.fmt(steal.get('max'), 0)})",
                      *[stats.fmt(row[m]["decode_tokens_per_s"]) for m in modes]])
    ratios = [["backend", "ratio", "median", "95 % interval", "min-max", "rounds", "quiet",
               "TTFT diff ms", "target", "verdict"]]
    for row in summary:
        for name in RATIOS:
            r = row.get(name)
            if r is None:
                continue
            low, high = r.get("interval") or (None, None)
            quiet = r.get("quiet", {})
            ratios.append([
                row["backend"], name, stats.fmt(r.get("ratio"), 3),
                f"{stats.fmt(low, 3)}-{stats.fmt(high, 3)}",
                f"{stats.fmt(r.get('min'), 2)}-{stats.fmt(r.get('max'), 2)}", str(r.get("rounds", 0)),
                f"{stats.fmt(quiet.get('ratio'), 3)} ({quiet.get('rounds', 0)})",
                f"{r.get('ttft_delta_ms') or 0:+.2f}", f">= {r['target']:.2f}", r.get("verdict") or "-",
            ])
    lines = [*_aligned(rates), "", *_aligned(ratios)]
    lines.append(f"steal = CPU time a VM's host took from this machine during the runs; quiet = rounds of "
                 f"runs with at most {STEAL_LIMIT_PERCENT:.0f} % steal; a ratio is the median of per-round "
                 "ratios, its interval a 95 % bootstrap over the rounds; verdict: met / missed when the "
                 "whole interval is above / below the target, else cannot tell")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m playground.bench.fidelity",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--model", default=DEMO_MODEL_ID)
    parser.add_argument("--backends", default="", help="comma list of name[:device[:precision]] "
                        "(default: every backend usable here)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"subset of {','.join(MODES)}")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--max-new-tokens", type=int, default=128,
                        help="new tokens per run (the least, with --run-seconds)")
    parser.add_argument("--run-seconds", type=float, default=1.5,
                        help="choose each backend's new tokens so a run lasts about this long, from a "
                        "calibration run (0 = always --max-new-tokens)")
    parser.add_argument("--max-tokens-cap", type=int, default=MAX_TOKENS_CAP,
                        help="the most new tokens --run-seconds may choose (within the model's context)")
    parser.add_argument("--order", choices=("palindrome", "rotate"), default="palindrome",
                        help="palindrome: every mode twice per round, mirrored (A B B A), so a drift of the "
                        "machine's speed cancels; rotate: once each, the order rotating")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds")
    parser.add_argument("--runs", type=int, default=1, help="measured runs per mode each time it runs")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up runs before them, each time")
    parser.add_argument("--threads", default=None,
                        help=f"thread budget for the runtimes (sets {THREADS_ENV}; "
                        "default: logical CPUs - 1; 0 = each runtime's own default)")
    parser.add_argument("--json", type=Path, help="write the records and the summary here")
    return parser


@contextlib.contextmanager
def app_and_page(model: str, modes: Sequence[str]) -> Iterator[tuple[App | None, Any, PageDriver | None]]:
    if not {"api", "page"} & set(modes):
        yield None, None, None
        return
    from gradio_client import Client

    app = App(model, cache_dir("logs") / f"fidelity-app-{os.getpid()}.log")
    driver = None
    try:
        client = Client(app.url, verbose=False)
        driver = PageDriver(app.url) if "page" in modes else None
        yield app, client, driver
    finally:
        if driver is not None:
            driver.close()
        app.close()


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The app runs in its own session (its workers go with it): a `kill` of the benchmark must still
    # close it, or an orphaned app and its loaded workers skew every later measurement.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    if args.threads is not None:
        os.environ[THREADS_ENV] = args.threads  # before any worker, the app or the native loop starts
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        print(f"error: --modes takes {', '.join(MODES)}", file=sys.stderr)
        return 2
    settings = Settings(args.model, args.prompt, args.max_new_tokens, args.warmup, args.runs)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.perf_counter()
    with app_and_page(args.model, modes) as (app, client, driver):
        backends = client.predict(api_name="/backends") if client is not None else None
        if backends is None:
            from playground.engine.probing import probe_all

            backends = [{"name": n, "usable": p.usable, "note": p.reason,
                         "device": p.default_device() or "", "precision": p.default_precision}
                        for n, p in probe_all().items()]
        names = ([args.backends] if args.backends.strip()
                 else [b["name"] for b in backends if b["usable"]])
        specs = resolve_specs(names, backends)
        bench = Bench(settings, specs, modes, args.rounds, args.order, args.run_seconds, args.max_tokens_cap,
                      app, client, driver)
        results = bench.run(log)
    summary = summarize(results, modes)
    print(format_table(summary, modes))
    for backend, message in bench.failures.items():
        print(f"{backend}: not measured: {message}")
    tokens = (f"new tokens for ~{args.run_seconds:g} s runs (at least {args.max_new_tokens})"
              if args.run_seconds > 0 else f"{args.max_new_tokens} new tokens")
    per_round = 2 if args.order == "palindrome" else 1
    print(f"\n{len(results)} records in {time.perf_counter() - started:.0f} s; model {args.model}, "
          f"{tokens}, {args.rounds} rounds ({args.order}: each mode {per_round} x {args.runs} run(s) "
          f"+{args.warmup} warm-up per round), "
          f"threads {thread_budget() or 'runtime default'}, {os.cpu_count()} logical CPUs")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "config": {**vars(settings), "rounds": args.rounds, "order": args.order,
                       "run_seconds": args.run_seconds, "max_tokens_cap": args.max_tokens_cap,
                       "new_tokens": bench.new_tokens, "modes": modes, "threads": thread_budget(),
                       "cpus": os.cpu_count()},
            "summary": summary,
            "failures": bench.failures,
            # "path": how the run was driven; "mode" stays the engine's (sequential)
            "records": [{"path": r.mode, "round": r.round, **r.record} for r in results],
        }, indent=2, default=str))
        print(f"wrote {args.json}")
    return 1 if bench.failures or not results else 0


if __name__ == "__main__":
    sys.exit(main())
