"""Convert a Hugging Face folder into the formats the runtimes load, through the cache.

The exporters run as child processes (their own CLIs, as the Phi-3 AI PC guide uses
them) so their output becomes progress lines and their memory is returned afterwards.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from playground.errors import ModelFormatError
from playground.models import quantization
from playground.models.convert_cache import cached_conversion, conversion_dir
from playground.models.export_errors import Failure, explain, log_output
from playground.progress import Conversion, ProgressCallback

# Weight formats as in the guide: int4 symmetric, group size 128, 60% of layers int4.
OPENVINO_WEIGHT_ARGS: dict[str, list[str]] = {
    "fp16": ["--weight-format", "fp16"],
    "int8": ["--weight-format", "int8"],
    "int4": ["--weight-format", "int4", "--group-size", "128", "--ratio", "0.6", "--sym"],
    # NPU wants symmetric, channel-wise int4 on every layer.
    "int4-npu": ["--weight-format", "int4", "--group-size", "-1", "--ratio", "1.0", "--sym"],
}
ORT_PRECISIONS = ("fp32", "fp16", "int4")
OPENVINO_EXPORT = "OpenVINO export"
ORT_BUILDER = "ONNX Runtime GenAI model builder"


def openvino_recipe(model_dir: Path, variant: str) -> tuple[str, list[str]]:
    """(cache variant, exporter arguments) for ``variant``, with the int4 group size adapted.

    The guide's group size 128 is kept when it divides every quantised layer ("int4"); otherwise
    the largest of 64 / 32 that does ("int4-g64"); if none does, NNCF adjusts the group size per
    layer (``--group-size-fallback adjust``, "int4-gadjust"). The IR tells what was really used.
    """
    if variant not in OPENVINO_WEIGHT_ARGS:
        raise ModelFormatError(f"No OpenVINO export recipe for {variant!r}")
    args = list(OPENVINO_WEIGHT_ARGS[variant])
    if variant != "int4":
        return variant, args
    choice = quantization.openvino_int4_group(model_dir)
    if choice.size == quantization.OPENVINO_DEFAULT_GROUP:
        return variant, args
    at = args.index("--group-size") + 1
    if choice.size is None:
        return "int4-gadjust", [*args, "--group-size-fallback", "adjust"]
    args[at] = str(choice.size)
    return f"int4-g{choice.size}", args


def openvino_ir_folder(model_dir: Path, variant: str) -> Path:
    """Where the cache keeps the IR ``openvino_ir`` exports for ``variant`` (a model whose config
    cannot be read: under the plain variant's name, as its export would fail anyway)."""
    with contextlib.suppress(ModelFormatError, OSError, ValueError):
        variant = openvino_recipe(model_dir, variant)[0]
    return conversion_dir(model_dir, "openvino", variant)


def ort_genai_folder(model_dir: Path, precision: str, execution_provider: str) -> Path:
    """Where the cache keeps the ORT GenAI build ``ort_genai_model`` makes (a model whose config
    cannot be read: under the builder's default block size)."""
    variant = f"{precision}-{execution_provider}"
    with contextlib.suppress(ModelFormatError, OSError, ValueError):
        variant = ort_genai_variant(model_dir, precision, execution_provider)
    return conversion_dir(model_dir, "ort-genai", variant)


def openvino_ir(
    model_dir: Path, variant: str, progress: ProgressCallback, backend: str = "openvino-genai"
) -> Conversion:
    """OpenVINO IR with the OpenVINO tokenizer/detokenizer that openvino-genai needs."""
    cache_variant, weight_args = openvino_recipe(model_dir, variant)
    precision = variant.split("-")[0]

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
            *weight_args,
            str(out),
        ]
        _run_tool(command, Failure(backend, precision, OPENVINO_EXPORT, "", model_dir), progress)
        if not (out / "openvino_model.xml").is_file():
            raise ModelFormatError("The OpenVINO export finished without writing openvino_model.xml")

    return cached_conversion(model_dir, "openvino", cache_variant, convert, progress)


def openvino_precision_note(ir_dir: Path, precision: str) -> str:
    """What the IR really holds, e.g. "int4 group 64 (60% of layers; the rest int8)"."""
    if precision != "int4":
        return ""
    groups = quantization.int4_groups_in_ir(ir_dir / "openvino_model.xml")
    return quantization.describe_int4_groups(groups)


def ort_block_size(model_dir: Path) -> int:
    """The builder's int4 block size: its default 32 unless that leaves a partial block."""
    choice = quantization.ort_int4_block(model_dir)
    return choice.size or quantization.ORT_DEFAULT_BLOCK


def ort_genai_model(
    model_dir: Path, precision: str, execution_provider: str, progress: ProgressCallback
) -> Conversion:
    """An ONNX Runtime GenAI folder (model.onnx + genai_config.json) from its model builder."""
    if precision not in ORT_PRECISIONS:
        raise ModelFormatError(f"onnxruntime-genai builds {', '.join(ORT_PRECISIONS)}, not {precision!r}")
    block = ort_block(model_dir, precision)
    extra = [] if block == quantization.ORT_DEFAULT_BLOCK else ["--extra_options", f"block_size={block}"]

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
            *extra,
        ]
        _run_tool(command, Failure("onnxruntime-genai", precision, ORT_BUILDER, "", model_dir), progress)
        if not (out / "genai_config.json").is_file():
            raise ModelFormatError("The model builder finished without writing genai_config.json")

    variant = ort_genai_variant(model_dir, precision, execution_provider)
    return cached_conversion(model_dir, "ort-genai", variant, convert, progress)


def ort_block(model_dir: Path, precision: str) -> int:
    """The int4 block size the model builder is asked for (the default for other precisions)."""
    return ort_block_size(model_dir) if precision == "int4" else quantization.ORT_DEFAULT_BLOCK


def ort_genai_variant(model_dir: Path, precision: str, execution_provider: str) -> str:
    """The conversion cache's name for an ORT GenAI build: precision, block size when it is not the
    builder's default ("int4-b32"), execution provider."""
    block = ort_block(model_dir, precision)
    variant = precision if block == quantization.ORT_DEFAULT_BLOCK else f"{precision}-b{block}"
    return f"{variant}-{execution_provider}"


def _run_tool(command: list[str], failure: Failure, progress: ProgressCallback) -> None:
    """Run an exporter, forward its output as progress (at most ~2 lines/s), explain failures.

    The full output goes to this process's stderr (the worker log); a failure becomes one
    sentence naming the cause and what to pick instead (``export_errors``).
    """
    env_overrides = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env = {**os.environ, **env_overrides}
    output: list[str] = []
    last_report = 0.0
    what = failure.stage
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            output.append(line)
            line = line.strip()
            if not line:
                continue
            now = time.monotonic()
            if now - last_report > 0.5:
                progress(f"{what}: {line[:160]}", "converting")
                last_report = now
        code = proc.wait()
    text = "\n".join(output)
    log_output(f"{what} ({' '.join(command[2:6])} ...), exit code {code}", text)
    if code != 0:
        raise ModelFormatError(explain(replace(failure, output=text, exit_code=code)))
