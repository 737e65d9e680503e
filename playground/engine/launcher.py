"""Start a worker process and talk to it: process isolation for every backend.

A separate interpreter per backend keeps OpenMP / oneTBB thread pools from fighting,
lets the ORT GenAI and NPU-library builds bring their own native libraries, makes memory
attributable per backend, and turns a native crash into a message instead of a dead app.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

from playground.engine.threads import thread_budget, worker_env
from playground.engine.worker import ADDRESS_ENV, AUTHKEY_ENV
from playground.paths import REPO_ROOT, cache_dir

CONNECT_TIMEOUT_S = 120.0  # a cold import of torch on a slow disk can take a while


class WorkerDied(Exception):
    """The worker exited or stopped answering; the message carries the tail of its log."""


class WorkerProcess:
    """One running worker; ``conn`` carries pickled tuples both ways."""

    def __init__(self, label: str, python: str | None = None, env: dict[str, str] | None = None) -> None:
        self.label = label
        authkey = secrets.token_bytes(32)
        listener = Listener(("127.0.0.1", 0), family="AF_INET", authkey=authkey)
        host, port = listener.address
        log_dir = cache_dir("logs")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
        self.log_path: Path = log_dir / f"worker-{safe}-{os.getpid()}-{time.time_ns()}.log"
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
        self.proc = subprocess.Popen(
            [python or sys.executable, "-m", "playground.engine.worker"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=str(cache_dir("workdir")),
        )
        self.conn = self._accept(listener)
        self.pid = self.proc.pid

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
        hello = conn.recv()
        assert hello[0] == "hello"
        return conn

    def send(self, *message: Any) -> None:
        try:
            self.conn.send(message)
        except (OSError, EOFError) as exc:
            raise WorkerDied(f"{self.label}: worker is gone ({self.describe_exit()})") from exc

    def recv(self) -> tuple:
        try:
            return self.conn.recv()
        except (OSError, EOFError) as exc:
            self.proc.wait(timeout=5)
            raise WorkerDied(f"{self.label}: worker crashed ({self.describe_exit()})") from exc

    def request_stop(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            self.conn.send(("stop",))

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def describe_exit(self) -> str:
        code = self.proc.poll()
        what = "still running" if code is None else f"exit code {code}"
        if code is not None and code < 0:
            what = f"killed by signal {-code}"
        tail = self.log_tail()
        return f"{what}; last output:\n{tail}" if tail else what

    def close(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, EOFError):
                self.conn.send(("exit",))
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.conn.close()
        self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
