"""A disk cache of model conversions (OpenVINO IR, ONNX Runtime GenAI) keyed by
model, format and precision. A conversion is written to a temporary folder and renamed
into place only when complete, so a half-written one never counts as done; a file lock
keeps two workers (e.g. openvino-genai and optimum-intel racing) from converting twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from playground.paths import cache_dir
from playground.progress import Conversion, ProgressCallback

DONE_MARKER = ".conversion-complete.json"


def _model_fingerprint(model_dir: Path) -> str:
    """Changes when the source weights or config change (size + mtime, no full hashing)."""
    digest = hashlib.sha256(str(model_dir.resolve()).encode())
    for path in sorted(model_dir.iterdir()):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:12]


def conversion_dir(model_dir: Path, fmt: str, variant: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_dir.name).strip("-") or "model"
    return cache_dir("conversions", fmt) / f"{slug}-{_model_fingerprint(model_dir)}-{variant}"


def is_complete(target: Path) -> bool:
    return (target / DONE_MARKER).is_file()


def cached_conversion(
    model_dir: Path,
    fmt: str,
    variant: str,
    convert: Callable[[Path], None],
    progress: ProgressCallback,
) -> Conversion:
    """The converted folder, whether the cache had it, and how long converting took (0 when
    reused); ``convert(tmp_dir)`` writes the converted model into tmp_dir."""
    from filelock import FileLock  # lazily: workers on a bare interpreter can still report errors

    target = conversion_dir(model_dir, fmt, variant)
    if is_complete(target):
        progress(f"Using cached {fmt} {variant} conversion")
        return Conversion(target, reused=True)
    with FileLock(str(target) + ".lock"):
        if is_complete(target):  # another worker finished it while we waited
            progress(f"Using cached {fmt} {variant} conversion")
            return Conversion(target, reused=True)
        tmp = target.with_name(f"{target.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)  # an interrupted earlier attempt
        tmp.mkdir(parents=True)
        progress(f"Converting to {fmt} {variant} (first run only; cached afterwards)", "converting")
        started = time.perf_counter()
        try:
            convert(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        seconds = time.perf_counter() - started
        (tmp / DONE_MARKER).write_text(
            json.dumps({"source": str(model_dir), "format": fmt, "variant": variant, "seconds": seconds})
        )
        os.replace(tmp, target)
        progress(f"Converted to {fmt} {variant} in {seconds:.1f} s", "converting")
        return Conversion(target, reused=False, seconds=seconds)
