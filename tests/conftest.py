"""Shared fixtures: the real app (``python app.py``) started once per test session.

``PLAYGROUND_TEST_MODEL`` picks the model (default: the embedded demo model). Conversions go to
``PLAYGROUND_CACHE`` when it is set (reuse a warm cache), else to a temp dir shared by the session.

The fast layer alone (``pytest -m "not slow"``) runs on parallel workers (``tests/parallel.py``);
a parallel run's controller boots the scripted app and Chromium once for them (``early_boot``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import early_boot
import parallel
import pytest
from early_boot import BOOT_FILE_ENV, BootFile, ChromiumOnPage, EarlyBoot, cache_bytecode, install_plugin

from playground.gradio_fast_import import skip_stub_regeneration

cache_bytecode()  # before the test modules: their assertion rewrites and compiled code are kept
skip_stub_regeneration()  # the test modules import gradio as the app does: without its stub rewrite

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "test-artifacts"
TEST_MODEL = os.environ.get("PLAYGROUND_TEST_MODEL", "demo")
START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AppServer:
    """A running ``app.py``; its own process group, so stopping it takes its workers along.
    Without ``proc`` it is another process's (a parallel run's controller): only used, not stopped."""

    proc: subprocess.Popen | None
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def serving(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def start_app(args: list[str], cache: Path, log_path: Path, port: int | None = None,
              base_env: dict[str, str] | None = None) -> AppServer:
    """Start ``app.py`` on ``port`` (default: a free one) and wait until it serves the page.
    ``base_env`` (default: this process's environment) is what the app inherits."""
    port = port or free_port()
    env = {**(os.environ if base_env is None else base_env), "PLAYGROUND_CACHE": str(cache),
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    env.pop("GRADIO_SERVER_PORT", None)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "app.py"), "--port", str(port), *args],
            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    server = AppServer(proc, f"http://127.0.0.1:{port}/", log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.serving():
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"app.py did not start serving:\n{server.log()[-4000:]}")
        time.sleep(0.5)
    return server


@dataclass
class Session:
    """What the session sets up before any test: its private data folder and the early boot."""

    data_dir: Path
    saved_env: str | None
    boot: EarlyBoot | None = None
    shared: BootFile | None = None  # a parallel worker: what the controller booted


SESSION: Session | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """The fast layer alone runs on parallel workers (``tests/parallel.py``)."""
    parallel.configure(config)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: absent without it
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    return parallel.scheduler(config, log)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Point history and exports at a private folder (before the early boot's app inherits the
    environment), then boot the fast layer's app and Chromium in the background (``early_boot``)."""
    from playground.history.location import DATA_DIR_ENV

    global SESSION
    # outside the temp folder and the repository, like a user's data folder: gradio serves files
    # from those two by itself, so a download from anywhere else must be allowed explicitly
    parent = Path.home() / ".cache" / "ai-pc-playground-tests"
    parent.mkdir(parents=True, exist_ok=True)
    SESSION = Session(Path(tempfile.mkdtemp(prefix="data-", dir=parent)), os.environ.get(DATA_DIR_ENV))
    os.environ[DATA_DIR_ENV] = str(SESSION.data_dir)
    if parallel.is_worker() and os.environ.get(BOOT_FILE_ENV):
        SESSION.shared = BootFile(Path(os.environ[BOOT_FILE_ENV]))
        return
    if early_boot.wanted(session.config.args, REPO_ROOT / "tests"):
        work = Path(tempfile.mkdtemp(prefix="playground-early-"))
        environment = dict(os.environ)  # now: the tests' monkeypatching must not reach the app
        ready = None
        if parallel.is_controller(session.config):  # its workers start after this hook: they inherit it
            shared = BootFile(work / "boot.json")
            os.environ[BOOT_FILE_ENV] = str(shared.path)

            def ready(name: str, result: object) -> None:
                shared.write(name, published(result))
        SESSION.boot = EarlyBoot.start(
            PLUGIN_EXAMPLE, work,
            lambda site: start_app(SCRIPTED_APP_ARGS, work / "cache", ARTIFACTS / "app-scripted.log",
                                   base_env=scripted_app_env(environment, site)),
            CHROMIUM if CHROMIUM.exists() else None, CHROMIUM_ARGS, ready,
        )


def published(result: object) -> dict:
    """One early-boot result as its workers read it (``early``)."""
    if isinstance(result, BaseException):
        return {"error": f"{type(result).__name__}: {result}"[:4000]}
    if isinstance(result, Path):
        return {"path": str(result)}
    if isinstance(result, AppServer):
        return {"url": result.url, "log_path": str(result.log_path)}
    if isinstance(result, ChromiumOnPage):
        return {"endpoint": result.endpoint}
    return {"absent": True}  # no Chromium here


BOOTED = ("echo_plugin", "scripted_app", "page")  # fixtures that wait for the early boot
ON_THE_APP = ("scripted_app", "page")  # one app and one page: their modules share a worker


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """On parallel workers, tell the controller which modules use the scripted app or its page
    (they share one worker). Serially, with an early boot, the modules that need what it starts run
    after all others (those on the page last, since Chromium boots last), so they find it ready
    instead of waiting for it while the second core is busy booting it; each module's tests stay
    together and in their order."""
    if parallel.is_worker():
        parallel.publish_app_modules(
            item.nodeid for item in items if set(getattr(item, "fixturenames", ())) & set(ON_THE_APP))
        return
    if SESSION is None or SESSION.boot is None:
        return
    needs: dict[str, int] = {}
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        rank = 2 if "page" in used else 1 if used & set(BOOTED) else 0
        needs[item.module.__name__] = max(needs.get(item.module.__name__, 0), rank)
    items.sort(key=lambda item: needs[item.module.__name__])  # stable: the order within a rank stays


def pytest_sessionfinish(session: pytest.Session) -> None:
    from playground.history.location import DATA_DIR_ENV

    if SESSION is None:
        return
    if SESSION.boot:
        SESSION.boot.stop()
    if parallel.is_controller(session.config):
        parallel.cleanup()
    if SESSION.saved_env is None:
        os.environ.pop(DATA_DIR_ENV, None)
    else:
        os.environ[DATA_DIR_ENV] = SESSION.saved_env
    shutil.rmtree(SESSION.data_dir, ignore_errors=True)


def early(name: str) -> object | None:
    """What the early boot made for ``name`` ("plugin", "app", "chromium"), or None without one;
    on a parallel worker, what the controller's boot published."""
    if SESSION is not None and SESSION.shared is not None:
        entry = SESSION.shared.wait(name, START_TIMEOUT_S + 120)
        if "path" in entry:
            return Path(entry["path"])
        if "url" in entry:
            return AppServer(None, entry["url"], Path(entry["log_path"]))
        return ChromiumOnPage(None, entry["endpoint"]) if "endpoint" in entry else None
    if SESSION is None or SESSION.boot is None:
        return None
    return getattr(SESSION.boot, name).result(timeout=START_TIMEOUT_S + 120)


@pytest.fixture(scope="session", autouse=True)
def private_data_dir() -> Path:
    """The history and exports of every test (and of the apps and CLIs they start) go to a private
    folder, removed at the end, never into the user's own data folder (``pytest_sessionstart``)."""
    assert SESSION is not None
    return SESSION.data_dir


@pytest.fixture(scope="session")
def app_model() -> str:
    if TEST_MODEL == "demo" and not (REPO_ROOT / "assets" / "demo-model" / "config.json").is_file():
        pytest.skip(reason="the demo model is missing: build it with `python scripts/train_demo_model.py` "
                    "(or set PLAYGROUND_TEST_MODEL to a local model folder)")
    return TEST_MODEL


@pytest.fixture(scope="session")
def playground_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    explicit = os.environ.get("PLAYGROUND_CACHE")
    return Path(explicit) if explicit else tmp_path_factory.mktemp("playground-cache")


@pytest.fixture(scope="session")
def launch_app(playground_cache: Path) -> Iterator[Callable[[list[str], str], AppServer]]:
    """``launch_app(args, log_name)`` starts another app.py; all are stopped at the end."""
    servers: list[AppServer] = []

    def launch(args: list[str], log_name: str) -> AppServer:
        servers.append(start_app(args, playground_cache, ARTIFACTS / log_name))
        return servers[-1]

    yield launch
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def app_server(app_model: str, launch_app: Callable[[list[str], str], AppServer]) -> AppServer:
    """The app on loopback with the test model, shared by the HTTP and browser tests."""
    return launch_app(["--model", app_model], "app.log")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def page(request: pytest.FixtureRequest) -> Iterator:
    """The app's page in headless Chromium, once per module. The module names the app fixture it
    drives in ``PAGE_APP`` (default ``app_server``: the real runtimes; ``scripted_app``: the fast
    layer, whose Chromium the early boot may already have open on the page; a module done with
    that page reloads it, so no module sees what another left checked or typed)."""
    app_fixture = getattr(request.module, "PAGE_APP", "app_server")
    server: AppServer = request.getfixturevalue(app_fixture)
    if not CHROMIUM.exists():
        pytest.skip(reason="Chromium is missing: install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    booted = early("chromium") if app_fixture == "scripted_app" else None
    with sync_playwright() as playwright:
        if isinstance(booted, ChromiumOnPage):
            browser = playwright.chromium.connect_over_cdp(booted.endpoint)
            page = browser.contexts[0].pages[0]
            page.set_viewport_size({"width": 1400, "height": 1000})
            fresh_page(page, server.url)
        else:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                                 args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server.url)
        page.set_default_timeout(30_000)
        page.wait_for_selector("#run-button")
        yield page
        if isinstance(booted, ChromiumOnPage):  # the next module gets the app's own state, not ours:
            with contextlib.suppress(Exception):  # reloaded in Chromium while other tests run
                page.evaluate(f"() => {{ window.{DRIVEN} = true; setTimeout(() => location.reload(), 0); }}")
        browser.close()


DRIVEN = "__drivenByATestModule"  # set on the early boot's page by a module done with it


def fresh_page(page, url: str) -> None:
    """The early boot's page as the app serves it: a module before this one asked for its reload
    when it was done (``page``); should that reload not have come yet, load the page now."""
    from playwright.sync_api import Error

    for _ in range(5):
        try:
            if page.evaluate(f"() => window.{DRIVEN} === true"):
                page.goto(url)
            return
        except Error:  # navigating right now: the reload asked for
            page.wait_for_load_state()


PLUGIN_EXAMPLE = REPO_ROOT / "tests" / "plugin_example"


@pytest.fixture(scope="session")
def echo_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin package (``tests/plugin_example``) pip-installed into a temp folder, the way
    a user installs a plugin, but without touching the shared venv: put the folder on ``sys.path``
    and ``PYTHONPATH`` (workers inherit it) and the registry finds its entry point."""
    booted = early("plugin")
    if isinstance(booted, Path):
        return booted
    return install_plugin(PLUGIN_EXAMPLE, tmp_path_factory.mktemp("echo-plugin"))


def with_python_path(folder: Path, env: dict[str, str] | None = None) -> str:
    """``folder`` first on ``PYTHONPATH`` (of ``env``, default this process's environment)."""
    current = (os.environ if env is None else env).get("PYTHONPATH")
    return os.pathsep.join(filter(None, [str(folder), current]))


@pytest.fixture
def echo_plugin_importable(echo_plugin: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The installed example plugin importable here and in every child (the app, its workers)."""
    from playground import backends

    monkeypatch.syspath_prepend(str(echo_plugin))
    monkeypatch.setenv("PYTHONPATH", with_python_path(echo_plugin))
    backends.reload()
    yield echo_plugin
    monkeypatch.undo()
    backends.reload()


@pytest.fixture(scope="session")
def scripted_app(echo_plugin: Path, launch_app: Callable[[list[str], str], AppServer]) -> AppServer:
    """The real app on loopback whose only backends are the scripted one and the example plugin:
    the fast layer's page. ``PLAYGROUND_ONLY_BACKENDS`` spares it probing the real runtimes."""
    booted = early("app")
    if isinstance(booted, AppServer):
        return booted
    with pytest.MonkeyPatch.context() as patch:  # the app (and its workers) inherit these
        for name, value in scripted_app_env({}, echo_plugin).items():
            patch.setenv(name, value)
        return launch_app(SCRIPTED_APP_ARGS, "app-scripted.log")


SCRIPTED_APP_ARGS = ["--model", "demo", "--backends", "scripted,echo"]


def scripted_app_env(env: dict[str, str], plugin_site: Path) -> dict[str, str]:
    """``env`` plus what the scripted app (and its workers) need: the scripted backend offered, no
    real runtime probed, the example plugin importable."""
    from playground.backends import ONLY_ENV
    from playground.backends.scripted_backend import ENABLE_ENV

    python_path = with_python_path(plugin_site, env or None)  # an empty env: this process's PYTHONPATH
    return {**env, ENABLE_ENV: "1", ONLY_ENV: "scripted,echo", "PYTHONPATH": python_path}


@pytest.fixture
def scripted_backend(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Offer the scripted backend here and in the workers (they inherit the environment), with a
    cache of the tests' own unless one is given."""
    from playground.backends.scripted_backend import ENABLE_ENV

    monkeypatch.setenv(ENABLE_ENV, "1")
    if "PLAYGROUND_CACHE" not in os.environ:
        monkeypatch.setenv("PLAYGROUND_CACHE", str(tmp_path_factory.mktemp("scripted-cache")))
