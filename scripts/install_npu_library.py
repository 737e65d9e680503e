#!/usr/bin/env python3
"""Install the Intel NPU Acceleration Library (backend "npu-library") into a Python environment.

Why a script and not a requirements line: on Linux PyPI only has the library's source, whose
CMake build downloads an OpenVINO 2024.4 archive (impossible offline, and Ubuntu-only), and its
code needs three fixes to work with OpenVINO 2025+. So on Linux this script:

1. downloads the ``intel-npu-acceleration-library==1.4.0`` sdist with pip and unpacks it into
   ``build/npu-library/`` (gitignored);
2. patches it (each patch fails loudly if the expected text is missing):
   - ``src/bindings.cpp`` ``op_dtype``: OpenVINO 2025 dropped ``element::undefined``, shifting every
     ``Type_t`` number by one; map back to the 2024 numbering the Python side expects;
   - ``src/bindings.cpp`` ``setNNFactoryWeights``: join the weight-prefetch thread before reassigning
     it (reassigning a joinable ``std::thread`` calls ``std::terminate``);
   - ``backend/runtime.py``: put the weight dtype in the op cache key (int8 / int4 layers of the
     same shape collided and crashed);
3. builds a "toolkit-shaped" folder that points at the pip ``openvino`` wheel of the target Python
   plus a CMake toolchain file (read through ``CMAKE_TOOLCHAIN_FILE``) that makes FetchContent use
   it, then ``pip install --no-build-isolation --no-deps`` the patched source;
4. installs the runtime deps: ``neural-compressor==3.7.1 --no-deps`` (3.8+ lacks
   ``neural_compressor.adaptor``; every usable release pins ``numpy<2`` but runs on numpy 2) and
   ``requirements-npu.txt``;
5. smoke-tests a tiny Linear layer through the library and writes a stamp next to the installed
   package, so the next run does nothing.

On Windows PyPI has a wheel (bundling its own OpenVINO 2024.4, so no fixes are needed): the script
installs it with ``--no-deps`` plus the same runtime deps.

The library builds with ``-march=native``: build on the machine that runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LIB_NAME = "intel-npu-acceleration-library"
LIB_VERSION = "1.4.0"
NEURAL_COMPRESSOR = "neural-compressor==3.7.1"
REQUIREMENTS = REPO_ROOT / "requirements-npu.txt"
PATCH_LEVEL = 2  # bump when the patches change: forces a rebuild everywhere
STAMP_NAME = "_playground_install.json"
BUNDLED_LIBS = (
    "libopenvino.so", "libopenvino_intel_cpu_plugin", "libopenvino_intel_npu_plugin", "libopenvino_auto",
    "libopenvino_hetero_plugin", "libopenvino_ir_frontend", "libtbb", "libhwloc",
)

SMOKE_TEST = r"""
import json, os, sys, tempfile
import openvino  # first: the library then binds to the pip OpenVINO already loaded
import torch
os.chdir(tempfile.mkdtemp(prefix="npu-library-smoke-"))  # the library writes ./cache
import intel_npu_acceleration_library as lib
from intel_npu_acceleration_library.compiler import CompilerConfig
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(64, 32)).eval()
x = torch.rand(4, 64)
with torch.no_grad():
    ref = model(x)
    out = lib.compile(model, CompilerConfig(dtype=torch.float16))(x)
err = float((out.float() - ref).abs().max())
assert err < 0.05, f"fp16 Linear differs from torch by {err}"
print(json.dumps({"version": lib.__version__, "max_abs_err": err, "package": os.path.dirname(lib.__file__)}))
"""


def log(message: str) -> None:
    print(f"[install_npu_library] {message}", flush=True)


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    log("$ " + " ".join(str(part) for part in cmd))
    return subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def query(python: str, code: str) -> str:
    """Run ``code`` in the target interpreter (it may be another venv than this script's)."""
    return subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def expected_stamp(python: str) -> dict:
    openvino_version = "" if sys.platform == "win32" else dist_version(python, "openvino")
    return {"library": LIB_VERSION, "patch_level": PATCH_LEVEL, "openvino": openvino_version}


def dist_version(python: str, dist: str) -> str:
    code = (
        "import importlib.metadata as m\n"
        f"try: print(m.version({dist!r}))\n"
        "except m.PackageNotFoundError: print('')"
    )
    return query(python, code)


def package_dir(python: str) -> Path | None:
    """Where the library is installed, found without importing it (importing takes ~5 s)."""
    code = (
        "import importlib.util\n"
        "s = importlib.util.find_spec('intel_npu_acceleration_library')\n"
        "print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')"
    )
    found = query(python, code)
    return Path(found) if found else None


def already_installed(python: str) -> bool:
    """True when our patched build, for this OpenVINO, and its runtime deps are all in place."""
    where = package_dir(python)
    if where is None or dist_version(python, LIB_NAME) != LIB_VERSION:
        return False
    stamp = where / STAMP_NAME
    try:
        found = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    if {k: found.get(k) for k in ("library", "patch_level", "openvino")} != expected_stamp(python):
        return False
    return dist_version(python, "neural-compressor") == NEURAL_COMPRESSOR.split("==")[1]


def replace_once(path: Path, old: str, new: str, why: str) -> None:
    """Source patch by exact text: refuses to guess if upstream text is not what we expect."""
    text = path.read_text(encoding="utf-8")
    count = text.count(old)
    if count != 1:
        raise SystemExit(f"patch '{why}' failed: expected text found {count} times in {path}")
    path.write_text(text.replace(old, new), encoding="utf-8")
    log(f"patched {path.name}: {why}")


def patch_sources(src: Path) -> None:
    bindings = src / "src" / "bindings.cpp"
    replace_once(
        bindings,
        "    auto dtype = static_cast<ov::element::Type_t>(in0->get_output_element_type(0));\n"
        "    return static_cast<size_t>(dtype);\n",
        "    auto dtype = static_cast<ov::element::Type_t>(in0->get_output_element_type(0));\n"
        "#if OPENVINO_VERSION_MAJOR >= 2025\n"
        "    // ai-pc-playground fix: OpenVINO 2025 removed element::undefined (Type_t 0), the Python\n"
        "    // side decodes the OpenVINO 2024 numbering.\n"
        "    return static_cast<size_t>(dtype) + 1;\n"
        "#else\n"
        "    return static_cast<size_t>(dtype);\n"
        "#endif\n",
        "Type_t numbering of OpenVINO 2025+",
    )
    replace_once(
        bindings,
        "    mm->wt_thread = std::thread(",
        "    // ai-pc-playground fix: assigning to a joinable std::thread calls std::terminate.\n"
        "    if (mm->wt_thread.joinable()) {\n"
        "        mm->wt_thread.join();\n"
        "    }\n"
        "    mm->wt_thread = std::thread(",
        "join the weight-prefetch thread before reusing it",
    )
    replace_once(
        src / "intel_npu_acceleration_library" / "backend" / "runtime.py",
        'key = f"{str(op_class_name)}_{batch}_{inC}_x_{outC}_{inC}_{x_np.dtype}"',
        'key = f"{str(op_class_name)}_{batch}_{inC}_x_{outC}_{inC}_{x_np.dtype}_{weights.dtype}"',
        "weight dtype in the op cache key",
    )


def make_toolkit(python: str, build: Path) -> Path:
    """A folder shaped like the OpenVINO archive CMakeLists expects, backed by the pip wheel.

    The wheel's OpenVINOConfig.cmake computes paths from its own location, so it is included,
    not copied.
    """
    wheel = Path(query(python, "import importlib.util, os; "
                               "print(os.path.dirname(importlib.util.find_spec('openvino').origin))"))
    config_dir = wheel / "cmake"
    libs = wheel / "libs"
    if not (config_dir / "OpenVINOConfig.cmake").is_file() or not libs.is_dir():
        raise SystemExit(f"the openvino wheel at {wheel} has no cmake/ config or libs/: reinstall openvino")
    toolkit = build / "openvino-toolkit"
    shutil.rmtree(toolkit, ignore_errors=True)
    cmake_dir = toolkit / "runtime" / "cmake"
    lib_dir = toolkit / "runtime" / "lib" / "intel64"
    cmake_dir.mkdir(parents=True)
    lib_dir.mkdir(parents=True)
    for name in ("OpenVINOConfig.cmake", "OpenVINOConfig-version.cmake"):
        (cmake_dir / name).write_text(f'include("{(config_dir / name).as_posix()}")\n')
    core = None
    for lib in sorted(libs.iterdir()):
        # Everything CMakeLists copies from here is bundled into the installed package (~110 MB):
        # keep the core, TBB and the CPU / NPU plugins, skip the GPU plugin and model frontends.
        if ".so" in lib.name and lib.name.startswith(BUNDLED_LIBS):
            (lib_dir / lib.name).symlink_to(lib)
            if lib.name.startswith("libopenvino.so."):
                core = lib
    if core is None:
        raise SystemExit(f"no libopenvino.so.* in {libs}")
    (lib_dir / "libopenvino.so").symlink_to(core)  # bindings.py loads this exact name
    return toolkit


def build_and_install(python: str, build: Path) -> None:
    dist = build / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    sdist = dist / f"intel_npu_acceleration_library-{LIB_VERSION}.tar.gz"
    if not sdist.is_file():
        run([python, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
             f"{LIB_NAME}=={LIB_VERSION}", "-d", str(dist)])
    src = build / f"intel_npu_acceleration_library-{LIB_VERSION}"
    shutil.rmtree(src, ignore_errors=True)  # always patch a pristine copy; no stale CMakeCache
    with tarfile.open(sdist) as archive:
        archive.extractall(build, filter="data")
    patch_sources(src)
    toolkit = make_toolkit(python, build)
    toolchain = build / "toolchain.cmake"
    toolchain.write_text(
        "# Written by scripts/install_npu_library.py: build against the pip openvino wheel, no download.\n"
        f'set(FETCHCONTENT_SOURCE_DIR_OPENVINO "{toolkit.as_posix()}")\n'
        f'set(OV_LIBRARY_URL "file://{toolkit.as_posix()}")  # any value: skips the Ubuntu-only URL logic\n'
    )
    env = dict(os.environ, CMAKE_TOOLCHAIN_FILE=str(toolchain))
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    run([python, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--force-reinstall",
         str(src)], env=env)


def install_runtime_deps(python: str) -> None:
    # setuptools<82 first: the build (no isolation) and neural-compressor's pkg_resources need it.
    run([python, "-m", "pip", "install", "-r", str(REQUIREMENTS)])
    run([python, "-m", "pip", "install", "--no-deps", NEURAL_COMPRESSOR])


def smoke_test(python: str) -> dict:
    out = subprocess.run([python, "-c", SMOKE_TEST], check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    log(f"smoke test passed: version {result['version']}, fp16 Linear max |err| {result['max_abs_err']:.4f}")
    return result


def with_lock(build: Path):
    """Two installs at once would share one build folder; the second waits (POSIX only)."""
    import fcntl

    build.mkdir(parents=True, exist_ok=True)
    handle = open(build / ".lock", "w")  # noqa: SIM115 - held until the process exits
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter of the environment to install into (default: this one)")
    parser.add_argument("--build-dir", type=Path, default=REPO_ROOT / "build" / "npu-library")
    parser.add_argument("--force", action="store_true", help="rebuild and reinstall even if installed")
    args = parser.parse_args(argv)
    python = args.python
    started = time.monotonic()

    if sys.platform == "win32":
        if not args.force and dist_version(python, LIB_NAME) == LIB_VERSION and \
                dist_version(python, "neural-compressor") == NEURAL_COMPRESSOR.split("==")[1]:
            log(f"{LIB_NAME} {LIB_VERSION} already installed: nothing to do")
            return 0
        run([python, "-m", "pip", "install", "--no-deps", f"{LIB_NAME}=={LIB_VERSION}"])
        install_runtime_deps(python)
        smoke_test(python)
        return 0
    if not sys.platform.startswith("linux"):
        raise SystemExit(f"{LIB_NAME} supports Windows and Linux only, not {sys.platform}")

    lock = with_lock(args.build_dir.resolve())
    if not args.force and already_installed(python):
        log(f"patched {LIB_NAME} {LIB_VERSION} already installed for {python}: nothing to do")
        return 0
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install it (Debian/Ubuntu: apt-get install cmake g++)")
    install_runtime_deps(python)  # first: setuptools<82 is also the build backend here
    build_and_install(python, args.build_dir.resolve())
    result = smoke_test(python)
    stamp = dict(expected_stamp(python), built_at=time.strftime("%Y-%m-%d"))
    Path(result["package"], STAMP_NAME).write_text(json.dumps(stamp, indent=1) + "\n")
    log(f"done in {time.monotonic() - started:.0f} s")
    lock.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as error:
        stderr = getattr(error, "stderr", None)
        if stderr:
            sys.stderr.write(stderr if isinstance(stderr, str) else stderr.decode(errors="replace"))
        command = " ".join(map(str, error.cmd))[:300]
        sys.exit(f"[install_npu_library] failed: {command} (exit {error.returncode})")
