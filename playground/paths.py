"""Where the playground keeps things on disk."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL_DIR = REPO_ROOT / "assets" / "demo-model"
DEMO_MODEL_ID = "demo"  # the embedded model: fast tests and the fallback when no real one is set up


def cache_root() -> Path:
    """Conversions and compiled blobs; ``PLAYGROUND_CACHE`` overrides the default."""
    root = os.environ.get("PLAYGROUND_CACHE") or Path.home() / ".cache" / "ai-pc-playground"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(*parts: str) -> Path:
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_root() -> Path:
    """Named models that set-up fetches (SmolLM2); ``PLAYGROUND_MODELS`` overrides the default.

    Apart from ``PLAYGROUND_CACHE`` on purpose: tests point that at a temp dir for conversions,
    and must still find the model ``scripts/setup.sh`` put here.
    """
    root = os.environ.get("PLAYGROUND_MODELS") or Path.home() / ".cache" / "ai-pc-playground-models"
    return Path(root).expanduser()
