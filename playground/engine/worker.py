"""The worker process: hosts exactly one backend, so runtimes never share a process.

Started by ``playground.engine.launcher`` as ``python -m playground.engine.worker``; it
connects back over an authenticated local socket, then serves the commands of
``playground.engine.protocol``: ``Probe``, ``Load``, ``Generate``, ``Score``, ``Stop`` (out of band,
from a reader thread), ``Exit``.
"""

from __future__ import annotations

import hashlib
import logging
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
from playground.engine.protocol import (
    Command,
    Exit,
    Failed,
    Generate,
    Hello,
    LaneState,
    Load,
    Loaded,
    Message,
    Probe,
    Probed,
    Progress,
    ProtocolError,
    Result,
    Score,
    Scored,
    Stop,
    Tokens,
    decode,
    encode,
)
from playground.engine.stall import StallWatch
from playground.engine.threads import recorded_threads, thread_budget

AUTHKEY_ENV = "PLAYGROUND_WORKER_AUTHKEY"
ADDRESS_ENV = "PLAYGROUND_WORKER_ADDRESS"
log = logging.getLogger(__name__)


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
        self.stop = threading.Event()  # set only while the run it was meant for is the one generating
        self.commands: queue.Queue[Command] = queue.Queue()
        self.backend: Any = None
        # A Stop names its run: the reader thread keeps which runs are queued, running and stopped,
        # so a stop that arrives after its run ended is dropped instead of stopping the next one.
        self._runs = threading.Lock()
        self._running: str | None = None
        self._queued: set[str] = set()
        self._stopped: set[str] = set()  # queued runs stopped before they started
        self._closing = False  # the engine is gone: every run stops

    def send(self, message: Message) -> None:
        with self.send_lock:
            self.conn.send(encode(message))

    def read_commands(self) -> None:
        """Reader thread: ``Stop`` must arrive while the main thread is busy generating."""
        try:
            while True:
                command = decode(self.conn.recv())
                if isinstance(command, Stop):
                    self.request_stop(command.run_id)
                    continue
                if isinstance(command, Generate):
                    with self._runs:
                        self._queued.add(command.run_id)
                self.commands.put(command)  # type: ignore[arg-type]
        except (EOFError, OSError):
            self._close()
        except ProtocolError:
            log.exception("unreadable command from the engine; exiting")
            self._close()

    def _close(self) -> None:
        with self._runs:
            self._closing = True
            self.stop.set()
        self.commands.put(Exit())

    def request_stop(self, run_id: str) -> None:
        """Stop ``run_id`` if it is generating or still queued; ignore a stop for any other run."""
        with self._runs:
            if run_id == self._running:
                self.stop.set()
            elif run_id in self._queued:
                self._stopped.add(run_id)
            else:
                log.info("stop for run %r ignored: it is not queued or generating", run_id)

    def _begin_run(self, run_id: str) -> None:
        with self._runs:
            self._queued.discard(run_id)
            self._running = run_id
            if run_id in self._stopped or self._closing:
                self.stop.set()
            else:
                self.stop.clear()
            self._stopped.discard(run_id)

    def _end_run(self) -> None:
        with self._runs:
            self._running = None
            if not self._closing:
                self.stop.clear()

    def serve(self) -> None:
        threading.Thread(target=self.read_commands, daemon=True).start()
        handlers = {Probe: self.do_probe, Load: self.do_load, Generate: self.do_generate,
                    Score: self.do_score}
        while True:
            command = self.commands.get()
            if isinstance(command, Exit):
                break
            if isinstance(command, Generate):
                self._begin_run(command.run_id)
            try:
                handlers[type(command)](command)  # type: ignore[operator]
            except Exception as exc:  # reported to the lane; the worker stays usable
                trace = traceback.format_exc(limit=8)
                log.error("%s failed: %s", command.kind, trace.rstrip())
                self.send(Failed(command.kind, _user_message(exc), trace))
            finally:
                if isinstance(command, Generate):
                    self._end_run()
        if self.backend is not None:
            self.backend.unload()

    def report_progress(self, text: str, stage: str = "loading") -> None:
        self.send(Progress(text, LaneState(stage)))

    def do_probe(self, command: Probe) -> None:
        from playground.backends import resolve_class

        self.send(Probed(resolve_class(command.backend, command.target).probe()))

    def do_load(self, command: Load) -> None:
        from playground.backends import resolve_class
        from playground.backends.base import DeviceUnavailableError, MissingPackageError

        started = time.perf_counter()
        cls = resolve_class(command.backend, command.target)
        probe = cls.probe()
        if not probe.installed:
            raise MissingPackageError(probe.reason)
        device = command.device
        if not device:
            device = probe.default_device() or ""
            if not device:
                raise DeviceUnavailableError(f"{cls.label} found no usable device here.")
        self.backend = cls()
        self.backend.load(Path(command.model_dir), device, command.precision, self.report_progress)
        total = time.perf_counter() - started
        conversion = self.backend.conversion  # what load went through: cached or converted now
        conversion_s = conversion.seconds if conversion is not None else 0.0
        self.send(
            Loaded(
                threads=recorded_threads(thread_budget()),
                versions=f"{probe.version}; python {platform.python_version()}",
                load_s=total - conversion_s,
                conversion_s=conversion_s,
                conversion_reused=conversion.reused if conversion is not None else None,
                device=self.backend.device,
                precision=self.backend.precision,
                device_note=self.backend.device_note,
            )
        )

    def do_generate(self, command: Generate) -> None:
        from playground.backends.base import BackendError
        from playground.engine.token_meter import TokenMeter
        from playground.models.chat import ChatPrompt
        from playground.settings import GenerationSettings

        if self.backend is None:
            raise BackendError("No model loaded")
        generation = GenerationSettings(**command.settings)
        # The watchers start before the meter's clock: their set-up is not the runtime's TTFT.
        others = OtherLoad.start()
        watch = StallWatch()
        meter = TokenMeter(
            lambda text, count, at: self.send(Tokens(text, count, at)), self.stop, command.flush_interval_s
        )
        try:
            prompt = ChatPrompt(command.prompt, command.messages) if command.messages else command.prompt
            output = self.backend.generate(prompt, generation, meter)
        finally:
            finished = time.perf_counter()
            stall = watch.finish()
        other_cpu = others.percent()
        meter.flush(finished)
        summary = meter.summary(finished)
        ttft = summary["ttft_s"]
        self.send(
            Result(
                **summary,
                prefill_tokens_per_s=output.prompt_tokens / ttft if output.prompt_tokens and ttft else None,
                prompt_tokens=output.prompt_tokens,
                new_tokens=meter.count or output.new_tokens,
                stopped=output.stopped or self.stop.is_set(),
                peak_rss_mb=peak_rss_mb(),
                text=meter.text,
                token_ids=meter.ids,
                prompt_ids_digest=_digest(output.prompt_ids),
                other_cpu_percent=other_cpu,
                host_steal_percent=others.steal_percent,
                stalled_s=stall.stalled_s,
                cpu_s=round(stall.cpu_s, 3),
                runtime_prefill_s=output.runtime_prefill_s,
                runtime_decode_tokens_per_s=output.runtime_decode_tokens_per_s,
                server_completion_tokens=output.server_completion_tokens,
                run_id=command.run_id,
            )
        )

    def do_score(self, command: Score) -> None:
        """The held-out text's perplexity from the runtime's own logits, or why it has none."""
        from playground.backends.base import BackendError, NotSupportedError

        if self.backend is None:
            raise BackendError("No model loaded")
        started = time.perf_counter()
        try:
            result = self.backend.perplexity(command.text, command.max_tokens)
        except NotSupportedError as exc:
            self.send(Scored(None, note=str(exc), run_id=command.run_id))
            return
        self.send(Scored(result.perplexity, result.tokens, result.windows, result.window, result.source,
                         round(time.perf_counter() - started, 3), run_id=command.run_id))


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
    logging.basicConfig(  # stderr is this worker's log file (playground.engine.launcher)
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    conn = Client((host, int(port)), family="AF_INET", authkey=authkey)
    conn.send(encode(Hello(os.getpid())))
    Worker(conn).serve()


if __name__ == "__main__":
    main()
