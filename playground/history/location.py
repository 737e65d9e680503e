"""Where the playground keeps what must last: the user data folder (history, exports).

Apart from the cache (``playground.paths.cache_root``) on purpose: the cache can be wiped to free
disk, the history is the user's. ``PLAYGROUND_DATA_DIR`` overrides the platform's folder (tests
point it at a temp dir).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "ai-pc-playground"
DATA_DIR_ENV = "PLAYGROUND_DATA_DIR"


def data_root() -> Path:
    """The data folder, created private to this user (other accounts on the machine cannot read it)."""
    root = os.environ.get(DATA_DIR_ENV) or platformdirs.user_data_dir(APP_NAME, appauthor=False)
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def data_dir(*parts: str) -> Path:
    path = data_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
