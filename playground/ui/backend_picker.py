"""Turn the start-up probe into the page's backend choices, and the choices back into specs.

Backends and devices that cannot run here stay on the page with the reason, so nobody
wonders where the NPU went.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from playground.backends.base import BackendProbe
from playground.engine.records import BackendSpec, parse_backend_specs


@dataclass
class BackendRow:
    """One backend's line in the picker: can it run, on what, at which precision."""

    name: str
    label: str
    usable: bool
    note: str  # version, or why it cannot run here and how to fix it
    device_choices: list[tuple[str, str]] = field(default_factory=list)  # (shown, value)
    available_devices: list[str] = field(default_factory=list)
    precisions: list[str] = field(default_factory=list)
    device: str = ""
    precision: str = ""
    selected: bool = False

    def spec(self, device: str | None, precision: str | None) -> BackendSpec:
        return BackendSpec(self.name, device or "", precision or "")


def device_label(device: str, available: bool) -> str:
    return device if available else f"{device} (unavailable)"


def build_rows(probes: dict[str, BackendProbe], preselect: tuple[str, ...] = (),
               max_selected: int | None = None) -> list[BackendRow]:
    """``preselect`` holds ``name[:device[:precision]]`` specs; empty = every usable backend, up to
    ``max_selected`` of them in panel order (the lane limit: a default selection the page would
    refuse to run is no default; configured endpoints come after the local runtimes)."""
    wanted = {spec.backend: spec for spec in parse_backend_specs(preselect)}
    rows = []
    for name, probe in probes.items():
        if not probe.installed:
            note = f"not installed: {probe.reason}" if probe.reason else "not installed"
        elif not probe.usable:
            reasons = "; ".join(f"{d.device}: {d.note}" for d in probe.devices if d.note)
            note = f"no usable device here ({reasons})" if reasons else "no usable device here"
        else:
            notes = [f"**{d.device}**{'' if d.available else ' ✗'}: {d.note}"
                     for d in probe.devices if d.note]
            note = "  \n".join([probe.version, *notes])
        row = BackendRow(
            name=name,
            label=probe.label or name,
            usable=probe.usable,
            note=note,
            device_choices=[(device_label(d.device, d.available), d.device) for d in probe.devices],
            available_devices=[d.device for d in probe.devices if d.available],
            precisions=list(probe.precisions),
            device=probe.default_device() or (probe.devices[0].device if probe.devices else ""),
            precision=probe.default_precision or (probe.precisions[0] if probe.precisions else ""),
        )
        spec = wanted.get(name)
        if spec is not None:
            row.selected = probe.installed
            row.device = spec.device or row.device
            row.precision = spec.precision or row.precision
        else:
            room = max_selected is None or sum(r.selected for r in rows) < max_selected
            row.selected = row.usable and not wanted and room
        rows.append(row)
    return rows


def specs_from_inputs(rows: list[BackendRow], values: list) -> list[BackendSpec]:
    """``values`` is (selected, device, precision) per row, flattened as the page sends them."""
    specs = []
    for index, row in enumerate(rows):
        selected, device, precision = values[3 * index: 3 * index + 3]
        if selected:
            specs.append(row.spec(device, precision))
    return specs
