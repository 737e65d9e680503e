"""The Windows ML flavour of ORT GenAI: what it offers per catalog provider, and what it says where it
cannot run (every machine but a Windows 11 one with the Windows App SDK; none of this has run there)."""

from __future__ import annotations

import importlib.util

import pytest

from playground.backends import winml_providers
from playground.backends.onnxruntime_genai_backend import (
    FLAVOURS,
    WINML,
    ONNXRuntimeGenAIBackend,
    builder_target,
    winml_devices,
)


def test_every_catalog_provider_has_a_lane_device_the_spec_parser_keeps() -> None:
    devices = winml_providers.lanes_by_device()
    assert set(devices) == {"openvino.npu", "openvino.gpu", "qnn.npu", "vitisai.npu", "nvtensorrtrtx.gpu"}
    for device, ep in devices.items():
        assert ":" not in device and "," not in device  # name:device:precision stays parseable
        assert ep.hardware in ("NPU", "GPU") and ep.catalog_name.endswith("ExecutionProvider")
    assert builder_target(devices["openvino.npu"]) == "cpu"
    assert builder_target(devices["nvtensorrtrtx.gpu"]) == "NvTensorRtRtx"
    assert WINML in FLAVOURS


@pytest.mark.skipif(importlib.util.find_spec(winml_providers.WINML_MODULE.split(".")[0]) is not None,
                    reason="the Windows ML projection is installed here: its catalog is read for real")
def test_without_windows_ml_the_catalog_says_what_to_install() -> None:
    entries, reason = winml_providers.catalog()
    assert entries == [] and "Windows App SDK" in reason
    assert "wasdk-Microsoft.Windows.AI.MachineLearning" in reason
    (device,) = winml_devices()
    assert device.device == "openvino.npu" and not device.available and "Windows ML" in device.note


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime_genai") is None,
                    reason="onnxruntime-genai is not installed")
def test_the_cpu_flavour_offers_no_windows_ml_devices() -> None:
    probe = ONNXRuntimeGenAIBackend.probe()
    if probe.version.startswith(WINML):
        pytest.skip(reason="this environment has the Windows ML flavour")
    assert [d.device for d in probe.devices] == ["cpu", "dml", "cuda"]
