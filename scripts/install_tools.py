"""What the set-up's install scripts share: logging with their name, running a command, asking the
target interpreter (which may be another venv than the script's) for a distribution's version."""

from __future__ import annotations

import subprocess
from collections.abc import Callable


def logger(name: str) -> Callable[[str], None]:
    def log(message: str) -> None:
        print(f"[{name}] {message}", flush=True)

    return log


def runner(log: Callable[[str], None]) -> Callable[..., subprocess.CompletedProcess]:
    def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        log("$ " + " ".join(str(part) for part in cmd))
        return subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]

    return run


def dist_version(python: str, dist: str) -> str:
    """The installed version of ``dist`` in ``python``'s environment, "" when absent."""
    code = ("import importlib.metadata as m\n"
            f"try: print(m.version({dist!r}))\n"
            "except m.PackageNotFoundError: print('')")
    return subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
