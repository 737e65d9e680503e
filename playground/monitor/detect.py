"""Pick the device readers that work on this machine, and say why the others do not.

Readers are registered as ``ai_pc_playground.monitors`` entry points (ours in ``pyproject.toml``),
so a reader in another installed package is probed like ours (see ``playground.plugins``).
"""

from __future__ import annotations

from playground.monitor.base import ReaderStatus, UtilizationReader
from playground.monitor.nvml import NvmlReader
from playground.monitor.pdh import NVIDIA_VENDOR_ID, PdhReader
from playground.plugins import MONITORS_GROUP, load_classes

# Probe order: NVML first, so PDH can leave the GPUs it covers out; plugins come after, by name.
PREFERRED_ORDER = ("nvml", "npu-sysfs", "drm-fdinfo", "pdh")


def reader_classes() -> tuple[list[type[UtilizationReader]], list[ReaderStatus]]:
    """The registered reader classes in probe order, and a status for each that failed to load."""
    classes, problems = load_classes(MONITORS_GROUP, UtilizationReader)
    rank = {name: index for index, name in enumerate(PREFERRED_ORDER)}
    ordered = sorted(classes, key=lambda name: (rank.get(name, len(rank)), name))
    failed = [ReaderStatus(name, False, f"{name}: not loaded: {why}") for name, why in problems.items()]
    return [classes[name] for name in ordered], failed


def detect_readers() -> tuple[list[UtilizationReader], list[ReaderStatus]]:
    """Probe every reader; a probe that raises is reported, never propagated.

    When NVML covers the NVIDIA GPUs, PDH leaves them out so a GPU is not plotted twice.
    """
    readers: list[UtilizationReader] = []
    classes, statuses = reader_classes()
    nvml_active = False
    for cls in classes:
        try:
            if cls is PdhReader and nvml_active:
                reader, reason = PdhReader.probe(exclude_vendor_ids=frozenset({NVIDIA_VENDOR_ID}))
            else:
                reader, reason = cls.probe()
        except Exception as exc:  # a broken driver must not take the app down
            reader, reason = None, f"{cls.name}: probe failed: {type(exc).__name__}: {exc}"
        statuses.append(ReaderStatus(cls.name, reader is not None, reason))
        if reader is not None:
            readers.append(reader)
            nvml_active = nvml_active or cls is NvmlReader
    return readers, statuses
