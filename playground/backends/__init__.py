"""Backend registry: every module in this package that defines a ``Backend`` subclass.

Adding a runtime means adding one file here. Adapter modules import their runtimes
lazily, so discovering them is cheap and safe in the app process.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cache

from playground.backends.base import Backend

# The order panels and tables use; discovered backends not listed here come after.
PREFERRED_ORDER = ("transformers", "openvino-genai", "optimum-intel", "onnxruntime-genai", "npu-library")


@cache
def backend_classes() -> dict[str, type[Backend]]:
    found: dict[str, type[Backend]] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Backend) and obj is not Backend and not inspect.isabstract(obj):
                found[obj.name] = obj
    rank = {name: index for index, name in enumerate(PREFERRED_ORDER)}
    return dict(sorted(found.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def backend_names() -> list[str]:
    return list(backend_classes())


def get_backend_class(name: str) -> type[Backend]:
    classes = backend_classes()
    if name not in classes:
        raise KeyError(f"Unknown backend {name!r}; known: {', '.join(classes)}")
    return classes[name]
