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


def latency_config(device: str, precision: str = "") -> dict[str, str]:
    """The guide's ov_config: latency hint, one stream, compiled-blob cache on disk; and, for an
    fp16 IR on the CPU, the compute precision (``fp16_cpu_compute``)."""
    config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
    if device.startswith("CPU") and precision == "fp16":
        config["INFERENCE_PRECISION_HINT"] = fp16_cpu_compute()
    threads = thread_budget()
    if device.startswith("CPU") and threads:  # leave the app and the page their core
        config["INFERENCE_NUM_THREADS"] = str(threads)
    if not device.startswith("CPU"):
        config["CACHE_DIR"] = str(cache_dir("openvino-compiled"))
    return config


def fp16_cpu_compute() -> str:
    """What an fp16 IR computes in on this CPU: f16 where OpenVINO says the CPU has fp16 units
    (``OPTIMIZATION_CAPABILITIES`` lists FP16), else f32. Never OpenVINO's own default on CPUs
    with bf16 units (AMX, AVX512-BF16), bf16: that is not the fp16 asked for, and OpenVINO 2026.4
    crashed (SIGFPE) compiling every fp16 IR at bf16 on this Xeon, SmolLM2's and the demo model's."""
    import openvino as ov

    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "f16" if "FP16" in capabilities else "f32"


def compute_note(config: dict[str, str]) -> str:
    """The device note's words for a compute precision the backend chose."""
    hint = config.get("INFERENCE_PRECISION_HINT")
    return f"fp16 weights, {hint} compute" if hint else ""
