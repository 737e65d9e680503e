"""How much does the monitor itself cost? ``python -m playground.monitor.bench --seconds 10``.

Runs the real Monitor at the UI's rate with worker-like watched processes and reports the CPU
time the sampler thread consumed (time.thread_time inside the thread) per second of wall time,
cross-checked with this process's CPU time (the main thread only sleeps meanwhile), plus a
per-part breakdown of one tick.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from playground.monitor.base import UtilizationReader
from playground.monitor.detect import detect_readers
from playground.monitor.drm_fdinfo import DrmFdinfoReader, scan_drm_fds
from playground.monitor.processes import ProcessTable
from playground.monitor.sampler import Monitor
from playground.monitor.system import CpuUsage, memory

IDLE_CHILD = "import time; time.sleep(3600)"


def _per_call_ms(fn: Callable[[], object], n: int = 200) -> float:
    fn()
    t0 = time.thread_time()
    for _ in range(n):
        fn()
    return 1000.0 * (time.thread_time() - t0) / n


def _breakdown(pids: list[int], readers: list[UtilizationReader]) -> dict[str, float]:
    """CPU ms per call of each part of a tick, measured in this thread."""
    cpu = CpuUsage()
    table = ProcessTable(min_first_interval_s=0.0)
    for i, pid in enumerate(pids):
        table.watch(pid, f"w{i}")
    parts: dict[str, float] = {
        "system_cpu": _per_call_ms(cpu.read),
        "memory": _per_call_ms(memory),
        f"processes_x{len(pids)}": _per_call_ms(table.read),
    }
    for reader in readers:
        parts[reader.name] = _per_call_ms(reader.read, n=20)
        if isinstance(reader, DrmFdinfoReader):  # read() above mostly re-reads known fds
            parts["drm_fdinfo_full_proc_scan"] = _per_call_ms(
                lambda r=reader: scan_drm_fds(r.proc_root), n=10
            )
    return {k: round(v, 4) for k, v in parts.items()}


def run(seconds: float, rate_hz: float, n_watch: int, fdinfo_scan: bool) -> dict[str, Any]:
    readers, statuses = detect_readers()
    if fdinfo_scan and not any(isinstance(r, DrmFdinfoReader) for r in readers):
        # No Intel GPU here, but the /proc walk is the costly part of that reader: include it.
        readers.append(DrmFdinfoReader("/proc"))
    children = [subprocess.Popen([sys.executable, "-c", IDLE_CHILD]) for _ in range(n_watch)]
    try:
        mon = Monitor(rate_hz=rate_hz, readers=readers)
        for i, child in enumerate(children):
            mon.watch(child.pid, f"worker-{i}")
        proc_cpu0, wall0 = time.process_time(), time.monotonic()
        mon.start()
        time.sleep(seconds)
        mon.stop()
        wall = time.monotonic() - wall0
        proc_cpu = time.process_time() - proc_cpu0
        breakdown = _breakdown([c.pid for c in children], readers)
    finally:
        for child in children:
            child.kill()
            child.wait()
        for reader in readers:
            reader.close()
    thread_cpu = mon.cpu_time_s
    reader_rows = [{"name": s.name, "active": s.active, "reason": s.reason} for s in statuses]
    if fdinfo_scan and not any(s.active and s.name == DrmFdinfoReader.name for s in statuses):
        reader_rows.append({"name": DrmFdinfoReader.name, "active": True, "reason": "forced: --fdinfo-scan"})
    return {
        "seconds": round(wall, 3),
        "rate_hz": rate_hz,
        "watched_processes": n_watch,
        "ticks": mon.ticks,
        "achieved_hz": round(mon.ticks / wall, 3),
        "sampler_thread_cpu_s": round(thread_cpu, 6),
        "sampler_cpu_percent_of_one_core": round(100.0 * thread_cpu / wall, 4),
        "sampler_cpu_ms_per_tick": round(1000.0 * thread_cpu / max(mon.ticks, 1), 4),
        "process_cpu_s": round(proc_cpu, 4),
        "process_cpu_percent_of_one_core": round(100.0 * proc_cpu / wall, 4),
        "tick_breakdown_cpu_ms": breakdown,
        "readers": reader_rows,
        "host": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "processes": len(psutil.pids()),
            "psutil": psutil.__version__,
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=4.0, help="samples per second (the UI uses 4)")
    ap.add_argument("--watch", type=int, default=2, help="watched worker-like processes")
    ap.add_argument("--fdinfo-scan", action="store_true", help="include the /proc DRM fdinfo walk")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args(argv)
    result = run(args.seconds, args.rate, args.watch, args.fdinfo_scan)
    r = result
    print(
        f"monitor @ {r['rate_hz']:g} Hz, {r['watched_processes']} watched, {r['seconds']:.1f} s: "
        f"{r['ticks']} ticks ({r['achieved_hz']:.2f} Hz); sampler thread used "
        f"{r['sampler_thread_cpu_s'] * 1000:.1f} ms CPU = {r['sampler_cpu_percent_of_one_core']:.3f} % "
        f"of one core ({r['sampler_cpu_ms_per_tick']:.3f} ms/tick); whole process "
        f"{r['process_cpu_percent_of_one_core']:.3f} %"
    )
    print("per tick part, CPU ms:", json.dumps(result["tick_breakdown_cpu_ms"]))
    for row in result["readers"]:
        print(f"  [{'x' if row['active'] else ' '}] {row['name']}: {row['reason']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
