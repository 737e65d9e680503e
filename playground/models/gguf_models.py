"""GGUF files for llama.cpp: the one a model came from, a GGUF given as ``--model``, and an HF folder
converted to GGUF (llama.cpp's own converter, then ``llama_model_quantize``) through the cache.

A GGUF given as the model is imported once into an HF folder (``gguf_import``) so every backend can
run it; the folder's marker remembers the file, so llama.cpp runs the file itself, unconverted.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from playground.errors import ModelFormatError
from playground.models.convert_cache import cached_conversion
from playground.models.export_errors import Failure
from playground.models.gguf_import import DONE_MARKER
from playground.paths import REPO_ROOT, models_root
from playground.progress import Conversion, ProgressCallback

CONVERTER_ENV = "PLAYGROUND_LLAMA_CPP_CONVERTER"  # a folder holding convert_hf_to_gguf.py
CONVERTER_DIR = REPO_ROOT / "build" / "llama-cpp" / "converter"  # put there by scripts/install_llama_cpp.py
CONVERTER = "llama.cpp's convert_hf_to_gguf.py"
QUANTIZE_TYPES = ("Q4_K_M", "Q8_0", "F16")


def source_gguf(model_dir: Path) -> Path | None:
    """The GGUF file an HF folder was imported from, when it is still there."""
    try:
        marker = json.loads((model_dir / DONE_MARKER).read_text())
    except (OSError, ValueError):
        return None
    candidates = [marker.get("gguf_path"), model_dir.parent / "gguf" / str(marker.get("gguf", ""))]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and Path(candidate).suffix.lower() == ".gguf":
            return Path(candidate)
    return None


def import_gguf_file(path: Path) -> Path:
    """An HF folder for a GGUF file (imported once, in a child process: it needs torch)."""
    path = path.resolve()
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":  # the format's magic: say so before a child imports torch
            raise ModelFormatError(f"{path.name} could not be read as a GGUF model: it does not start "
                                   "with the GGUF magic bytes")
    stat = path.stat()
    digest = hashlib.sha256(f"{path}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    target = models_root() / "gguf-imports" / f"{path.stem}-{digest}"
    if (target / DONE_MARKER).is_file():
        return target
    code = ("import sys; from pathlib import Path; from playground.models.gguf_import import import_gguf; "
            "import_gguf(Path(sys.argv[1]), Path(sys.argv[2]), {'gguf_path': sys.argv[1]})")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run([sys.executable, "-c", code, str(path), str(target)], capture_output=True,
                          text=True, env=env, cwd=REPO_ROOT)
    if done.returncode != 0 or not (target / DONE_MARKER).is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelFormatError(f"{path.name} could not be read as a GGUF model: {last[:200]}")
    return target


def converter_script() -> Path:
    folder = Path(os.environ.get(CONVERTER_ENV) or CONVERTER_DIR)
    script = folder / "convert_hf_to_gguf.py"
    if not script.is_file():
        raise ModelFormatError(
            f"{CONVERTER} is not set up ({script} is missing): run `python scripts/install_llama_cpp.py` "
            "(bash scripts/setup.sh does), or pick a GGUF model"
        )
    return script


def converted_gguf(
    model_dir: Path,
    quantize_type: str,
    progress: ProgressCallback,
    quantize: Callable[[Path, Path, str], None],
    run_tool: Callable[[list[str], Failure, ProgressCallback], None],
) -> Conversion:
    """``model.gguf`` at ``quantize_type``: F16 from the converter, then ``quantize`` (llama.cpp's
    ``llama_model_quantize``, called by the backend that has the library loaded)."""
    if quantize_type not in QUANTIZE_TYPES:
        raise ModelFormatError(f"llama.cpp quantises to {', '.join(QUANTIZE_TYPES)}, not {quantize_type!r}")
    script = converter_script()

    def convert(out: Path) -> None:
        f16 = out / "model-f16.gguf"
        # through gguf_convert: the converter itself, plus its Llama-HF vocabulary for a SentencePiece-style
        # tokenizer shipped without tokenizer.model (the demo model)
        command = [sys.executable, "-m", "playground.models.gguf_convert", str(script.parent), str(model_dir),
                   "--outfile", str(f16), "--outtype", "f16"]
        run_tool(command, Failure("llama.cpp", quantize_type, CONVERTER, "", model_dir), progress)
        if not f16.is_file():
            raise ModelFormatError(f"{CONVERTER} finished without writing {f16.name}")
        if quantize_type == "F16":
            f16.rename(out / "model.gguf")
            return
        progress(f"Quantising to {quantize_type} (llama_model_quantize)", "converting")
        quantize(f16, out / "model.gguf", quantize_type)
        f16.unlink()

    return cached_conversion(model_dir, "gguf", quantize_type, convert, progress)
