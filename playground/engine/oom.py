"""Tell an out-of-memory kill from any other crash, from evidence the OS leaves behind.

A worker the kernel's OOM killer ends dies by SIGKILL, like one the engine kills, so the
signal alone proves nothing. Evidence that does: the kernel's own counters (the worker's
memory cgroup's ``oom_kill`` count, else the machine-wide ``oom_kill`` in /proc/vmstat having
moved while the worker ran), or on Windows an exit status of STATUS_NO_MEMORY.

When the playground has a memory limit and may create cgroups (root on a Linux with a memory
controller), each worker runs in its own child cgroup capped at that limit, so the kernel
enforces it the moment it is crossed and says so in that cgroup's counters.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ENV = "PLAYGROUND_MEMORY_CGROUPS"  # "0" turns per-worker cgroups off (the engine guard remains)
V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_ROOT = Path("/sys/fs/cgroup")
# Windows: STATUS_NO_MEMORY and STATUS_COMMITMENT_LIMIT as unsigned process exit codes.
WINDOWS_OOM_CODES = {0xC0000017, 0xC000012D}
MB = 2**20


def read_vmstat_oom_kills() -> int | None:
    """Machine-wide count of OOM-killer kills (Linux 4.13+); None where unreadable."""
    try:
        for line in Path("/proc/vmstat").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _own_cgroup(controller: str) -> str | None:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(",") or (controller == "" and controllers == ""):
                return path
    except OSError:
        return None
    return None


@dataclass
class WorkerCgroup:
    """A child memory cgroup of the app's own, holding one worker, capped at ``limit_mb``."""

    path: Path
    version: int
    limit_mb: float

    @classmethod
    def create(cls, name: str, limit_mb: float) -> WorkerCgroup | None:
        """A new cgroup, or None when cgroups are off, absent or not writable here."""
        if os.environ.get(CGROUP_ENV, "1") == "0" or sys.platform != "linux":
            return None
        limit = str(int(limit_mb * MB))
        v1 = _own_cgroup("memory")
        if v1 is not None and (V1_ROOT / "memory.limit_in_bytes").exists():
            path = V1_ROOT / v1.lstrip("/") / name
            files = {"memory.limit_in_bytes": limit}
            version = 1
        else:
            v2 = _own_cgroup("")
            if v2 is None or not (V2_ROOT / "cgroup.controllers").exists():
                return None
            path = V2_ROOT / v2.lstrip("/") / name
            files = {"memory.max": limit, "memory.swap.max": "0"}
            version = 2
        try:
            path.mkdir()
            for file, value in files.items():
                (path / file).write_text(value)
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        if version == 1:
            # Without swap limits a v1 cgroup would push the worker to swap instead of failing.
            with contextlib.suppress(OSError):
                (path / "memory.memsw.limit_in_bytes").write_text(limit)
        return cls(path, version, limit_mb)

    def add(self, pid: int) -> bool:
        try:
            (self.path / "cgroup.procs").write_text(str(pid))
        except OSError:
            return False
        return True

    def oom_kills(self) -> int:
        """How many processes the kernel killed in this cgroup for exceeding its limit."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            return 0
        return 0

    def usage_mb(self) -> float | None:
        """What the kernel charges this cgroup now (what its limit is checked against)."""
        name = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        try:
            return int((self.path / name).read_text()) / MB
        except (OSError, ValueError):
            return None

    def peak_mb(self) -> float | None:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int((self.path / name).read_text()) / MB
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        """Remove the (empty) cgroup; retried briefly while the kernel reaps the dead worker."""
        for _ in range(20):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)


@dataclass
class OomEvidence:
    """What is known about a worker's death; ``message`` is None when it was not for memory."""

    message: str | None


def judge_exit(
    code: int | None,
    killed_by_engine: bool,
    cgroup: WorkerCgroup | None,
    vmstat_before: int | None,
    last_rss_mb: float,
) -> OomEvidence:
    """Decide truthfully whether the OS ended a worker for memory."""
    if code is None or killed_by_engine:
        return OomEvidence(None)
    if sys.platform == "win32" and (code & 0xFFFFFFFF) in WINDOWS_OOM_CODES:
        return OomEvidence("killed: out of memory (Windows could not commit more memory to the worker)")
    if code != -signal.SIGKILL:
        return OomEvidence(None)
    seen = (
        f"; last sampled resident memory, shared libraries included: {last_rss_mb:.0f} MB"
        if last_rss_mb
        else ""
    )
    if cgroup is not None and cgroup.oom_kills() > 0:
        peak = cgroup.peak_mb()
        used = f"used {peak:.0f} MB of" if peak else "reached"
        return OomEvidence(
            f"killed: out of memory ({used} the {cgroup.limit_mb:.0f} MB limit; "
            f"the kernel's OOM killer ended the worker{seen})"
        )
    after = read_vmstat_oom_kills()
    if vmstat_before is not None and after is not None and after > vmstat_before:
        return OomEvidence(
            "killed: out of memory (the kernel's OOM killer ended the worker: the machine ran out "
            f"of memory{seen})"
        )
    return OomEvidence(None)
