"""Convert a Hugging Face folder into the formats the runtimes load, through the cache.

The exporters run as child processes (their own CLIs, as the Phi-3 AI PC guide uses
them) so their output becomes progress lines and their memory is returned afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from playground.backends.base import ModelFormatError, ProgressCallback
from playground.models.convert_cache import cached_conversion

# Weight formats as in the guide: int4 symmetric, group size 128, 60% of layers int4.
OPENVINO_WEIGHT_ARGS: dict[str, list[str]] = {
    "fp16": ["--weight-format", "fp16"],
    "int8": ["--weight-format", "int8"],
    "int4": ["--weight-format", "int4", "--group-size", "128", "--ratio", "0.6", "--sym"],
    # NPU wants symmetric, channel-wise int4 on every layer.
    "int4-npu": ["--weight-format", "int4", "--group-size", "-1", "--ratio", "1.0", "--sym"],
}
ORT_PRECISIONS = ("fp32", "fp16", "int4")


def openvino_ir(model_dir: Path, variant: str, progress: ProgressCallback) -> tuple[Path, bool]:
    """OpenVINO IR with the OpenVINO tokenizer/detokenizer that openvino-genai needs."""
    if variant not in OPENVINO_WEIGHT_ARGS:
        raise ModelFormatError(f"No OpenVINO export recipe for {variant!r}")

    def convert(out: Path) -> None:
        command = [
            sys.executable,
            "-m",
            "optimum.commands.optimum_cli",
            "export",
            "openvino",
            "--model",
            str(model_dir),
            "--task",
            "text-generation-with-past",
            *OPENVINO_WEIGHT_ARGS[variant],
            str(out),
        ]
        _run_tool(command, "OpenVINO export", progress)
        if not (out / "openvino_model.xml").is_file():
            raise ModelFormatError("The OpenVINO export finished without writing openvino_model.xml")

    return cached_conversion(model_dir, "openvino", variant, convert, progress)


def ort_genai_model(
    model_dir: Path, precision: str, execution_provider: str, progress: ProgressCallback
) -> tuple[Path, bool]:
    """An ONNX Runtime GenAI folder (model.onnx + genai_config.json) from its model builder."""
    if precision not in ORT_PRECISIONS:
        raise ModelFormatError(f"onnxruntime-genai builds {', '.join(ORT_PRECISIONS)}, not {precision!r}")

    def convert(out: Path) -> None:
        command = [
            sys.executable,
            "-m",
            "onnxruntime_genai.models.builder",
            "-i",
            str(model_dir),
            "-o",
            str(out),
            "-p",
            precision,
            "-e",
            execution_provider,
            "-c",
            str(out / ".builder-cache"),
        ]
        _run_tool(command, "ONNX Runtime GenAI model builder", progress)
        if not (out / "genai_config.json").is_file():
            raise ModelFormatError("The model builder finished without writing genai_config.json")

    return cached_conversion(model_dir, "ort-genai", f"{precision}-{execution_provider}", convert, progress)


def _run_tool(command: list[str], what: str, progress: ProgressCallback) -> None:
    """Run an exporter, forward its output as progress (at most ~2 lines/s), explain failures."""
    env_overrides = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env = {**os.environ, **env_overrides}
    tail: deque[str] = deque(maxlen=25)
    last_report = 0.0
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.strip()
            if not line:
                continue
            tail.append(line)
            now = time.monotonic()
            if now - last_report > 0.5:
                progress(f"{what}: {line[:160]}", "converting")
                last_report = now
        code = proc.wait()
    if code != 0:
        detail = "\n".join(tail)
        raise ModelFormatError(f"{what} failed (exit code {code}). Last output:\n{detail}")
