"""Backend registry: every class registered under the ``ai_pc_playground.backends`` entry points.

Ours are declared in ``pyproject.toml`` like any plugin's (see ``playground.plugins``); a
runtime in another package plugs in by being installed. Adapter modules import their runtimes
lazily, so loading the registry is cheap and safe in the app process.
"""

from __future__ import annotations

import os
from functools import cache

from playground.backends.base import Backend
from playground.plugins import BACKENDS_GROUP, Registration, load_classes

# The order panels and tables use; registered backends not listed here come after, by name.
ONLY_ENV = "PLAYGROUND_ONLY_BACKENDS"
PREFERRED_ORDER = (
    "transformers", "openvino-genai", "optimum-intel", "onnxruntime-genai", "npu-library", "llama.cpp",
)


@cache
def _registered() -> tuple[dict[str, type[Backend]], dict[str, str]]:
    classes, problems = load_classes(BACKENDS_GROUP, Backend)
    found: dict[str, type[Backend]] = {}
    for name, cls in classes.items():
        if cls.name != name:
            problems[name] = f"the entry point is named {name!r} but {cls.__name__}.name is {cls.name!r}"
            continue
        for variant in cls.variants():  # e.g. one backend per configured --endpoint
            if variant.name in found or (variant is not cls and variant.name in classes):
                problems[variant.name] = f"{variant.name!r} is already a backend's name"
            else:
                found[variant.name] = variant
    return found, problems


def only_env() -> set[str] | None:
    """``PLAYGROUND_ONLY_BACKENDS=a,b``: offer just these registered backends (unset: all of them),
    e.g. to leave out a runtime whose import crashes here; the fast tests use it to skip probing
    the real runtimes. Workers inherit it, so they agree with the app."""
    names = {name.strip() for name in os.environ.get(ONLY_ENV, "").split(",") if name.strip()}
    return names or None


def backend_classes() -> dict[str, type[Backend]]:
    """Name -> class of every backend offered here, in panel order (cached; ``reload()`` re-reads)."""
    rank = {name: index for index, name in enumerate(PREFERRED_ORDER)}
    only = only_env()
    offered = {
        name: cls
        for name, cls in _registered()[0].items()
        if cls.offered() and (only is None or name in only)
    }
    return dict(sorted(offered.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def plugin_problems() -> dict[str, str]:
    """Registered backends that could not be loaded, with the reason (printed at app start)."""
    return dict(_registered()[1])


def reload() -> None:
    """Forget the registry, e.g. after installing a plugin or changing what is offered."""
    _registered.cache_clear()


def backend_names() -> list[str]:
    return list(backend_classes())


def get_backend_class(name: str) -> type[Backend]:
    classes = backend_classes()
    if name not in classes:
        shown = repr(name) if len(name) <= 80 else f"{name[:80]!r}… ({len(name):,} characters)"
        raise KeyError(f"Unknown backend {shown}; known: {', '.join(classes)}")
    return classes[name]


def class_target(name: str) -> str:
    """``module:Class`` of a registered backend: the app resolves the name once and sends this to
    the worker, which imports that module alone (scanning every installed distribution's entry
    points and importing every adapter cost each worker ~0.2 s before it could load). An unknown
    name gives "": the worker's own lookup then says so."""
    cls = backend_classes().get(name)
    return f"{cls.__module__}:{cls.__qualname__}" if cls is not None else ""


def resolve_class(name: str, target: str = "") -> type[Backend]:
    """The class the app resolved (``target``), checked to be the backend it names; without a
    target, the registry lookup."""
    if not target:
        return get_backend_class(name)
    cls = Registration(name, target, "the app").load()
    if isinstance(cls, type) and issubclass(cls, Backend) and cls.name != name:
        cls = next((variant for variant in cls.variants() if variant.name == name), cls)
    if not (isinstance(cls, type) and issubclass(cls, Backend) and cls.name == name):
        raise KeyError(f"{target!r} is not the backend {name!r}")
    return cls
