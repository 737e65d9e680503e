"""Start a worker process and talk to it: process isolation for every backend.

A separate interpreter per backend keeps OpenMP / oneTBB thread pools from fighting,
lets the ORT GenAI and NPU-library builds bring their own native libraries, makes memory
attributable per backend, and turns a native crash into a message instead of a dead app.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection, Listener
from pathlib import Path

from playground.engine.oom import WorkerCgroup, judge_exit, read_vmstat_oom_kills
from playground.engine.protocol import Command, Exit, Hello, Message, ProtocolError, Stop, decode, encode
from playground.engine.threads import thread_budget, worker_env
from playground.engine.worker import ADDRESS_ENV, AUTHKEY_ENV
from playground.paths import REPO_ROOT, cache_dir

CONNECT_TIMEOUT_S = 120.0  # a cold import of torch on a slow disk can take a while


LOG_PREFIX = "worker-"
NAME_LIMIT = 60  # characters of a lane's label kept in its log file's name
LABEL_LIMIT = 120  # characters of a lane's label in messages
KEEP_LOGS = 200  # worker log files kept (the newest); older ones are deleted when a worker starts
_open_logs: set[Path] = set()  # logs of this process's live workers: never pruned


def safe_name(label: str, limit: int = NAME_LIMIT) -> str:
    """``label`` as a file name part: only [A-Za-z0-9._-], at most ``limit`` characters (a cut
    label ends with a hash of the whole, so two long labels still get different names)."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in label).strip(".")
    if len(safe) <= limit:
        return safe or "worker"
    digest = hashlib.sha1(label.encode("utf-8", "replace")).hexdigest()[:10]
    return f"{safe[: limit - 11]}-{digest}"


def prune_worker_logs(log_dir: Path, keep: int | None = None) -> int:
    """Delete all but the newest ``keep`` (``KEEP_LOGS``) worker logs in ``log_dir``; returns how
    many went. Logs of this process's live workers always stay."""
    keep = KEEP_LOGS if keep is None else keep
    try:
        logs = [path for path in log_dir.glob(f"{LOG_PREFIX}*.log") if path not in _open_logs]
        dated = []
        for path in logs:
            with contextlib.suppress(OSError):
                dated.append((path.stat().st_mtime, path))
    except OSError:
        return 0
    dated.sort(reverse=True)
    removed = 0
    open_here = sum(1 for path in _open_logs if path.parent == log_dir)
    for _, path in dated[max(0, keep - open_here):]:
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed


class WorkerDied(Exception):
    """The worker exited or stopped answering; the message carries the tail of its log."""


class WorkerProcess:
    """One running worker; ``conn`` carries ``playground.engine.protocol`` messages both ways."""

    def __init__(
        self,
        label: str,
        python: str | None = None,
        env: dict[str, str] | None = None,
        memory_limit_mb: float | None = None,
    ) -> None:
        # in every message about this worker; a lane typed on a page may be thousands of characters
        self.label = label if len(label) <= LABEL_LIMIT else label[:LABEL_LIMIT] + "…"
        self.killed_by_engine = False  # a SIGKILL we sent is not an out-of-memory kill
        self.last_rss_mb = 0.0  # the engine's latest sample, evidence for an OOM verdict
        self.oom_kills_before = read_vmstat_oom_kills()
        authkey = secrets.token_bytes(32)
        listener = Listener(("127.0.0.1", 0), family="AF_INET", authkey=authkey)
        host, port = listener.address
        log_dir = cache_dir("logs")
        # With a memory limit, the kernel enforces it per worker where we may create cgroups.
        self.cgroup = (
            WorkerCgroup.create(f"playground-{os.getpid()}-{time.time_ns()}", memory_limit_mb)
            if memory_limit_mb
            else None
        )
        self.log_path: Path = log_dir / f"{LOG_PREFIX}{safe_name(label)}-{os.getpid()}-{time.time_ns()}.log"
        child_env = {
            **os.environ,
            **worker_env(thread_budget()),  # the same budget headless and with the page open
            **(env or {}),
            ADDRESS_ENV: f"{host}:{port}",
            AUTHKEY_ENV: authkey.hex(),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",  # workers get local folders; the parent does any download
            "TRANSFORMERS_OFFLINE": "1",
        }
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the child's lifetime
        _open_logs.add(self.log_path)
        prune_worker_logs(log_dir)
        self.proc = subprocess.Popen(
            [python or sys.executable, "-m", "playground.engine.worker"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=str(cache_dir("workdir")),
        )
        if self.cgroup is not None and not self.cgroup.add(self.proc.pid):
            self.cgroup.remove()
            self.cgroup = None
        self.pid = self.proc.pid
        try:
            self.conn = self._accept(listener)
        except WorkerDied:
            self._close_log()
            if self.cgroup is not None:
                self.proc.wait(timeout=10)
                self.cgroup.remove()
            raise

    def _accept(self, listener: Listener) -> Connection:
        accepted: list[Connection] = []
        failure: list[BaseException] = []

        def accept() -> None:
            try:
                accepted.append(listener.accept())
            except BaseException as exc:  # authentication failure, closed listener
                failure.append(exc)

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while thread.is_alive():
            thread.join(0.1)
            if self.proc.poll() is not None and thread.is_alive():
                listener.close()
                raise WorkerDied(f"{self.label}: worker exited at start-up ({self.describe_exit()})")
            if time.monotonic() > deadline:
                listener.close()
                self.kill()
                raise WorkerDied(f"{self.label}: worker did not start within {CONNECT_TIMEOUT_S:.0f} s")
        listener.close()
        if failure or not accepted:
            self.kill()
            raise WorkerDied(f"{self.label}: worker handshake failed: {failure[0] if failure else '?'}")
        conn = accepted[0]
        try:
            hello = decode(conn.recv())
        except (OSError, EOFError, ProtocolError) as exc:
            self.kill()
            raise WorkerDied(f"{self.label}: worker handshake failed: {exc}") from exc
        if not isinstance(hello, Hello):
            self.kill()
            raise WorkerDied(f"{self.label}: worker handshake failed: got {hello.kind}")
        return conn

    def send(self, command: Command) -> None:
        try:
            self.conn.send(encode(command))
        except (OSError, EOFError) as exc:
            raise WorkerDied(f"{self.label}: worker is gone ({self.describe_exit()})") from exc

    def recv(self) -> Message:
        """The worker's next message; ``WorkerDied`` when it is gone or speaks another protocol."""
        try:
            data = self.conn.recv()
        except (OSError, EOFError) as exc:
            self.proc.wait(timeout=5)
            oom = self.out_of_memory()
            if oom:
                raise WorkerDied(f"{self.label}: {oom}") from exc
            raise WorkerDied(f"{self.label}: worker crashed ({self.describe_exit()})") from exc
        try:
            return decode(data)  # type: ignore[return-value]
        except ProtocolError as exc:
            raise WorkerDied(f"{self.label}: {exc}") from exc

    def request_stop(self, run_id: str) -> None:
        """Stop the run ``run_id`` (the worker ignores it once that run has ended)."""
        with contextlib.suppress(OSError, EOFError):
            self.conn.send(encode(Stop(run_id)))

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def out_of_memory(self) -> str | None:
        """"killed: out of memory (...)" when the OS ended the worker for memory, else None."""
        verdict = judge_exit(
            self.proc.poll(), self.killed_by_engine, self.cgroup, self.oom_kills_before, self.last_rss_mb
        )
        return verdict.message

    def child_out_of_memory(self) -> str | None:
        """An exporter (a child in the worker's cgroup) the kernel killed for memory."""
        if self.cgroup is None or self.cgroup.oom_kills() == 0:
            return None
        peak = self.cgroup.peak_mb()
        used = f"used {peak:.0f} MB of" if peak else "reached"
        return (
            f"killed: out of memory (the first-time conversion {used} the {self.cgroup.limit_mb:.0f} MB "
            "limit and the kernel's OOM killer ended it)"
        )

    def rss_mb(self) -> float:
        """Resident memory of the worker plus its largest child (an exporter), sampled now."""
        import psutil

        try:
            proc = psutil.Process(self.proc.pid)
            own = proc.memory_info().rss
            children = proc.children(recursive=True)
        except psutil.Error:
            return self.last_rss_mb
        largest = 0  # exporters fork short-lived helpers sharing their pages: count the largest child
        for child in children:
            with contextlib.suppress(psutil.Error):
                largest = max(largest, child.memory_info().rss)
        self.last_rss_mb = (own + largest) / 2**20
        return self.last_rss_mb

    def held_mb(self) -> float:
        """What counts against the memory limit: the kernel's charge where the worker has its own
        cgroup (the number the kernel enforces), else the sampled resident memory."""
        charged = self.cgroup.usage_mb() if self.cgroup is not None else None
        if charged is None:
            return self.rss_mb()
        self.rss_mb()  # keep last_rss_mb fresh as evidence
        return charged

    def describe_exit(self) -> str:
        code = self.proc.poll()
        what = "still running" if code is None else f"exit code {code}"
        if code is not None and code < 0:
            what = f"killed by signal {-code}"
        oom = self.out_of_memory()
        if oom:
            what = oom
        tail = self.log_tail()
        return f"{what}; last output:\n{tail}" if tail else what

    def close(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, EOFError):
                self.conn.send(encode(Exit()))
            deadline = time.monotonic() + timeout
            self._wait_for_hangup(deadline)
            try:
                self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill()
        self.conn.close()
        self._close_log()
        if self.cgroup is not None:
            self.cgroup.remove()

    def _wait_for_hangup(self, deadline: float) -> None:
        """Until the worker's end of the connection closes, which it does as it exits (or until
        ``deadline``): woken by the socket at once, where ``Popen.wait(timeout)`` alone polls with
        sleeps of up to 50 ms (~10 ms of each close here). What it still sends is dropped; a
        process it forked may hold the socket open after it exited, so its exit ends the wait too."""
        with contextlib.suppress(OSError, EOFError):
            while (left := deadline - time.monotonic()) > 0 and self.proc.poll() is None:
                if self.conn.poll(min(left, 0.05)):
                    self.conn.recv_bytes()

    def _close_log(self) -> None:
        self._log.close()
        _open_logs.discard(self.log_path)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.killed_by_engine = True
            self.proc.kill()
            self.proc.wait(timeout=10)
