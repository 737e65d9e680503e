"""The runtimes' thread budget: how many threads a backend may compute with.

On a small machine a runtime that takes every core leaves nothing for the app and the browser
page that renders its tokens; its thread pool then fights them, and spin-waiting OpenMP threads
collapse when a core is taken (the decode speed fell ten-fold on 2 cores with the page open).
So every worker gets the same budget, headless or not, and every record says which it was:

- ``PLAYGROUND_THREADS`` unset: logical CPUs minus one (at least 1), leaving a core for the
  app and the page;
- ``PLAYGROUND_THREADS=N``: N threads; ``0`` (or ``all``): each runtime's own default.

The launcher turns the budget into the runtimes' own settings (``worker_env``): OpenMP for
PyTorch (``OMP_NUM_THREADS``, ``OMP_WAIT_POLICY=PASSIVE``), and the worker passes it to OpenVINO
(``INFERENCE_NUM_THREADS``) and ONNX Runtime GenAI (``intra_op_num_threads``).
"""

from __future__ import annotations

import os

THREADS_ENV = "PLAYGROUND_THREADS"
WAIT_POLICY = "PASSIVE"  # OpenMP threads sleep instead of spinning when they run out of work


def default_threads(cores: int | None = None) -> int:
    cores = cores or os.cpu_count() or 1
    return max(1, cores - 1)


def thread_budget(environ: dict[str, str] | None = None) -> int | None:
    """Threads a runtime may use; None = the runtime's own default (``PLAYGROUND_THREADS=0``)."""
    environ = os.environ if environ is None else environ
    text = environ.get(THREADS_ENV, "").strip().lower()
    if not text:
        return default_threads()
    if text in ("0", "all"):
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise ValueError(f"{THREADS_ENV} must be a whole number or 'all', got {text!r}") from exc
    if value < 0:
        raise ValueError(f"{THREADS_ENV} must be >= 0, got {value}")
    return value or None


def worker_env(threads: int | None, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a worker: the budget for every runtime that reads one from there.
    An ``OMP_WAIT_POLICY`` the user set is kept (for A/B measurements of the wait policy)."""
    environ = os.environ if environ is None else environ
    env = {THREADS_ENV: str(threads or 0), "OMP_WAIT_POLICY": environ.get("OMP_WAIT_POLICY", WAIT_POLICY)}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def recorded_threads(threads: int | None) -> int:
    """What a record says: the budget, or every logical CPU when the runtimes chose themselves."""
    return threads or os.cpu_count() or 1
