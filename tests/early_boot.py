"""Start the fast layer's slow parts (the example plugin's install, the scripted app, Chromium on
its page) in the background when the test session starts, so they boot on the second core while
the first one collects (gradio's import alone takes ~5 s) and runs the engine tests (which mostly
wait on workers). The fixtures in ``conftest.py`` then take what is ready instead of booting it.

Only for runs of the whole suite (``pytest``, ``pytest -m "not slow"``); a run of named files or
``PLAYGROUND_EARLY_BOOT=0`` boots lazily, as before. Chromium is started by us with a DevTools port
and the page already open, and Playwright attaches to it over CDP (``connect_over_cdp``).

On parallel workers (pytest-xdist: the fast layer's default) the controller boots, once, and
publishes what is ready in a ``BootFile``; the worker that runs the modules on the app and the
page attaches to them (``conftest.early``), and the controller stops them at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

EARLY_BOOT_ENV = "PLAYGROUND_EARLY_BOOT"
BOOT_FILE_ENV = "PLAYGROUND_EARLY_BOOT_FILE"  # set by a parallel run's controller, read by its workers
PYCACHE_ENV = "PLAYGROUND_TEST_PYCACHE"  # a folder, or 0: no bytecode kept (the machine's setting)
PYCACHE_DIR = Path.home() / ".cache" / "ai-pc-playground-tests" / "pycache"
DEVTOOLS_LINE = re.compile(r"DevTools listening on (ws://\S+)")
# what Playwright's own launch passes so a headless page's timers are never throttled
CDP_ARGS = ["--headless", "--remote-debugging-port=0", "--window-size=1400,1000", "--mute-audio",
            "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows",
            "--disable-renderer-backgrounding", "--disable-dev-shm-usage", "--hide-scrollbars"]


def cache_bytecode() -> Path | None:
    """Let this session and every process it starts keep compiled bytecode, in a folder of its
    own outside the repository (``sys.pycache_prefix``), even where ``PYTHONDONTWRITEBYTECODE`` is
    set (as on the 2-core VM). Without it each run re-does pytest's assertion rewriting of every
    test module (~4 s of the collection) and every worker, app and CLI the tests start compiles
    the playground's modules from source again (~20 % of a CLI's start-up). Returns the folder."""
    wanted = os.environ.get(PYCACHE_ENV, "")
    if wanted == "0":
        return None
    folder = Path(wanted) if wanted else PYCACHE_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    sys.pycache_prefix = str(folder)
    sys.dont_write_bytecode = False
    os.environ["PYTHONPYCACHEPREFIX"] = str(folder)  # the apps, workers and CLIs started from here
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    return folder


def install_plugin(source: Path, work: Path) -> Path:
    """pip-install the example plugin package into ``work/site`` (not the shared venv); returns it."""
    build, target = work / "source", work / "site"
    shutil.copytree(source, build)  # the build writes into its source folder
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
    result = subprocess.run([*install, "--no-build-isolation", str(build)], capture_output=True, text=True)
    if result.returncode != 0:  # no usable setuptools in this venv: let pip fetch one
        result = subprocess.run([*install, str(build)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"installing the example plugin failed:\n{result.stdout}{result.stderr}")
    return target


@dataclass
class ChromiumOnPage:
    """A headless Chromium we started, already showing ``url``; Playwright attaches over CDP.
    Without ``proc`` it is another process's (a parallel run's controller): only attached to."""

    proc: subprocess.Popen | None
    endpoint: str
    profile: Path | None = None

    @classmethod
    def start(cls, chromium: Path, args: list[str], url: str, timeout_s: float = 60.0) -> ChromiumOnPage:
        profile = Path(tempfile.mkdtemp(prefix="playground-chromium-"))
        proc = subprocess.Popen(
            [str(chromium), *args, *CDP_ARGS, f"--user-data-dir={profile}", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        assert proc.stderr is not None
        for line in proc.stderr:  # Chromium prints its endpoint first, then only warnings
            if found := DEVTOOLS_LINE.search(line):
                threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
                return cls(proc, found.group(1), profile)
            if time.monotonic() > deadline:
                break
        proc.kill()
        raise RuntimeError("Chromium did not print its DevTools endpoint")

    def stop(self) -> None:
        if self.proc is None:  # the controller's: it stops it
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)


@dataclass
class BootFile:
    """What a parallel run's controller booted, for its workers: one JSON object, rewritten whole
    (a rename: a reader never sees half of it) as each part is ready; an error is kept as text."""

    path: Path

    def write(self, name: str, value: dict) -> None:
        data = self.read()
        data[name] = value
        partial = self.path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(data))
        partial.replace(self.path)

    def read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def wait(self, name: str, timeout_s: float) -> dict:
        """``name``'s entry, once the controller wrote it (raises its error, or on timeout)."""
        deadline = time.monotonic() + timeout_s
        while (entry := self.read().get(name)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the early boot did not publish {name!r} in {timeout_s:.0f} s")
            time.sleep(0.1)
        if "error" in entry:
            raise RuntimeError(f"the early boot's {name} failed: {entry['error']}")
        return entry


@dataclass
class EarlyBoot:
    """The futures of what boots in the background; each fixture waits only for what it needs."""

    plugin: Future
    app: Future
    chromium: Future
    stoppers: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def start(cls, plugin_source: Path, work: Path, start_app: Callable[[Path], object],
              chromium: Path | None, chromium_args: list[str],
              ready: Callable[[str, object], None] | None = None) -> EarlyBoot:
        """``start_app(plugin_site)`` boots the scripted app and returns it (with ``.url``, ``.stop``);
        ``ready(name, result or exception)`` is told of each part as it is done."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="early-boot")
        boot = cls(Future(), Future(), Future())

        def run() -> None:
            for name, target, step in (
                    ("plugin", boot.plugin, lambda: install_plugin(plugin_source, work)),
                    ("app", boot.app, lambda: start_app(boot.plugin.result())),
                    ("chromium", boot.chromium, lambda: chromium and ChromiumOnPage.start(
                        chromium, chromium_args, boot.app.result().url))):
                try:
                    result = step()
                except BaseException as error:  # the fixture that needs it re-raises it
                    target.set_exception(error)
                    if ready is not None:
                        ready(name, error)
                    continue
                target.set_result(result)
                if hasattr(result, "stop"):
                    boot.stoppers.append(result.stop)
                if ready is not None:
                    ready(name, result)

        pool.submit(run)
        pool.shutdown(wait=False)
        return boot

    def stop(self) -> None:
        for future in (self.plugin, self.app, self.chromium):
            with contextlib.suppress(BaseException):
                future.result(timeout=300)
        for stop in reversed(self.stoppers):
            with contextlib.suppress(Exception):
                stop()


def wanted(paths: list[str], tests_dir: Path) -> bool:
    """Boot early for a run of the whole suite only: ``paths`` (pytest's, after its ``testpaths``
    default) are the tests folder or the repository."""
    if os.environ.get(EARLY_BOOT_ENV, "1") == "0":
        return False
    return all(Path(p).resolve() in (tests_dir, tests_dir.parent) for p in paths)
