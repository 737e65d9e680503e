"""CPU figures as a share of the whole machine: psutil reports a process's CPU per core (200 % =
two cores busy); the charts and the records compare it with the machine's total (100 % = all)."""

from __future__ import annotations

import os

CORES = os.cpu_count() or 1


def machine_share(per_core_percent: float | None, cores: int = CORES) -> float | None:
    """A per-core CPU percentage (psutil's ``cpu_percent`` of a process) as % of all cores."""
    if per_core_percent is None:
        return None
    return per_core_percent / max(1, cores)
