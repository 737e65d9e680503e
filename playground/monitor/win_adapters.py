"""Names and vendors of Windows graphics adapters by LUID, via DXGI (ctypes, no extra package).

PDH instance names only carry a LUID; DXGI maps it to "NVIDIA GeForce RTX 4060" etc. DXGI lists
graphics adapters only, so a compute-only adapter missing here is a hint that it is an NPU.
Windows only; any failure yields an empty mapping and the UI falls back to LUID names.
"""

from __future__ import annotations

import ctypes
import sys
import uuid
from ctypes import wintypes
from typing import Any

from playground.monitor.pdh_parse import AdapterInfo, luid_key

_IID_IDXGIFactory1 = "770aae78-f26f-4dba-a829-253c83d1b387"
_DXGI_ADAPTER_FLAG_SOFTWARE = 2
# vtable slots: IUnknown 0-2, IDXGIObject 3-6, IDXGIFactory 7-11, IDXGIFactory1 12-13;
# IDXGIAdapter 7-9, IDXGIAdapter1.GetDesc1 10.
_RELEASE, _ENUM_ADAPTERS1, _GET_DESC1 = 2, 12, 10


class _GUID(ctypes.Structure):
    _fields_ = [("Data1", wintypes.DWORD), ("Data2", wintypes.WORD), ("Data3", wintypes.WORD),
                ("Data4", ctypes.c_ubyte * 8)]  # fmt: skip


class _LUID(ctypes.Structure):
    _fields_ = [("LowPart", wintypes.DWORD), ("HighPart", wintypes.LONG)]


class _DXGI_ADAPTER_DESC1(ctypes.Structure):
    _fields_ = [
        ("Description", ctypes.c_wchar * 128),
        ("VendorId", ctypes.c_uint),
        ("DeviceId", ctypes.c_uint),
        ("SubSysId", ctypes.c_uint),
        ("Revision", ctypes.c_uint),
        ("DedicatedVideoMemory", ctypes.c_size_t),
        ("DedicatedSystemMemory", ctypes.c_size_t),
        ("SharedSystemMemory", ctypes.c_size_t),
        ("AdapterLuid", _LUID),
        ("Flags", ctypes.c_uint),
    ]


def _method(obj: ctypes.c_void_p, slot: int, *argtypes: Any) -> Any:
    vtable = ctypes.cast(obj, ctypes.POINTER(ctypes.POINTER(ctypes.c_void_p)))[0]
    prototype = ctypes.WINFUNCTYPE(ctypes.c_long, ctypes.c_void_p, *argtypes)  # type: ignore[attr-defined]
    return prototype(vtable[slot])


def dxgi_adapters() -> dict[str, AdapterInfo]:
    """LUID key -> AdapterInfo for hardware adapters (the software Basic Render Driver is left out)."""
    if sys.platform != "win32":
        return {}
    try:
        return _enumerate()
    except Exception:  # names are a nicety: never let them cost the GPU graph
        return {}


def _enumerate() -> dict[str, AdapterInfo]:
    dxgi = ctypes.WinDLL("dxgi.dll")  # type: ignore[attr-defined]
    iid = _GUID.from_buffer_copy(uuid.UUID(_IID_IDXGIFactory1).bytes_le)
    factory = ctypes.c_void_p()
    if dxgi.CreateDXGIFactory1(ctypes.byref(iid), ctypes.byref(factory)) != 0 or not factory:
        return {}
    found: dict[str, AdapterInfo] = {}
    try:
        enum = _method(factory, _ENUM_ADAPTERS1, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p))
        for i in range(64):
            adapter = ctypes.c_void_p()
            hr = enum(factory, i, ctypes.byref(adapter))
            if hr != 0:  # DXGI_ERROR_NOT_FOUND past the last adapter
                break
            try:
                desc = _DXGI_ADAPTER_DESC1()
                get_desc = _method(adapter, _GET_DESC1, ctypes.POINTER(_DXGI_ADAPTER_DESC1))
                if (
                    get_desc(adapter, ctypes.byref(desc)) == 0
                    and not desc.Flags & _DXGI_ADAPTER_FLAG_SOFTWARE
                ):
                    key = luid_key(desc.AdapterLuid.HighPart, desc.AdapterLuid.LowPart)
                    found[key] = AdapterInfo(len(found), desc.Description, desc.VendorId)
            finally:
                _method(adapter, _RELEASE)(adapter)
    finally:
        _method(factory, _RELEASE)(factory)
    return found
