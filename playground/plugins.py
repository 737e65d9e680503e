"""Find what is registered under an entry-point group: our own backends and readers, and any
installed package's.

A runtime in another package plugs in by declaring an entry point in its ``pyproject.toml``
(``[project.entry-points."ai_pc_playground.backends"]``, ``name = "module:Class"``) and being
installed into the same environment; nothing in this repository changes. Our own built-ins
are declared the same way in our ``pyproject.toml``, which ``scripts/setup.sh`` installs
(``pip install -e .``). A plain checkout that was never installed still finds them: then our
entries are read from the checkout's ``pyproject.toml`` itself.

Worker processes run the same lookup in their own interpreter, so a plugin must be importable
there too: installed into the venv, or on ``PYTHONPATH`` (which workers inherit).
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass
from typing import Any

from playground.paths import REPO_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: requirements.txt installs tomli there
    import tomli as tomllib

log = logging.getLogger(__name__)

DIST_NAME = "ai-pc-playground"
BACKENDS_GROUP = "ai_pc_playground.backends"
MONITORS_GROUP = "ai_pc_playground.monitors"
PYPROJECT = REPO_ROOT / "pyproject.toml"


@dataclass(frozen=True)
class Registration:
    """One entry point: ``name = "module:attribute"``, and which distribution declared it."""

    name: str
    target: str
    source: str  # the distribution's name, or "pyproject.toml" for an uninstalled checkout

    def load(self) -> Any:
        module_name, _, attribute = self.target.partition(":")
        obj: Any = importlib.import_module(module_name.strip())
        for part in filter(None, attribute.strip().split(".")):
            obj = getattr(obj, part)
        return obj


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def own_entry_points(group: str) -> dict[str, str]:
    """Our ``pyproject.toml``'s table for ``group`` (name -> "module:attribute")."""
    with PYPROJECT.open("rb") as handle:
        project = tomllib.load(handle).get("project", {})
    return dict(project.get("entry-points", {}).get(group, {}))


def registrations(group: str) -> list[Registration]:
    """Every entry point in ``group``: ours first (from our installed distribution, or from the
    checkout's ``pyproject.toml`` when this project is not installed), then other distributions'.
    A name registered twice keeps the first, so a plugin cannot replace a built-in by its name."""
    from importlib import metadata  # here: a worker given its class (``Registration.load``) never scans

    ours: list[Registration] = []
    others: list[Registration] = []
    for entry in metadata.entry_points(group=group):
        dist = entry.dist.name if entry.dist is not None else "?"
        found_in = ours if _normalise(dist) == DIST_NAME else others
        found_in.append(Registration(entry.name, entry.value, dist))
    if not ours and PYPROJECT.is_file():
        table = own_entry_points(group)
        ours = [Registration(name, target, "pyproject.toml") for name, target in table.items()]
    found: dict[str, Registration] = {}
    for entry in [*ours, *others]:
        _add(found, entry)
    return list(found.values())


def _add(found: dict[str, Registration], entry: Registration) -> None:
    earlier = found.get(entry.name)
    if earlier is None:
        found[entry.name] = entry
    elif earlier.target != entry.target:
        log.warning(
            "entry point %r in %s (%s) is also declared by %s (%s); keeping the first",
            entry.name, entry.source, entry.target, earlier.source, earlier.target,
        )


def load_classes(group: str, base: type) -> tuple[dict[str, type], dict[str, str]]:
    """(name -> class, name -> why it could not be loaded) for every registration in ``group``.

    A plugin that fails to import, or names something that is not a concrete ``base``
    subclass, is left out with its reason: one broken package must not take the app down.
    """
    classes: dict[str, type] = {}
    problems: dict[str, str] = {}
    for entry in registrations(group):
        try:
            obj = entry.load()
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
            problems[entry.name] = f"{entry.target} ({entry.source}) failed to import: {why}"
            continue
        if not (isinstance(obj, type) and issubclass(obj, base)) or getattr(obj, "__abstractmethods__", None):
            problems[entry.name] = f"{entry.target} ({entry.source}) is not a concrete {base.__name__}"
            continue
        classes[entry.name] = obj
    for name, problem in problems.items():
        log.warning("plugin %s skipped: %s", name, problem)
    return classes, problems
