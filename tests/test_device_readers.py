"""Device readers' arithmetic on recorded inputs (fake sysfs / procfs trees, PDH values)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from playground.monitor import DeviceSample, detect_readers
from playground.monitor.drm_fdinfo import DrmFdinfoReader, intel_gpus, parse_fdinfo
from playground.monitor.npu_sysfs import NpuSysfsReader
from playground.monitor.nvml import NvmlReader
from playground.monitor.pdh import PdhReader
from playground.monitor.pdh_parse import (
    AdapterInfo,
    aggregate_engines,
    parse_engine_instance,
    to_device_samples,
)

FIXTURES = Path(__file__).parent / "fixtures"
MB = 1024 * 1024
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="sysfs/procfs readers are Linux only")


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- Intel NPU: /sys/class/accel/accel*/device/npu_busy_time_us -------------------------------------


def _npu_dir(sys_root: Path, accel: str = "accel0") -> Path:
    d = sys_root / "class" / "accel" / accel / "device"
    d.mkdir(parents=True)
    return d


@linux_only
def test_npu_utilization_is_busy_delta_over_wall_delta(tmp_path: Path) -> None:
    dev = _npu_dir(tmp_path)
    (dev / "npu_busy_time_us").write_text("1000000\n")
    (dev / "npu_memory_utilization").write_text(f"{256 * MB}\n")
    clock = FakeClock(10.0)
    reader, reason = NpuSysfsReader.probe(sys_root=tmp_path, clock=clock)
    assert reader is not None, reason

    (dev / "npu_busy_time_us").write_text("1500000\n")  # +0.5 s busy ...
    clock.t = 11.0  # ... in 1 s of wall time
    [(name, s)] = reader.read().items()
    assert name == "NPU" and s.kind == "NPU"
    assert s.util_percent == 50.0
    assert s.mem_used_mb == 256.0

    (dev / "npu_busy_time_us").write_text("3500000\n")  # 2 s busy in 1 s: read skew, clamped
    clock.t = 12.0
    assert reader.read()["NPU"].util_percent == 100.0

    (dev / "npu_busy_time_us").write_text("10\n")  # counter reset (driver reload): no bogus value
    clock.t = 13.0
    assert reader.read()["NPU"].util_percent is None
    (dev / "npu_busy_time_us").write_text("250010\n")
    clock.t = 14.0
    assert reader.read()["NPU"].util_percent == 25.0


@linux_only
def test_npu_reads_are_throttled_to_the_driver_recommended_1hz(tmp_path: Path) -> None:
    dev = _npu_dir(tmp_path)
    (dev / "npu_busy_time_us").write_text("0\n")
    clock = FakeClock(0.0)
    reader, _ = NpuSysfsReader.probe(sys_root=tmp_path, clock=clock)
    assert reader is not None
    clock.t = 1.0
    (dev / "npu_busy_time_us").write_text("200000\n")
    assert reader.sample()["NPU"].util_percent == 20.0
    (dev / "npu_busy_time_us").write_text("900000\n")
    clock.t = 1.5  # too soon: the last value is served again, the file is not read
    assert reader.sample()["NPU"].util_percent == 20.0
    clock.t = 2.0
    assert reader.sample()["NPU"].util_percent == 70.0
    assert reader.sample()["NPU"].mem_used_mb is None  # older kernels: no npu_memory_utilization


@linux_only
def test_npu_several_devices_and_absent(tmp_path: Path) -> None:
    reader, reason = NpuSysfsReader.probe(sys_root=tmp_path)
    assert reader is None and "NPU" in reason
    for accel in ("accel0", "accel1"):
        (_npu_dir(tmp_path, accel) / "npu_busy_time_us").write_text("0\n")
    reader, _ = NpuSysfsReader.probe(sys_root=tmp_path, clock=FakeClock())
    assert reader is not None
    assert sorted(reader.read()) == ["NPU accel0", "NPU accel1"]


# -- Intel GPU: DRM fdinfo (i915 and xe) -------------------------------------------------------------


class FakeProc:
    """A /proc tree: /proc/<pid>/fd/<fd> -> /dev/dri/renderD128 and /proc/<pid>/fdinfo/<fd>."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "self").symlink_to("1")  # non-numeric entries are skipped

    def open_fd(self, pid: int, fd: int, fixture: str, target: str = "/dev/dri/renderD128") -> None:
        (self.root / str(pid) / "fd").mkdir(parents=True, exist_ok=True)
        (self.root / str(pid) / "fdinfo").mkdir(parents=True, exist_ok=True)
        link = self.root / str(pid) / "fd" / str(fd)
        if not link.is_symlink():
            link.symlink_to(target)  # dangling is fine: only readlink() is used
        shutil.copy(FIXTURES / "fdinfo" / fixture, self.root / str(pid) / "fdinfo" / str(fd))

    def close_fd(self, pid: int, fd: int) -> None:
        (self.root / str(pid) / "fd" / str(fd)).unlink()
        (self.root / str(pid) / "fdinfo" / str(fd)).unlink()


def _populate(proc: FakeProc, t: str) -> None:
    proc.open_fd(100, 5, f"i915-client7.{t}")
    proc.open_fd(100, 6, f"i915-client7.{t}")  # dup()'ed fd: same client, counted once
    proc.open_fd(300, 9, f"i915-client7.{t}")  # inherited by a child: still counted once
    proc.open_fd(200, 3, f"i915-client9.{t}")
    proc.open_fd(200, 4, "not-drm", target="/tmp/some-file")
    proc.open_fd(400, 7, f"xe-client3.{t}", target="/dev/dri/renderD129")
    proc.open_fd(401, 7, f"xe-client4.{t}", target="/dev/dri/renderD129")


def test_parse_fdinfo_units_and_keys() -> None:
    c = parse_fdinfo((FIXTURES / "fdinfo" / "i915-client7.t0").read_text())
    assert c is not None and c.key == ("i915", "0000:00:02.0", "7")
    assert c.engine_ns["render"] == 9288864723 and c.capacity == {"video": 2}
    assert c.resident_bytes == 196 * MB
    x = parse_fdinfo((FIXTURES / "fdinfo" / "xe-client3.t0").read_text())
    assert x is not None and x.cycles["rcs"] == 28257900 and x.total_cycles["ccs"] == 7655183225
    assert x.capacity == {"vcs": 2, "vecs": 2, "ccs": 4} and not x.engine_ns
    assert x.resident_bytes == (192 + 23992) * 1024
    assert parse_fdinfo((FIXTURES / "fdinfo" / "not-drm").read_text()) is None


@linux_only
def test_drm_fdinfo_i915_and_xe_deltas(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path / "proc")
    _populate(proc, "t0")
    clock = FakeClock(50.0)
    reader = DrmFdinfoReader(proc.root, clock=clock, rescan_s=0.0)  # baseline read
    _populate(proc, "t1")
    clock.t = 50.5  # i915 counters are ns of busy time: the wall clock matters
    devices = reader.read()

    i915 = devices["Intel GPU (i915 0000:00:02.0)"]
    # render: client 7 +250 ms, client 9 +100 ms in 500 ms -> 50 % + 20 %
    # video: client 9 +500 ms on 2 engines in 500 ms -> 50 %; compute: client 7 +100 ms -> 20 %
    assert i915.engines == {"compute": 20.0, "copy": 0.0, "render": 70.0, "video": 50.0, "video-enhance": 0.0}
    assert i915.util_percent == 70.0
    assert i915.per_pid == {100: 50.0, 200: 50.0}  # busiest engine of each client's process
    assert i915.mem_used_mb == 196 + 80

    xe = devices["Intel GPU (xe 0000:03:00.0)"]
    # rcs: +3e6 and +1e6 cycles over +1e7 total cycles each -> 30 % + 10 %
    # ccs: +2e7 cycles over +1e7 on 4 engines -> 50 %; engine names shown with i915's words
    assert xe.engines["render"] == 40.0 and xe.engines["compute"] == 50.0
    assert xe.util_percent == 50.0
    assert xe.per_pid == {400: 50.0, 401: 10.0}
    assert xe.mem_used_mb == pytest.approx((192 + 23992 + 8 * 1024) / 1024)

    # A client first seen now only sets its baseline; a closed fd just disappears.
    proc.open_fd(500, 3, "i915-client9.t1")  # large counters, but under a new client id:
    fdinfo = proc.root / "500" / "fdinfo" / "3"
    fdinfo.write_text(fdinfo.read_text().replace("drm-client-id:\t9", "drm-client-id:\t11"))
    for pid, fd in ((100, 5), (100, 6), (300, 9)):
        proc.close_fd(pid, fd)
    clock.t = 51.0
    devices = reader.read()
    assert devices["Intel GPU (i915 0000:00:02.0)"].util_percent == 0.0  # nothing advanced
    assert 500 not in devices["Intel GPU (i915 0000:00:02.0)"].per_pid


@linux_only
def test_drm_fdinfo_full_scan_only_every_rescan_s(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path / "proc")
    proc.open_fd(200, 3, "i915-client9.t0")
    clock = FakeClock(0.0)
    reader = DrmFdinfoReader(proc.root, clock=clock, rescan_s=2.0)
    proc.open_fd(100, 5, "i915-client7.t0")  # opened after the scan
    proc.open_fd(200, 3, "i915-client9.t1")
    clock.t = 0.5
    dev = reader.read()["Intel GPU (i915 0000:00:02.0)"]
    assert dev.engines["render"] == 20.0 and dev.mem_used_mb == 80  # known fd re-read, new one not yet
    clock.t = 2.5
    reader.read()
    proc.open_fd(100, 5, "i915-client7.t1")
    clock.t = 3.0
    assert reader.read()["Intel GPU (i915 0000:00:02.0)"].engines["render"] == 50.0  # found by the rescan


@linux_only
def test_intel_gpu_probe_from_sysfs(tmp_path: Path) -> None:
    sys_root = tmp_path / "sys"
    pci = sys_root / "devices" / "pci0000:00" / "0000:00:02.0"
    pci.mkdir(parents=True)
    (sys_root / "bus" / "pci" / "drivers" / "i915").mkdir(parents=True)
    (pci / "driver").symlink_to(sys_root / "bus" / "pci" / "drivers" / "i915")
    drm = sys_root / "class" / "drm"
    drm.mkdir(parents=True)
    (drm / "card0").mkdir()
    (drm / "card0" / "device").symlink_to(pci)
    (drm / "card0-eDP-1").mkdir()  # connector, ignored
    assert intel_gpus(sys_root) == {"0000:00:02.0": "i915"}

    proc = FakeProc(tmp_path / "proc")
    reader, reason = DrmFdinfoReader.probe(sys_root=sys_root, proc_root=proc.root, clock=FakeClock())
    assert reader is not None, reason
    # An idle known GPU is reported at 0 % rather than missing from the plot.
    assert reader.read() == {"Intel GPU (i915 0000:00:02.0)": DeviceSample(0.0, 0.0)}
    reader2, reason2 = DrmFdinfoReader.probe(sys_root=tmp_path / "empty", proc_root=proc.root)
    assert reader2 is None and "i915" in reason2


# -- Windows PDH: \GPU Engine(*)\Utilization Percentage ---------------------------------------------


@pytest.fixture
def pdh_capture() -> dict:
    data = json.loads((FIXTURES / "pdh_gpu_engine.json").read_text())
    data["adapter_info"] = {
        a["luid"]: AdapterInfo(a["index"], a["description"], a["vendor_id"]) for a in data["adapters"]
    }
    return data


def test_pdh_instance_names() -> None:
    inst = parse_engine_instance("pid_1234_luid_0x00000000_0x0000d1b4_phys_0_eng_3_engtype_Compute_0")
    assert inst is not None
    assert (inst.pid, inst.luid, inst.phys, inst.eng, inst.engtype) == (
        1234, "0x00000000_0x0000D1B4", 0, 3, "Compute_0"
    )  # fmt: skip
    assert parse_engine_instance("_Total") is None


def test_pdh_aggregation_per_adapter(pdh_capture: dict) -> None:
    memory = pdh_capture["adapter_memory_dedicated"] + pdh_capture["adapter_memory_shared"]
    usage = aggregate_engines(
        pdh_capture["gpu_engine"], memory_items=memory, adapters=pdh_capture["adapter_info"]
    )
    devices = to_device_samples(usage, pdh_capture["adapter_info"])
    assert sorted(devices) == [
        "GPU 0 (Intel(R) Arc(TM) Graphics)",
        "GPU 1 (NVIDIA GeForce RTX 4060 Laptop GPU)",
        "NPU",
    ]

    igpu = devices["GPU 0 (Intel(R) Arc(TM) Graphics)"]
    # per engine: sum over processes; per type: busiest engine; adapter: busiest type
    assert igpu.engines == {
        "3D": 12.0,
        "Compute": 62.5,
        "Copy": 3.5,
        "VideoDecode": 12.0,
        "VideoProcessing": 0.0,
    }
    assert igpu.util_percent == 62.5 and igpu.kind == "GPU"
    assert igpu.per_pid == {4242: 62.5, 1337: 4.5, 8888: 12.0}  # a worker's share: its busiest engine
    assert igpu.mem_used_mb == 128 + 1024  # dedicated + shared, Task Manager's "GPU memory"

    npu = devices["NPU"]  # compute-only adapter that DXGI does not list
    assert npu.kind == "NPU" and npu.util_percent == 35.0 and npu.per_pid == {4343: 35.0}
    assert npu.mem_used_mb == 256

    dgpu = devices["GPU 1 (NVIDIA GeForce RTX 4060 Laptop GPU)"]
    assert dgpu.engines["Copy"] == 30.0  # two Copy engines at 30 and 25: the busiest, not the sum
    assert dgpu.engines["Compute_0"] == 100.0  # 80 + 30 on one engine: clamped
    assert dgpu.util_percent == 100.0 and dgpu.per_pid == {5000: 80.0, 5001: 30.0}


def test_pdh_skip_nvidia_and_no_adapter_names(pdh_capture: dict) -> None:
    usage = aggregate_engines(pdh_capture["gpu_engine"], skip_luids={"0x00000000_0x0000E2F1"})
    devices = to_device_samples(usage)
    assert sorted(devices) == ["GPU 0x0000D1B4", "NPU"]  # NVML covers the NVIDIA GPU
    assert devices["NPU"].util_percent == 35.0


def test_pdh_npu_engine_counter_and_idle_adapters_keep_their_name(pdh_capture: dict) -> None:
    npu_items = [(n, v) for n, v in pdh_capture["gpu_engine"] if "0x0001A2C3" in n]
    gpu_items = [(n, v) for n, v in pdh_capture["gpu_engine"] if "0x0001A2C3" not in n]
    adapters = {**pdh_capture["adapter_info"], "0x00000000_0x0001A2C3": AdapterInfo(2, "Intel(R) AI Boost")}
    usage = aggregate_engines(gpu_items, npu_items, adapters=adapters)
    assert usage["0x00000000_0x0001A2C3"].is_npu  # from \NPU Engine(*), even though DXGI-named
    known = {luid: u.is_npu for luid, u in usage.items()}
    idle = to_device_samples(aggregate_engines([], known=known), adapters)  # no process has a context
    assert idle["NPU (Intel(R) AI Boost)"] == DeviceSample(0.0, None, {}, {}, "NPU")
    assert idle["GPU 0 (Intel(R) Arc(TM) Graphics)"].util_percent == 0.0


# -- NVML --------------------------------------------------------------------------------------------


def _fake_nvml(init_error: type[Exception] | None = None) -> SimpleNamespace:
    class NVMLError(Exception):
        pass

    class NVMLError_LibraryNotFound(NVMLError):  # pynvml's names
        pass

    class NVMLError_DriverNotLoaded(NVMLError):
        pass

    class NVMLError_NotFound(NVMLError):
        pass

    errors = {"lib": NVMLError_LibraryNotFound, "driver": NVMLError_DriverNotLoaded}

    def init() -> None:
        if init_error is not None:
            raise errors[init_error]()  # type: ignore[index]

    def process_util(handle: int, last_seen: int) -> list:
        if handle == 1:
            raise NVMLError_NotFound()
        return [
            SimpleNamespace(pid=77, timeStamp=last_seen + 10, smUtil=40),
            SimpleNamespace(pid=77, timeStamp=last_seen + 20, smUtil=55),
            SimpleNamespace(pid=78, timeStamp=last_seen + 5, smUtil=3),
        ]

    return SimpleNamespace(
        NVMLError=NVMLError,
        NVMLError_LibraryNotFound=NVMLError_LibraryNotFound,
        NVMLError_DriverNotLoaded=NVMLError_DriverNotLoaded,
        nvmlInit=init,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: [b"NVIDIA GeForce RTX 4090", "NVIDIA A2"][h],
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=[97, 0][h], memory=50),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=[20480 * MB, 0][h], total=24576 * MB),
        nvmlDeviceGetProcessUtilization=process_util,
    )


def test_nvml_reader_maps_gpus_and_process_shares() -> None:
    reader, reason = NvmlReader.probe(nvml=_fake_nvml())
    assert reader is not None and "RTX 4090" in reason
    devices = reader.read()
    assert devices["GPU 0 (NVIDIA GeForce RTX 4090)"] == DeviceSample(
        97.0, 20480.0, per_pid={77: 55.0, 78: 3.0}
    )
    assert devices["GPU 1 (NVIDIA A2)"] == DeviceSample(0.0, 0.0)


@pytest.mark.parametrize("error", ["lib", "driver"])
def test_nvml_absent_driver_reason(error: str) -> None:
    reader, reason = NvmlReader.probe(nvml=_fake_nvml(init_error=error))
    assert reader is None and reason == "NVML: no NVIDIA driver"


# -- this machine ------------------------------------------------------------------------------------


def test_detect_readers_on_this_machine_reports_reasons() -> None:
    readers, statuses = detect_readers()
    by_name = {s.name: s for s in statuses}
    assert set(by_name) == {"NVIDIA (NVML)", "NPU (sysfs)", "Intel GPU (DRM fdinfo)", "Windows GPU/NPU (PDH)"}
    assert all(s.reason for s in statuses)
    assert len(readers) == sum(s.active for s in statuses)
    if os.environ.get("CI") or not Path("/dev/dri").exists():  # the dev/CI box: no GPU, no NPU
        assert not by_name["Intel GPU (DRM fdinfo)"].active
    if not Path("/proc/driver/nvidia").exists():
        assert by_name["NVIDIA (NVML)"].reason == "NVML: no NVIDIA driver"
    if not list(Path("/sys/class/accel").glob("accel*/device/npu_busy_time_us")):
        assert not by_name["NPU (sysfs)"].active
    if sys.platform != "win32":
        assert by_name["Windows GPU/NPU (PDH)"].reason == "PDH: Windows only"
        assert PdhReader.probe() == (None, "PDH: Windows only")
    for reader in readers:
        reader.close()
