"""Intel GPU utilization on Linux without root, from DRM client fdinfo (kernel drm-usage-stats).

Every open DRM file descriptor has ``/proc/<pid>/fdinfo/<fd>`` with per-client counters:

* i915: ``drm-engine-<engine>: <ns> ns`` cumulative busy time -> delta / wall delta;
* xe: ``drm-cycles-<engine>`` busy GPU cycles and ``drm-total-cycles-<engine>`` a GPU
  timestamp in the same unit -> delta cycles / delta total cycles (no CPU clock involved);
* ``drm-engine-capacity-<engine>``: that many identical engines share the key.

Per device (``drm-pdev``) the busy fractions are summed over clients, deduplicated by
``drm-client-id`` (dup()'ed or inherited fds show the same client twice). A client seen for the
first time only sets its baseline. Walking every fd of every process is the expensive part, so
the full scan runs every ``rescan_s``; in between only the known DRM fdinfo files are re-read.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from playground.monitor.base import Clock, UtilizationReader
from playground.monitor.samples import DeviceSample, clamp_percent

MB = 1024 * 1024
DRIVERS = ("i915", "xe")
# xe names engine classes like the hardware; show both drivers with i915's words.
ENGINE_ALIASES = {"rcs": "render", "bcs": "copy", "vcs": "video", "vecs": "video-enhance", "ccs": "compute"}
_UNITS = {"": 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


@dataclass
class DrmClient:
    driver: str
    client_id: str
    pdev: str
    engine_ns: dict[str, int] = field(default_factory=dict)  # i915 style
    cycles: dict[str, int] = field(default_factory=dict)  # xe style
    total_cycles: dict[str, int] = field(default_factory=dict)
    capacity: dict[str, int] = field(default_factory=dict)
    resident_bytes: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        return self.driver, self.pdev, self.client_id


def _uint(value: str) -> int:
    number, _, unit = value.partition(" ")
    return int(number) * _UNITS.get(unit.strip(), 1)


def parse_fdinfo(text: str) -> DrmClient | None:
    """Parse one fdinfo file; None when it is not a DRM client (or lacks the mandatory keys)."""
    kv: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.startswith("drm-"):
            kv[key] = value.strip()
    if "drm-driver" not in kv or "drm-client-id" not in kv:
        return None
    client = DrmClient(kv["drm-driver"], kv["drm-client-id"], kv.get("drm-pdev", "?"))
    resident = memory = 0
    try:
        for key, value in kv.items():
            if key.startswith("drm-engine-capacity-"):
                client.capacity[key[len("drm-engine-capacity-") :]] = int(value)
            elif key.startswith("drm-engine-"):
                client.engine_ns[key[len("drm-engine-") :]] = _uint(value)
            elif key.startswith("drm-total-cycles-"):
                client.total_cycles[key[len("drm-total-cycles-") :]] = int(value)
            elif key.startswith("drm-cycles-"):
                client.cycles[key[len("drm-cycles-") :]] = int(value)
            elif key.startswith("drm-resident-"):
                resident += _uint(value)
            elif key.startswith("drm-memory-"):  # pre-6.9 name of the same figure
                memory += _uint(value)
    except ValueError:
        return None
    client.resident_bytes = resident or memory
    return client


def busy_fractions(prev: DrmClient, cur: DrmClient, wall_s: float) -> dict[str, float]:
    """Engine -> fraction of that engine (class) this client kept busy between two reads."""
    out: dict[str, float] = {}
    for engine, ns in cur.engine_ns.items():
        before = prev.engine_ns.get(engine)
        if before is not None and ns >= before and wall_s > 0:
            out[engine] = (ns - before) / (wall_s * 1e9) / cur.capacity.get(engine, 1)
    for engine, cycles in cur.cycles.items():
        c0, t0, t1 = prev.cycles.get(engine), prev.total_cycles.get(engine), cur.total_cycles.get(engine)
        if c0 is None or t0 is None or t1 is None or t1 <= t0 or cycles < c0:
            continue
        out[engine] = (cycles - c0) / (t1 - t0) / cur.capacity.get(engine, 1)
    return out


def scan_drm_fds(proc_root: Path) -> dict[str, int]:
    """fdinfo path -> pid for every fd that points at /dev/dri/* (readlink is one syscall)."""
    found: dict[str, int] = {}
    try:
        pids = sorted(int(e.name) for e in os.scandir(proc_root) if e.name.isdigit())
    except OSError:
        return found
    for pid in pids:
        fd_dir = f"{proc_root}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # exited, or another user's process
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target.startswith("/dev/dri/"):
                found[f"{proc_root}/{pid}/fdinfo/{fd}"] = pid
    return found


def intel_gpus(sys_root: Path, drivers: tuple[str, ...] = DRIVERS) -> dict[str, str]:
    """pdev -> driver for DRM cards bound to i915/xe (so idle GPUs show 0 % rather than nothing)."""
    found: dict[str, str] = {}
    for card in sorted(sys_root.glob("class/drm/card[0-9]*")):
        if "-" in card.name:  # connectors like card0-eDP-1
            continue
        try:
            driver = Path(os.readlink(card / "device" / "driver")).name
            pdev = Path(os.path.realpath(card / "device")).name
        except OSError:
            continue
        if driver in drivers:
            found[pdev] = driver
    return found


def device_name(driver: str, pdev: str) -> str:
    return f"Intel GPU ({driver} {pdev})"


class DrmFdinfoReader(UtilizationReader):
    name = "Intel GPU (DRM fdinfo)"

    def __init__(
        self,
        proc_root: str | Path = "/proc",
        devices: dict[str, str] | None = None,  # pdev -> driver, always reported
        drivers: tuple[str, ...] = DRIVERS,
        clock: Clock = time.monotonic,
        rescan_s: float = 2.0,
    ) -> None:
        super().__init__(clock)
        self.proc_root = Path(proc_root)
        self.devices = dict(devices or {})
        self.drivers = drivers
        self.rescan_s = rescan_s
        self._paths: dict[str, int] = {}
        self._scanned_at: float | None = None
        self._prev: dict[tuple[str, str, str], tuple[float, DrmClient]] = {}
        self.read()  # baseline

    @classmethod
    def probe(
        cls, sys_root: str | Path = "/sys", proc_root: str | Path = "/proc", clock: Clock = time.monotonic
    ) -> tuple[DrmFdinfoReader | None, str]:
        if sys.platform != "linux":
            return None, "Intel GPU fdinfo: Linux only"
        devices = intel_gpus(Path(sys_root))
        if not devices:
            return None, "Intel GPU: no DRM card bound to i915 or xe"
        reader = cls(proc_root, devices, clock=clock)
        return reader, "Intel GPU: " + ", ".join(f"{d} {p}" for p, d in devices.items()) + " via fdinfo"

    def _clients(self, now: float) -> dict[tuple[str, str, str], tuple[int, DrmClient]]:
        if self._scanned_at is None or now - self._scanned_at >= self.rescan_s:
            self._paths = scan_drm_fds(self.proc_root)
            self._scanned_at = now
        clients: dict[tuple[str, str, str], tuple[int, DrmClient]] = {}
        for path, pid in list(self._paths.items()):
            try:
                with open(path) as f:
                    text = f.read()
            except OSError:  # the fd was closed or the process exited
                del self._paths[path]
                continue
            client = parse_fdinfo(text)
            if client is None or client.driver not in self.drivers:
                continue
            clients.setdefault(client.key, (pid, client))  # first (lowest) pid owns a shared client
        return clients

    def read(self) -> dict[str, DeviceSample]:
        now = self.clock()
        clients = self._clients(now)
        engines: dict[tuple[str, str], dict[str, float]] = {}
        per_pid: dict[tuple[str, str], dict[int, dict[str, float]]] = {}
        memory: dict[tuple[str, str], int] = {}
        for pdev, driver in self.devices.items():
            engines[(driver, pdev)] = {}
            memory[(driver, pdev)] = 0
        for key, (pid, client) in clients.items():
            dev = (client.driver, client.pdev)
            engines.setdefault(dev, {})
            memory[dev] = memory.get(dev, 0) + client.resident_bytes
            prev = self._prev.get(key)
            if prev is None:
                continue
            for engine, frac in busy_fractions(prev[1], client, now - prev[0]).items():
                name = ENGINE_ALIASES.get(engine, engine)
                engines[dev][name] = engines[dev].get(name, 0.0) + frac
                pid_engines = per_pid.setdefault(dev, {}).setdefault(pid, {})
                pid_engines[name] = pid_engines.get(name, 0.0) + frac
        self._prev = {key: (now, client) for key, (_, client) in clients.items()}
        out: dict[str, DeviceSample] = {}
        for dev, busy in engines.items():
            pct = {e: round(clamp_percent(100.0 * f), 1) for e, f in sorted(busy.items())}
            shares = {
                pid: round(clamp_percent(100.0 * max(e.values(), default=0.0)), 1)
                for pid, e in per_pid.get(dev, {}).items()
            }
            out[device_name(*dev)] = DeviceSample(
                util_percent=max(pct.values(), default=0.0),
                mem_used_mb=memory[dev] / MB if dev in memory else None,
                engines=pct,
                per_pid=shares,
            )
        return out
