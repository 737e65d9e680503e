#!/usr/bin/env python3
"""Build and install llama-cpp-python (backend "llama.cpp") and llama.cpp's HF -> GGUF converter.

Why a script and not a requirements line: llama-cpp-python 0.3.36 is a source package on the
registry; it vendors llama.cpp and compiles it with CMake (several minutes on 2 cores), and the
build decides which hardware it can use (CMAKE_ARGS). So this script:

1. checks for CMake and a C/C++ compiler, and says how to get them when missing;
2. builds a wheel with ``pip wheel`` into a folder of the playground's cache keyed by the version and
   CMAKE_ARGS (default: a CPU build for this machine's SIMD features, ``-DGGML_NATIVE=ON``, on x86 without
   AMX: its kernels crashed every multi-token prefill on our AMX VM, and AI PC CPUs have none), with
   ``CMAKE_BUILD_PARALLEL_LEVEL`` = the CPU count unless set; a second run, or a fresh venv on the same
   machine, installs that wheel in seconds (pip's own wheel cache is not used: its key does not know
   CMAKE_ARGS, so it would hand a CPU build to a GPU request);
3. installs it with ``--no-deps`` and ``requirements-llama-cpp.txt`` (its deps and the ``[server]``
   extra, pinned);
4. copies the converter llama.cpp ships in the source package (``convert_hf_to_gguf.py``, its
   ``conversion`` package and ``gguf-py``) to ``build/llama-cpp/converter``;
5. smoke-tests the import and writes a stamp there, so the next run does nothing.

GPU builds (see the README): ``CMAKE_ARGS="-DGGML_VULKAN=on" python scripts/install_llama_cpp.py --force``
(or -DGGML_SYCL=on with the oneAPI compilers, -DGGML_CUDA=on, -DGGML_METAL=on on macOS).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from install_tools import dist_version, logger, runner  # scripts/ is this script's import path

REPO_ROOT = Path(__file__).resolve().parent.parent
DIST = "llama-cpp-python"
VERSION = "0.3.36"
REQUIREMENTS = REPO_ROOT / "requirements-llama-cpp.txt"
BUILD_DIR = REPO_ROOT / "build" / "llama-cpp"
CONVERTER_DIR = BUILD_DIR / "converter"
CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion", "gguf-py")
STAMP = "_playground_install.json"
EXIT_NO_COMPILER = 3


log = logger("install_llama_cpp")
run = runner(log)


def default_cmake_args() -> str:
    """A native CPU build; on x86 (gcc / clang) without AMX."""
    if sys.platform != "win32" and platform.machine().lower() in ("x86_64", "amd64"):
        flags = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
        return f'-DGGML_NATIVE=ON "-DCMAKE_C_FLAGS={flags}" "-DCMAKE_CXX_FLAGS={flags}"'
    return "-DGGML_NATIVE=ON"


def cmake_args() -> str:
    return os.environ.get("CMAKE_ARGS", "").strip() or default_cmake_args()


def expected_stamp() -> dict:
    return {"version": VERSION, "cmake_args": cmake_args()}


def already_installed(python: str) -> bool:
    try:
        stamp = json.loads((CONVERTER_DIR / STAMP).read_text())
    except (OSError, ValueError):
        return False
    return ({k: stamp.get(k) for k in ("version", "cmake_args")} == expected_stamp()
            and dist_version(python, DIST) == VERSION and dist_version(python, "sse-starlette") != "")


def missing_tools() -> list[str]:
    """What the build needs and this machine lacks (scikit-build-core fetches CMake itself if absent,
    but not a compiler)."""
    if sys.platform == "win32":
        return [] if shutil.which("cl") or shutil.which("clang-cl") else [
            "a C++ compiler (Visual Studio Build Tools with 'Desktop development with C++', run from its "
            "developer prompt)"]
    missing = []
    if not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        missing.append("a C compiler")
    if not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        missing.append("a C++ compiler")
    return missing


def wheel_dir() -> Path:
    """Built wheels, keyed by version and CMAKE_ARGS, outside the venv (kept across set-ups)."""
    root = Path(os.environ.get("PLAYGROUND_CACHE") or Path.home() / ".cache" / "ai-pc-playground")
    key = hashlib.sha256(f"{VERSION} {cmake_args()} {sys.platform}".encode()).hexdigest()[:12]
    return root / "wheels" / f"{DIST}-{VERSION}-{key}"


def build_wheel(python: str) -> Path:
    target = wheel_dir()
    found = sorted(target.glob("llama_cpp_python-*.whl"))
    if found:
        log(f"using the wheel built before: {found[-1]}")
        return found[-1]
    tmp = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    env = dict(os.environ, CMAKE_ARGS=cmake_args())
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
    # --no-cache-dir: pip's wheel cache is keyed by the source alone and could hand back another build
    command = [python, "-m", "pip", "wheel", "--no-cache-dir", "--no-deps", "-w", str(tmp),
               f"{DIST}=={VERSION}"]
    log(f"building {DIST} {VERSION} with CMAKE_ARGS={env['CMAKE_ARGS']!r}, "
        f"{env['CMAKE_BUILD_PARALLEL_LEVEL']} parallel jobs (several minutes on 2 cores)")
    started = time.monotonic()
    run(command, env=env)
    log(f"wheel ready in {time.monotonic() - started:.0f} s")
    os.replace(tmp, target)
    return sorted(target.glob("llama_cpp_python-*.whl"))[-1]


def install_converter(python: str) -> None:
    """llama.cpp's converter from the source package (pip's HTTP cache makes the download cheap)."""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    sdist = BUILD_DIR / f"llama_cpp_python-{VERSION}.tar.gz"
    if not sdist.is_file():
        run([python, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(BUILD_DIR),
             f"{DIST}=={VERSION}"])
    prefix = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"
    tmp = CONVERTER_DIR.with_name("converter.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers()
                   if m.name.startswith(prefix) and m.name[len(prefix):].split("/")[0] in CONVERTER_PARTS]
        for member in members:
            member.name = member.name[len(prefix):]
            archive.extract(member, tmp, filter="data")
    if not (tmp / "convert_hf_to_gguf.py").is_file():
        raise SystemExit(f"{sdist.name} has no vendor/llama.cpp/convert_hf_to_gguf.py")
    shutil.rmtree(CONVERTER_DIR, ignore_errors=True)
    os.replace(tmp, CONVERTER_DIR)
    log(f"converter in {CONVERTER_DIR}")


def smoke_test(python: str) -> dict:
    code = ("import json, llama_cpp; print(json.dumps({'version': llama_cpp.__version__, "
            "'gpu_offload': bool(llama_cpp.llama_supports_gpu_offload()), "
            "'system_info': llama_cpp.llama_print_system_info().decode(errors='replace')}))")
    result = json.loads(run([python, "-c", code], capture_output=True, text=True).stdout)
    log(f"llama_cpp {result['version']} imports; GPU offload: {result['gpu_offload']}; "
        f"{result['system_info'].strip()[:200]}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter of the environment to install into (default: this one)")
    parser.add_argument("--force", action="store_true", help="reinstall even if installed (a cached "
                        "wheel for the same CMAKE_ARGS is still used; delete it to rebuild)")
    args = parser.parse_args(argv)
    python = args.python
    started = time.monotonic()
    if not args.force and already_installed(python):
        log(f"{DIST} {VERSION} ({cmake_args()}) and the converter already installed: nothing to do")
        return 0
    missing = missing_tools()
    if missing and not sorted(wheel_dir().glob("*.whl")):
        hint = {"linux": "Debian/Ubuntu: sudo apt-get install build-essential cmake",
                "darwin": "macOS: xcode-select --install"}.get(sys.platform, "see the README")
        log(f"cannot build {DIST}: {' and '.join(missing)} not found ({hint}); the app runs without "
            "the llama.cpp backend")
        return EXIT_NO_COMPILER
    wheel = build_wheel(python)
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)])
    run([python, "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)])
    install_converter(python)
    result = smoke_test(python)
    stamp = dict(expected_stamp(), gpu_offload=result["gpu_offload"], built_at=time.strftime("%Y-%m-%d"))
    (CONVERTER_DIR / STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as error:
        command = " ".join(map(str, error.cmd))[:300]
        sys.exit(f"[install_llama_cpp] failed: {command} (exit {error.returncode}); the app runs without "
                 "the llama.cpp backend")
