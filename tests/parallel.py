"""The fast layer on parallel workers (pytest-xdist), with each module on one worker and the
modules on the scripted app and its page together on one (one app, one Chromium page).

``pytest -m "not slow"`` gets ``PLAYGROUND_TEST_WORKERS`` workers (default 3; 0, ``-p no:xdist``
or an explicit ``-n`` turn this off). The fast tests mostly wait on the processes they start, so
on 2 cores three workers finish them in about half the time. The real-runtime tests stay serial:
two runtimes timed at once would measure each other, and their tests time runs.

How the modules are grouped: each worker tells, as it collects, which of its tests use the
scripted app or its page (``publish_app_modules``: a file the controller named); the controller's
scheduler (``ModuleScheduling``) reads it when it splits the tests into units of work. The grouping
is done here, not with xdist's ``xdist_group`` marks: pytest 9 keeps a test's id where xdist 3.8's
``--dist loadgroup`` no longer writes the group into it, so those marks group nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterable
from pathlib import Path

import pytest

WORKERS_ENV = "PLAYGROUND_TEST_WORKERS"
DEFAULT_WORKERS = 3
WORKER_ENV = "PYTEST_XDIST_WORKER"  # pytest-xdist sets it in each worker
GROUPS_FILE_ENV = "PLAYGROUND_TEST_APP_MODULES"  # set by the controller for its workers
APP_GROUP = "scripted-app"


def workers_wanted(config: pytest.Config) -> int:
    """How many workers this run gets: ``PLAYGROUND_TEST_WORKERS`` for the fast layer alone, when
    pytest-xdist is installed and enabled and no ``-n`` was given; else 0."""
    option = config.option
    if (is_worker() or not importlib.util.find_spec("xdist") or not hasattr(option, "numprocesses")
            or option.numprocesses is not None or getattr(option, "collectonly", False)
            or (option.markexpr or "").strip() != "not slow"):
        return 0
    try:
        return max(0, int(os.environ.get(WORKERS_ENV, DEFAULT_WORKERS)))
    except ValueError:
        return DEFAULT_WORKERS


def configure(config: pytest.Config, scratch: Path | None = None) -> None:
    """Turn the workers on (what ``-n N`` would, before xdist reads it) and name the file the
    workers write their app modules to (the environment: they start after this)."""
    workers = workers_wanted(config)
    if not workers:
        return
    config.option.numprocesses = workers
    config.option.dist = "loadscope"  # our scheduler replaces it (``scheduler``)
    config.option.tx = ["popen"] * workers
    if scratch is None:
        import tempfile

        scratch = Path(tempfile.mkdtemp(prefix="playground-parallel-"))
    os.environ[GROUPS_FILE_ENV] = str(scratch / "app-modules.json")


def is_worker() -> bool:
    return bool(os.environ.get(WORKER_ENV))


def is_controller(config: pytest.Config) -> bool:
    """This process hands tests to parallel workers and runs none itself."""
    return bool(getattr(config.option, "numprocesses", None)) and not is_worker()


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def publish_app_modules(nodeids: Iterable[str]) -> None:
    """A worker: write the modules of these tests (the ones on the app) for the controller. Every
    worker collects the same tests, so they write the same list (a rename: never half a file)."""
    target = os.environ.get(GROUPS_FILE_ENV)
    if not target or not is_worker():
        return
    path = Path(target)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(sorted({module_of(nodeid) for nodeid in nodeids})))
    partial.replace(path)


def cleanup() -> None:
    """The controller, at the end: remove the folder of the workers' file."""
    import shutil

    target = os.environ.pop(GROUPS_FILE_ENV, None)
    if target:
        shutil.rmtree(Path(target).parent, ignore_errors=True)


def app_modules() -> set[str]:
    target = os.environ.get(GROUPS_FILE_ENV)
    try:
        return set(json.loads(Path(target).read_text())) if target else set()
    except (OSError, ValueError):
        return set()


def scheduler(config: pytest.Config, log: object) -> object | None:
    """The controller's scheduler for a run configured here; None: xdist's own."""
    if not os.environ.get(GROUPS_FILE_ENV) or is_worker():
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        """One unit of work per module, and one for every module on the scripted app. The
        biggest units go out first (xdist's default), so the app's modules start at once."""

        _on_app: set[str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._on_app is None:  # read once all workers have collected (scheduling starts then)
                self._on_app = app_modules()
            module = module_of(nodeid)
            return APP_GROUP if module in self._on_app else module

    return ModuleScheduling(config, log)
