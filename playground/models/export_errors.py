"""Turn exporter, model-builder and runtime failures into one clear sentence for the panel.

Exporters print hundreds of lines (warnings, tracebacks, progress bars). The panel gets the cause
in plain words and what to pick instead (from the support matrix the architecture test writes);
the full output stays in the worker's log file, whose path the message names.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from playground.errors import ModelFormatError

SUPPORT_MATRIX = Path(__file__).with_name("support_matrix.json")
log = logging.getLogger(__name__)
BACKEND_LABELS = {
    "transformers": "transformers",
    "openvino-genai": "openvino-genai",
    "optimum-intel": "optimum-intel",
    "onnxruntime-genai": "onnxruntime-genai",
    "npu-library": "the NPU library",
}


@dataclass(frozen=True)
class Failure:
    """What went wrong, as the tool said it."""

    backend: str  # the backend that asked for the conversion / load, e.g. "onnxruntime-genai"
    precision: str
    stage: str  # "OpenVINO export", "ONNX Runtime GenAI model builder", "load", ...
    output: str  # the tool's full output, or the exception text
    model_dir: Path | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    explain: Callable[[re.Match[str], Failure], str]  # the cause, one sentence without a full stop
    precision_specific: bool = False  # another precision of the same backend may work


def _architecture(failure: Failure) -> str:
    config = _config(failure) if failure.model_dir is not None else {}
    names = config.get("architectures") or [config.get("model_type") or "this architecture"]
    return str(names[0])


def _group_size(match: re.Match[str], failure: Failure) -> str:
    channels = sorted(set(re.findall(r"channel size: (\d+)", failure.output)))
    where = f" (layers with {', '.join(channels)} input channels)" if channels else ""
    return f"int4 with group size {match.group(1)} does not divide every layer's input channels{where}"


def _longrope(match: re.Match[str], failure: Failure) -> str:
    config = _config(failure)
    original = config.get("original_max_position_embeddings")
    longest = config.get("max_position_embeddings")
    scaling = config.get("rope_scaling") or {}
    if original and longest and original != longest and not scaling.get("short_factor"):
        return (
            f"{failure.stage} failed: config.json has original_max_position_embeddings {original} != "
            f"max_position_embeddings {longest}, so it takes the LongRoPE path, but rope_scaling has no "
            "short/long factors"
        )
    return f"{failure.stage} failed: the model's rope scaling lacks {match.group(1)!r}"


def _config(failure: Failure) -> dict:
    try:
        return json.loads((Path(failure.model_dir or ".") / "config.json").read_text())
    except (OSError, ValueError):
        return {}


PATTERNS: tuple[Pattern, ...] = (
    Pattern(
        re.compile(r"Failed to apply group-wise quantization with group size value (-?\d+)"),
        _group_size,
        precision_specific=True,
    ),
    Pattern(
        re.compile(r"NotImplementedError: The (\S+) model is not currently supported"),
        lambda m, f: f"onnxruntime-genai's model builder does not support {_architecture(f)}",
    ),
    Pattern(
        re.compile(r"Trying to export a (\S+) model, that is a custom or unsupported architecture"),
        lambda m, f: f"optimum-intel's OpenVINO exporter does not support model type {m.group(1)!r}",
    ),
    Pattern(
        re.compile(
            r"current version of Transformers does not allow for the export of the model\. "
            r"Maximum required is ([\w.]+), got: ([\w.]+)"
        ),
        lambda m, f: (
            f"optimum-intel's OpenVINO exporter supports {_architecture(f)} only up to transformers "
            f"{m.group(1)} (installed: {m.group(2)})"
        ),
    ),
    Pattern(
        re.compile(r"model type `?([\w-]+)`? but Transformers does not recognize this architecture"),
        lambda m, f: f"this transformers version does not know model type {m.group(1)!r}",
    ),
    Pattern(re.compile(r"KeyError: '(multi_cache|short_factor|long_factor)'"), _longrope),
    Pattern(
        re.compile(r"(?:KeyError|AttributeError).*'(short_factor|long_factor|rope_scaling|rope_parameters)'"),
        lambda m, f: f"the exporter could not read the model's rope scaling ({m.group(1)} missing)",
    ),
    Pattern(
        re.compile(
            r"Either openvino_tokenizer\.xml was not provided|openvino_tokenizer\.xml.*(?:not|missing)"
        ),
        lambda m, f: "OpenVINO Tokenizers could not convert this model's tokenizer",
    ),
    Pattern(
        re.compile(r"(?:does not support|not supported for) (?:the )?(\w+) precision|Unsupported.*precision"),
        lambda m, f: f"{f.precision} is not supported for {_architecture(f)}",
        precision_specific=True,
    ),
    Pattern(
        re.compile(r"MemoryError|Cannot allocate memory|std::bad_alloc|out of memory", re.IGNORECASE),
        lambda m, f: "it ran out of memory",
    ),
)

_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Exit))(?::\s*(.*))?$")
_NOISE = re.compile(r"^(?:Traceback|File \"|\s|\^|~|During handling|The above exception)")


def last_error_line(output: str) -> str:
    """The last line that looks like an error (``SomethingError: text``), else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        match = _ERROR_LINE.match(line)
        if match and not _NOISE.match(line):
            return _shorten(line)
    for line in reversed(lines):
        if not _NOISE.match(line) and "warn" not in line.lower() and "%|" not in line:
            return _shorten(line)
    return ""


def _shorten(line: str, limit: int = 240) -> str:
    line = re.sub(r"\s+", " ", line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def cause(failure: Failure) -> tuple[str, bool]:
    """(the cause in one phrase, whether another precision of the same backend may work)."""
    for pattern in PATTERNS:
        match = pattern.regex.search(failure.output)
        if match:
            return pattern.explain(match, failure), pattern.precision_specific
    if failure.exit_code is not None and failure.exit_code < 0:
        signal = -failure.exit_code
        reason = "killed: out of memory" if signal == 9 else f"killed by signal {signal}"
        return f"{failure.stage} was {reason}", False
    line = last_error_line(failure.output)
    code = f" (exit code {failure.exit_code})" if failure.exit_code not in (None, 0) else ""
    return f"{failure.stage} failed{code}: {line}" if line else f"{failure.stage} failed{code}", False


@lru_cache(maxsize=1)
def _matrix() -> dict:
    try:
        return json.loads(SUPPORT_MATRIX.read_text())
    except (OSError, ValueError):
        return {}


def what_works(architecture: str, backend: str, precision: str, same_backend: bool) -> str:
    """What the support matrix says runs this architecture, e.g. "openvino-genai int8 and transformers
    run it"; "" when the architecture is not in the matrix."""
    results = [row for row in _matrix().get("results", []) if row.get("architecture") == architecture]
    working = [row for row in results if row.get("ok")]
    if same_backend:
        others = sorted(
            {r["precision"] for r in working if r["backend"] == backend and r["precision"] != precision}
        )
        if others:
            return f"{BACKEND_LABELS.get(backend, backend)} at {' or '.join(others)} runs it"
    backends = []
    for row in working:
        if row["backend"] != backend and row["backend"] not in backends:
            backends.append(row["backend"])
    if not backends:
        return ""
    names = [BACKEND_LABELS.get(name, name) for name in backends]
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{joined} {'runs' if len(names) == 1 else 'run'} it"


def explain(failure: Failure) -> str:
    """The panel's message: cause, what to pick instead, where the full output is."""
    text, precision_specific = cause(failure)
    architecture = _architecture(failure)
    instead = what_works(architecture, failure.backend, failure.precision, precision_specific)
    if not instead:
        instead = (
            "another precision of this backend may work"
            if precision_specific
            else "transformers runs every architecture it knows"
        )
    label = BACKEND_LABELS.get(failure.backend, failure.backend)
    message = f"{label} ({failure.precision}): {text}; {instead}."
    log = worker_log_path()
    where = f" Full output in {log}." if log else " Full output in the worker log."
    return message + where


def worker_log_path() -> str:
    """The file this process's stderr goes to (the worker log), if it is one."""
    try:
        target = os.readlink(f"/proc/self/fd/{sys.stderr.fileno()}")
    except (OSError, ValueError, AttributeError):
        return ""
    return target if os.path.isfile(target) else ""


def log_output(title: str, output: str) -> None:
    """Keep a tool's full output in the worker log (this process's stderr, where the worker logs)."""
    log.info("----- %s -----\n%s\n----- end of %s -----", title, output, title)


def load_failure(backend: str, precision: str, model_dir: Path, error: BaseException) -> Exception:
    """A runtime's load error as a ModelFormatError with the clear message; the traceback goes to
    the worker log."""
    import traceback


    text = "".join(traceback.format_exception(error))
    log_output(f"{backend} {precision} load failure", text)
    return ModelFormatError(explain(Failure(backend, precision, "load", text, Path(model_dir))))
