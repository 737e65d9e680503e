"""Where the playground keeps things on disk."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL_DIR = REPO_ROOT / "assets" / "demo-model"
DEMO_MODEL_ID = "demo"  # what the user types / the default in every entry point


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
