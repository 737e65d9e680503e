"""Windows ML's execution-provider catalog, for the ``onnxruntime-genai-winml`` flavour of ORT GenAI.

Windows ML ships DirectML and the CPU provider with its ONNX Runtime, and downloads the vendors' own
providers on demand through its catalog: OpenVINO (Intel NPU / GPU), QNN (Qualcomm NPU), VitisAI
(AMD NPU), NvTensorRTRTX (NVIDIA RTX). Documented Python path (Windows App SDK 1.8+, the ``winui3``
projection packages ``wasdk-Microsoft.Windows.AI.MachineLearning`` and
``wasdk-Microsoft.Windows.ApplicationModel.DynamicDependency.Bootstrap``):

    with bootstrap.initialize():
        catalog = winml.ExecutionProviderCatalog.get_default()
        for provider in catalog.find_all_providers():
            provider.ensure_ready_async().get()   # downloads / installs when needed
            onnxruntime_genai.register_execution_provider_library(provider.name, provider.library_path)

Probing only lists the catalog (``ready_state``: a provider not yet on the machine is reported, not
downloaded); loading a lane makes its provider ready and registers it. None of this has run on real
Windows ML hardware: it is written against the documented API and says so in the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WINML_MODULE = "winui3.microsoft.windows.ai.machinelearning"
BOOTSTRAP_MODULE = "winui3.microsoft.windows.applicationmodel.dynamicdependency.bootstrap"
INSTALL_HINT = ("Windows ML needs Windows 11 24H2+, the Windows App SDK 1.8 runtime and "
                "pip install wasdk-Microsoft.Windows.AI.MachineLearning[all] "
                "wasdk-Microsoft.Windows.ApplicationModel.DynamicDependency.Bootstrap")


@dataclass(frozen=True)
class CatalogEP:
    """One execution provider the catalog offers, and how ORT GenAI and the page name it."""

    catalog_name: str  # e.g. "OpenVINOExecutionProvider"
    genai_name: str  # what Config.append_provider takes, e.g. "OpenVINO"
    device: str  # the lane's device, e.g. "openvino.npu"
    hardware: str  # "NPU" / "GPU": set as the decoder's hardware_device_type
    note: str  # who should pick it


# The catalog's providers, by the name it reports, and the lanes each gives.
KNOWN: dict[str, list[CatalogEP]] = {
    "OpenVINOExecutionProvider": [
        CatalogEP("OpenVINOExecutionProvider", "OpenVINO", "openvino.npu", "NPU", "Intel NPU (Core Ultra)"),
        CatalogEP("OpenVINOExecutionProvider", "OpenVINO", "openvino.gpu", "GPU", "Intel GPU (iGPU / Arc)"),
    ],
    "QNNExecutionProvider": [
        CatalogEP("QNNExecutionProvider", "QNN", "qnn.npu", "NPU", "Qualcomm Hexagon NPU"),
    ],
    "VitisAIExecutionProvider": [CatalogEP("VitisAIExecutionProvider", "VitisAI", "vitisai.npu", "NPU",
                                           "AMD Ryzen AI NPU")],
    "NvTensorRTRTXExecutionProvider": [CatalogEP("NvTensorRTRTXExecutionProvider", "NvTensorRtRtx",
                                                 "nvtensorrtrtx.gpu", "GPU", "NVIDIA RTX GPU")],
}


@dataclass
class CatalogEntry:
    ep: CatalogEP
    ready_state: str  # "Ready", "NotReady" (on the machine, not registered), "NotPresent" (download)


def lanes_by_device() -> dict[str, CatalogEP]:
    return {ep.device: ep for eps in KNOWN.values() for ep in eps}


_SDK: dict[str, Any] = {}  # the bootstrap stays initialised for the process: registered EPs live in it


def _winml() -> Any:
    """The catalog module, with the Windows App SDK bootstrapped once for this (worker) process."""
    import importlib

    if "winml" not in _SDK:
        bootstrap = importlib.import_module(BOOTSTRAP_MODULE)
        winml = importlib.import_module(WINML_MODULE)
        handle = bootstrap.initialize(options=bootstrap.InitializeOptions.ON_NO_MATCH_SHOW_UI)
        handle.__enter__()
        _SDK.update(winml=winml, handle=handle)
    return _SDK["winml"]


def catalog() -> tuple[list[CatalogEntry], str]:
    """(what the catalog offers here, why nothing when it cannot be read)."""
    try:
        providers = _winml().ExecutionProviderCatalog.get_default().find_all_providers()
        found = []
        for provider in providers:
            state = getattr(provider.ready_state, "name", str(provider.ready_state))
            found += [CatalogEntry(ep, state) for ep in KNOWN.get(provider.name, [])]
        return found, ""
    except ImportError:
        return [], INSTALL_HINT
    except (OSError, RuntimeError, AttributeError) as exc:  # no Windows App SDK runtime, old Windows
        return [], f"the Windows ML catalog could not be read ({type(exc).__name__}: {exc}); {INSTALL_HINT}"


def register(ep: CatalogEP) -> str:
    """Make ``ep`` ready (Windows ML may download it) and register it with ORT GenAI; its library path."""
    import onnxruntime_genai as og

    providers = {p.name: p for p in _winml().ExecutionProviderCatalog.get_default().find_all_providers()}
    provider = providers.get(ep.catalog_name)
    if provider is None:
        raise LookupError(f"Windows ML's catalog offers no {ep.catalog_name} on this machine")
    provider.ensure_ready_async().get()
    path = str(provider.library_path)
    if not path:
        raise LookupError(f"Windows ML made {ep.catalog_name} ready but gave no library path")
    og.register_execution_provider_library(ep.catalog_name, path)
    return path
