"""Import gradio without regenerating its type stubs: halves the app's start-up.

Every ``import gradio`` runs ``gradio.component_meta.create_or_modify_pyi`` for each of its ~80
component classes: it re-parses the class's source file and rewrites the ``.pyi`` stub beside it if
it differs. That is a tool for gradio's own developers (the wheel ships the stubs), yet it took 2.5 s
of a 5.1 s import on the 2-core test machine, paid by every app start and every test session. The
finder below lets gradio's module load as usual and then replaces that one function with a no-op;
if a gradio release renames or drops it, nothing is replaced and gradio imports as before.

``skip_stub_regeneration()`` must run before gradio is first imported (``playground.ui`` calls it).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

TARGET_MODULE = "gradio.component_meta"
TARGET_FUNCTION = "create_or_modify_pyi"


def _no_stub_regeneration(*_args: object, **_kwargs: object) -> None:
    """gradio's stubs stay as its wheel shipped them."""


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        if callable(getattr(module, TARGET_FUNCTION, None)):
            setattr(module, TARGET_FUNCTION, _no_stub_regeneration)


class _StubSkippingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path, target=None) -> importlib.machinery.ModuleSpec | None:
        if name != TARGET_MODULE:
            return None
        for finder in sys.meta_path:  # the finder that would have found it, then wrap its loader
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


def skip_stub_regeneration() -> bool:
    """Install the finder (once); False when gradio is already imported (too late: nothing to do)."""
    if TARGET_MODULE in sys.modules:
        return False
    if not any(isinstance(finder, _StubSkippingFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _StubSkippingFinder())
    return True
