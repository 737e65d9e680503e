"""Device probing and compile options shared by the two OpenVINO-based backends."""

from __future__ import annotations

from playground.backends.base import DeviceProbe, DeviceUnavailableError
from playground.engine.threads import thread_budget
from playground.paths import cache_dir

# Devices an AI PC may expose; the ones missing here are listed with the reason.
EXPECTED_DEVICES = ("CPU", "GPU", "NPU")


def probe_openvino_devices() -> list[DeviceProbe]:
    import openvino as ov

    core = ov.Core()
    found = list(core.available_devices)
    probes = []
    for device in found:
        try:
            full_name = core.get_property(device, "FULL_DEVICE_NAME")
        except Exception:  # some plugins refuse property queries until used
            full_name = ""
        probes.append(DeviceProbe(device, True, str(full_name)))
    for expected in EXPECTED_DEVICES:
        if not any(device.split(".")[0] == expected for device in found):
            probes.append(DeviceProbe(expected, False, _missing_reason(expected)))
    return probes


def _missing_reason(device: str) -> str:
    return {
        "GPU": "no OpenVINO GPU device (needs an Intel GPU and its compute runtime / driver)",
        "NPU": "NPU not present (needs an Intel Core Ultra NPU and its driver)",
    }.get(device, f"{device} not found by OpenVINO")


def require_openvino_device(device: str) -> str:
    import openvino as ov

    device = (device or "CPU").upper()
    available = ov.Core().available_devices
    base_names = {name.split(".")[0] for name in available}
    if device not in available and device not in base_names:
        raise DeviceUnavailableError(
            f"OpenVINO device {device!r} is not present here (found: {', '.join(available)}). "
            + _missing_reason(device.split(".")[0])
        )
    return device


def latency_config(device: str) -> dict[str, str]:
    """The guide's ov_config: latency hint, one stream, compiled-blob cache on disk."""
    config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
    threads = thread_budget()
    if device.startswith("CPU") and threads:  # leave the app and the page their core
        config["INFERENCE_NUM_THREADS"] = str(threads)
    if not device.startswith("CPU"):
        config["CACHE_DIR"] = str(cache_dir("openvino-compiled"))
    return config
