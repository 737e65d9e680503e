"""Turn Windows ``\\GPU Engine(*)\\Utilization Percentage`` values into per-adapter utilization.

Pure functions over (instance name, value) pairs, so they are tested on captured values on any OS.
Instance names look like ``pid_1234_luid_0x00000000_0x0000D1B4_phys_0_eng_3_engtype_Compute``:
one instance per (process, engine), the value being that process's share of that engine.

Task Manager's arithmetic, reproduced: an engine's utilization is the sum over processes; an
engine type's is its busiest engine; an adapter's is its busiest engine type; a process's share
of an adapter is its busiest engine there. NPUs are MCDM "compute-only" adapters: they appear in
``\\NPU Engine(*)`` on recent Windows 11, or as an adapter whose engines are all ``Compute``
(or ``Neural``) and that DXGI does not list as a graphics adapter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from playground.monitor.samples import DeviceSample, clamp_percent

MB = 1024 * 1024

_ENGINE_RE = re.compile(
    r"^pid_(?P<pid>\d+)_luid_(?P<hi>0x[0-9a-fA-F]+)_(?P<lo>0x[0-9a-fA-F]+)"
    r"_phys_(?P<phys>\d+)_eng_(?P<eng>\d+)_engtype_(?P<engtype>.*)$"
)
_ADAPTER_RE = re.compile(r"^luid_(?P<hi>0x[0-9a-fA-F]+)_(?P<lo>0x[0-9a-fA-F]+)_phys_(?P<phys>\d+)")


def luid_key(high: int, low: int) -> str:
    """One spelling for an adapter LUID, shared with the DXGI enumeration."""
    return f"0x{high & 0xFFFFFFFF:08X}_0x{low & 0xFFFFFFFF:08X}"


@dataclass(frozen=True)
class EngineInstance:
    pid: int
    luid: str
    phys: int
    eng: int
    engtype: str  # "3D", "Copy", "VideoDecode", "Compute", "Compute_0", "Neural", ...


def parse_engine_instance(name: str) -> EngineInstance | None:
    m = _ENGINE_RE.match(name)
    if m is None:
        return None
    return EngineInstance(
        pid=int(m["pid"]),
        luid=luid_key(int(m["hi"], 16), int(m["lo"], 16)),
        phys=int(m["phys"]),
        eng=int(m["eng"]),
        engtype=m["engtype"],
    )


def parse_adapter_instance(name: str) -> str | None:
    """LUID of a ``\\GPU Adapter Memory(*)`` instance (``luid_0x..._0x..._phys_0``)."""
    m = _ADAPTER_RE.match(name)
    return None if m is None else luid_key(int(m["hi"], 16), int(m["lo"], 16))


@dataclass(frozen=True)
class AdapterInfo:
    """What DXGI says about an adapter; absent for compute-only adapters such as NPUs."""

    index: int
    description: str
    vendor_id: int = 0


@dataclass
class AdapterUsage:
    luid: str
    engines: dict[str, float] = field(default_factory=dict)  # engine type -> util %
    per_pid: dict[int, float] = field(default_factory=dict)
    is_npu: bool = False
    mem_bytes: float | None = None

    @property
    def util_percent(self) -> float:
        return max(self.engines.values(), default=0.0)


def _is_compute_only(engtypes: Iterable[str]) -> bool:
    types = list(engtypes)
    return bool(types) and all(t.startswith(("Compute", "Neural")) for t in types)


def aggregate_engines(
    gpu_items: Iterable[tuple[str, float]],
    npu_items: Iterable[tuple[str, float]] = (),
    memory_items: Iterable[tuple[str, float]] = (),
    adapters: Mapping[str, AdapterInfo] | None = None,
    skip_luids: Iterable[str] = (),
    known: Mapping[str, bool] | None = None,
) -> dict[str, AdapterUsage]:
    """LUID -> usage. ``memory_items`` are Dedicated and Shared Usage values in bytes (summed,
    like Task Manager's "GPU memory"); ``skip_luids`` drops adapters another reader covers;
    ``known`` (LUID -> was an NPU) keeps adapters seen before listed, and named the same, on a
    tick where no process has a context on them."""
    adapters = adapters or {}
    known = known or {}
    skip = set(skip_luids)
    engine_sum: dict[tuple[str, int, int], float] = {}  # (luid, phys, eng) -> sum over pids
    engine_type: dict[tuple[str, int, int], str] = {}
    pid_max: dict[str, dict[int, float]] = {}
    npu_luids: set[str] = set()
    for items, from_npu_counter in ((gpu_items, False), (npu_items, True)):
        for name, value in items:
            inst = parse_engine_instance(name)
            if inst is None or inst.luid in skip:
                continue
            key = (inst.luid, inst.phys, inst.eng)
            engine_sum[key] = engine_sum.get(key, 0.0) + value
            engine_type[key] = inst.engtype
            if inst.engtype.startswith("Neural") or from_npu_counter:
                npu_luids.add(inst.luid)
            shares = pid_max.setdefault(inst.luid, {})
            shares[inst.pid] = max(shares.get(inst.pid, 0.0), value)
    usage: dict[str, AdapterUsage] = {luid: AdapterUsage(luid) for luid in known if luid not in skip}
    for (luid, _phys, _eng), total in engine_sum.items():
        u = usage.setdefault(luid, AdapterUsage(luid))
        t = engine_type[(luid, _phys, _eng)]
        u.engines[t] = max(u.engines.get(t, 0.0), round(clamp_percent(total), 1))
    for luid, u in usage.items():
        u.per_pid = {pid: round(clamp_percent(v), 1) for pid, v in pid_max.get(luid, {}).items() if v > 0}
        u.is_npu = (
            known.get(luid, False)
            or luid in npu_luids
            or (luid not in adapters and _is_compute_only(u.engines))
        )
    for name, value in memory_items:
        luid = parse_adapter_instance(name)
        if luid in usage:
            u = usage[luid]
            u.mem_bytes = (u.mem_bytes or 0.0) + value
    return usage


def device_names(usage: Mapping[str, AdapterUsage], adapters: Mapping[str, AdapterInfo]) -> dict[str, str]:
    """LUID -> UI name: "GPU 0 (Intel(R) Arc(TM) Graphics)", "NPU", "GPU 0x0000D1B4" if unnamed."""
    names: dict[str, str] = {}
    npus = sorted(luid for luid, u in usage.items() if u.is_npu)
    for luid, u in sorted(usage.items()):
        info = adapters.get(luid)
        if u.is_npu:
            name = "NPU" if len(npus) == 1 else f"NPU {npus.index(luid)}"
            names[luid] = f"{name} ({info.description})" if info else name
        elif info:
            names[luid] = f"GPU {info.index} ({info.description})"
        else:
            names[luid] = f"GPU {luid.split('_')[-1]}"
    return names


def to_device_samples(
    usage: Mapping[str, AdapterUsage], adapters: Mapping[str, AdapterInfo] | None = None
) -> dict[str, DeviceSample]:
    adapters = adapters or {}
    names = device_names(usage, adapters)
    return {
        names[luid]: DeviceSample(
            util_percent=u.util_percent,
            mem_used_mb=None if u.mem_bytes is None else u.mem_bytes / MB,
            engines=dict(sorted(u.engines.items())),
            per_pid=u.per_pid,
            kind="NPU" if u.is_npu else "GPU",
        )
        for luid, u in usage.items()
    }
