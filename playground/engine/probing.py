"""Probe every backend in its own worker process, all at once.

Probing imports each runtime (torch, OpenVINO, ORT GenAI, the NPU library), which must
not happen in the app process; running them side by side keeps start-up to a few seconds.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from playground.backends import backend_classes
from playground.backends.base import BackendProbe
from playground.engine.launcher import WorkerDied, WorkerProcess

PROBE_TIMEOUT_S = 120.0


def probe_backend(name: str) -> BackendProbe:
    cls = backend_classes()[name]
    try:
        worker = WorkerProcess(f"probe-{name}")
    except WorkerDied as exc:
        return BackendProbe(name, cls.label, installed=False, reason=str(exc))
    try:
        worker.send("probe", name)
        if not worker.conn.poll(PROBE_TIMEOUT_S):
            worker.kill()
            return BackendProbe(
                name,
                cls.label,
                installed=False,
                reason=f"probe did not answer within {PROBE_TIMEOUT_S:.0f} s",
            )
        message = worker.recv()
        if message[0] == "probe":
            return message[1]
        return BackendProbe(name, cls.label, installed=False, reason=f"probe failed: {message[2]}")
    except WorkerDied as exc:
        return BackendProbe(name, cls.label, installed=False, reason=f"probe crashed: {exc}")
    finally:
        worker.close()


def probe_all(names: list[str] | None = None) -> dict[str, BackendProbe]:
    names = names or list(backend_classes())
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return dict(zip(names, pool.map(probe_backend, names), strict=True))
