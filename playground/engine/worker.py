"""The worker process: hosts exactly one backend, so runtimes never share a process.

Started by ``playground.engine.launcher`` as ``python -m playground.engine.worker``; it
connects back over an authenticated local socket, then serves commands:
``probe``, ``load``, ``generate``, ``stop`` (out of band, from a reader thread), ``exit``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import queue
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

from playground.engine.contention import OtherLoad
from playground.engine.threads import recorded_threads, thread_budget

AUTHKEY_ENV = "PLAYGROUND_WORKER_AUTHKEY"
ADDRESS_ENV = "PLAYGROUND_WORKER_ADDRESS"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (the worker's own, not its exporters')."""
    if sys.platform == "win32":
        import psutil

        return psutil.Process().memory_info().peak_wset / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Worker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.send_lock = threading.Lock()
        self.stop = threading.Event()
        self.commands: queue.Queue[tuple] = queue.Queue()
        self.backend: Any = None

    def send(self, *message: Any) -> None:
        with self.send_lock:
            self.conn.send(message)

    def read_commands(self) -> None:
        """Reader thread: ``stop`` must arrive while the main thread is busy generating."""
        try:
            while True:
                message = self.conn.recv()
                if message[0] == "stop":
                    self.stop.set()
                else:
                    self.commands.put(message)
        except (EOFError, OSError):
            self.stop.set()
            self.commands.put(("exit",))

    def serve(self) -> None:
        threading.Thread(target=self.read_commands, daemon=True).start()
        while True:
            command, *args = self.commands.get()
            if command == "exit":
                break
            handler = getattr(self, f"do_{command}")
            try:
                handler(*args)
            except Exception as exc:  # reported to the lane; the worker stays usable
                self.send("error", command, _user_message(exc), traceback.format_exc(limit=8))
            # Cleared once the answer is out, not when the next command starts: a stop that
            # arrives while the next generate is still queued must still stop it.
            self.stop.clear()
        if self.backend is not None:
            self.backend.unload()

    def report_progress(self, text: str, stage: str = "loading") -> None:
        self.send("progress", text, stage)

    def do_probe(self, backend_name: str) -> None:
        from playground.backends import get_backend_class

        self.send("probe", get_backend_class(backend_name).probe())

    def do_load(self, backend_name: str, model_dir: str, device: str, precision: str) -> None:
        from playground.backends import get_backend_class
        from playground.backends.base import DeviceUnavailableError, MissingPackageError
        from playground.models import convert_cache

        started = time.perf_counter()
        cls = get_backend_class(backend_name)
        probe = cls.probe()
        if not probe.installed:
            raise MissingPackageError(probe.reason)
        if not device:
            device = probe.default_device() or ""
            if not device:
                raise DeviceUnavailableError(f"{cls.label} found no usable device here.")
        self.backend = cls()
        self.backend.load(Path(model_dir), device, precision, self.report_progress)
        total = time.perf_counter() - started
        convert_s = convert_cache.take_conversion_seconds()
        threads = thread_budget()
        self.send(
            "loaded",
            {
                "threads": recorded_threads(threads),
                "versions": f"{probe.version}; python {platform.python_version()}",
                "load_s": total - convert_s,
                "convert_s": convert_s,
                "device": self.backend.device,
                "precision": self.backend.precision,
                "device_note": self.backend.device_note,
                "context_length": self.backend.context_length,
                "peak_rss_mb": peak_rss_mb(),
            },
        )

    def do_generate(self, prompt: str, settings: dict, flush_interval: float) -> None:
        from playground.backends.base import BackendError
        from playground.engine.token_meter import TokenMeter
        from playground.settings import GenerationSettings

        if self.backend is None:
            raise BackendError("No model loaded")
        generation = GenerationSettings(**settings)
        meter = TokenMeter(
            lambda text, count, at: self.send("tokens", text, count, at), self.stop, flush_interval
        )
        others = OtherLoad.start()
        output = self.backend.generate(prompt, generation, meter)
        finished = time.perf_counter()
        other_cpu = others.percent()
        meter.flush(finished)
        self.send(
            "result",
            {
                **meter.summary(finished),
                "prompt_tokens": output.prompt_tokens,
                "new_tokens": meter.count or output.new_tokens,
                "stopped": output.stopped or self.stop.is_set(),
                "peak_rss_mb": peak_rss_mb(),
                "text": meter.text,
                "token_ids": meter.ids,
                "prompt_ids_digest": _digest(output.prompt_ids),
                "other_cpu_percent": other_cpu,
            },
        )


def _digest(ids: Sequence[int]) -> str:
    """A short fingerprint of the prompt's token ids: equal digests = the lanes' tokenizers agree
    on this prompt, so their generated ids can be compared (the ids themselves stay here)."""
    return hashlib.sha1(" ".join(map(str, ids)).encode()).hexdigest()[:16] if ids else ""


def _user_message(exc: BaseException) -> str:
    from playground.backends.base import BackendError

    if isinstance(exc, BackendError):
        return str(exc)
    if isinstance(exc, ImportError):
        return f"A runtime package is missing or broken: {exc}. Install with pip install -r requirements.txt."
    if isinstance(exc, MemoryError):
        return "Out of memory while running this backend."
    return f"{type(exc).__name__}: {exc}"


def main() -> None:
    address = os.environ.pop(ADDRESS_ENV)
    authkey = bytes.fromhex(os.environ.pop(AUTHKEY_ENV))
    host, port = address.rsplit(":", 1)
    conn = Client((host, int(port)), family="AF_INET", authkey=authkey)
    conn.send(("hello", os.getpid()))
    Worker(conn).serve()


if __name__ == "__main__":
    main()
