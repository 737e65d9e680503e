"""Probe every backend in its own worker process, all at once.

Probing imports each runtime (torch, OpenVINO, ORT GenAI, the NPU library), which must
not happen in the app process; running them side by side keeps start-up to a few seconds.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from playground.backends import backend_classes, class_target
from playground.backends.base import BackendProbe
from playground.engine.launcher import WorkerDied, WorkerProcess
from playground.engine.protocol import Failed, Probe, Probed

PROBE_TIMEOUT_S = 120.0


def probe_backend(name: str) -> BackendProbe:
    cls = backend_classes()[name]
    try:
        worker = WorkerProcess(f"probe-{name}")
    except WorkerDied as exc:
        return BackendProbe(name, cls.label, installed=False, reason=str(exc))
    try:
        worker.send(Probe(name, target=class_target(name)))
        if not worker.conn.poll(PROBE_TIMEOUT_S):
            worker.kill()
            return BackendProbe(
                name,
                cls.label,
                installed=False,
                reason=f"probe did not answer within {PROBE_TIMEOUT_S:.0f} s",
            )
        message = worker.recv()
        if isinstance(message, Probed):
            return message.probe
        reason = message.message if isinstance(message, Failed) else f"unexpected {message.kind} message"
        return BackendProbe(name, cls.label, installed=False, reason=f"probe failed: {reason}")
    except WorkerDied as exc:
        return BackendProbe(name, cls.label, installed=False, reason=f"probe crashed: {exc}")
    finally:
        worker.close()


def probe_all(names: list[str] | None = None) -> dict[str, BackendProbe]:
    names = names or list(backend_classes())
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return dict(zip(names, pool.map(probe_backend, names), strict=True))
