"""The architecture matrix: every backend on small random-weight models of the common architectures.

For each architecture (``tests/arch_models.py``) one real comparison runs every backend at its
default precision plus int8 for the OpenVINO ones, greedy, a few tokens, ``stop_at_eos=False``.
Each lane must either stream tokens or end with one clear message (the cause and what to pick
instead, no exporter log). The outcome is written to ``test-artifacts/support-matrix.{json,md}``,
which ``scripts/support_matrix.py --update-readme`` turns into README's support matrix; the test
fails when the outcome differs from the committed matrix, so the README cannot go stale.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from arch_models import ARCHITECTURES, ArchSpec, build_model

from playground.backends import get_backend_class
from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.records import BackendSpec
from playground.models.support_matrix import (
    ARTIFACT,
    COMMITTED,
    UPDATE_COMMAND,
    Matrix,
    Result,
    render_markdown,
)
from playground.settings import GenerationSettings

NPU_LIBRARY_INSTALLED = importlib.util.find_spec("intel_npu_acceleration_library") is not None
LANES: list[tuple[str, str]] = [
    ("transformers", "fp32"),
    ("openvino-genai", "int4"),
    ("openvino-genai", "int8"),
    ("optimum-intel", "int4"),
    ("optimum-intel", "int8"),
    ("onnxruntime-genai", "int4"),
]
if NPU_LIBRARY_INSTALLED:
    LANES.append(("npu-library", "int4"))
NEW_TOKENS = 4
# A clear message: the explain() sentence (cause; what to pick instead. Full output in ...).
CLEAR = re.compile(r"^.{10,500}; (?:.* runs? it|another precision .* may work|transformers runs every .*)\.")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def conversion_cache(playground_cache: Path) -> Iterator[Path]:
    """Workers inherit the environment: conversions go to the session's cache."""
    previous = os.environ.get("PLAYGROUND_CACHE")
    os.environ["PLAYGROUND_CACHE"] = str(playground_cache)
    yield playground_cache
    if previous is None:
        os.environ.pop("PLAYGROUND_CACHE", None)
    else:
        os.environ["PLAYGROUND_CACHE"] = previous


MEASURED = Matrix(
    architectures=[
        {"name": spec.name, "label": spec.label, "architecture": spec.config["architectures"][0]}
        for spec in ARCHITECTURES
    ],
    lanes=[[backend, precision] for backend, precision in LANES],
)
TIMINGS: dict[str, float] = {}


def run_architecture(spec: ArchSpec) -> list[Result]:
    model_dir = build_model(spec)
    request = ComparisonRequest(
        prompts=["What is a list?"],
        specs=[BackendSpec(backend, "", precision) for backend, precision in LANES],
        model=str(model_dir),
        settings=GenerationSettings(max_new_tokens=NEW_TOKENS, stop_at_eos=False),
        mode="parallel",  # imports and exports are mostly single-threaded: overlap them
        load_timeout_s=600,
    )
    comparison = Comparison(request)
    for _ in comparison.events():
        pass
    results = []
    for backend, precision in LANES:
        records = [r for r in comparison.records if r.backend == backend and r.precision == precision]
        errors = [r.error for r in records if r.error]
        assert all("Full output in" in error for error in errors), errors  # the log is named
        tokens = max((r.new_tokens or 0 for r in records), default=0)
        detail = next((r.device_note for r in records if r.device_note), "")
        results.append(
            Result(
                spec.name,
                spec.config["architectures"][0],
                backend,
                precision,
                ok=not errors and tokens > 0,
                detail=_short_detail(detail),
                message=_short_message(errors[0]) if errors else ("" if tokens else "no tokens streamed"),
                new_tokens=tokens,
            )
        )
    return results


def _short_message(message: str) -> str:
    """The lane's message without the machine-specific log path."""
    return re.sub(r" Full output in .*$", "", message)


def _short_detail(note: str) -> str:
    """The precision part of a backend's note (the device part depends on the machine)."""
    parts = [part for part in note.split("; ") if re.match(r"int[48] |tied LM head", part)]
    return "; ".join(parts)


@pytest.mark.parametrize("spec", ARCHITECTURES, ids=[spec.name for spec in ARCHITECTURES])
def test_every_backend_streams_or_says_why(spec: ArchSpec) -> None:
    started = time.perf_counter()
    results = run_architecture(spec)
    TIMINGS[spec.name] = time.perf_counter() - started
    MEASURED.results = [r for r in MEASURED.results if r.arch != spec.name] + results
    _write_artifacts()
    assert results[0].ok, f"transformers must run every architecture: {results[0].message}"
    for result in results:
        if result.ok:
            assert result.new_tokens == NEW_TOKENS, result
        else:
            message = result.message
            assert result.backend != "transformers", message
            assert "\n" not in message and "Traceback" not in message, message
            assert CLEAR.match(message), f"{result.backend} {result.precision}: unclear message {message!r}"


def _write_artifacts() -> None:
    """Write what ran; architectures not run this session (``-k``) keep their earlier results."""
    MEASURED.versions = _versions()
    if ARTIFACT.is_file():
        ran = {r.arch for r in MEASURED.results}
        known = {spec.name for spec in ARCHITECTURES}
        earlier = [r for r in Matrix.load(ARTIFACT).results if r.arch not in ran and r.arch in known]
        MEASURED.results = earlier + [r for r in MEASURED.results if r.arch in ran]
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(MEASURED.to_json())
    ARTIFACT.with_suffix(".md").write_text(render_markdown(MEASURED))
    timings = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in TIMINGS.items())
    ARTIFACT.with_name("support-matrix-timings.txt").write_text(timings + "\n")


def _versions() -> dict[str, str]:
    names = ("transformers", "optimum-intel", "nncf", "openvino-genai", "onnxruntime-genai")
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def test_measured_matrix_matches_the_committed_one() -> None:
    """Runs after the matrix: a changed outcome means README's matrix is stale."""
    measured = MEASURED.outcomes()
    if len(TIMINGS) < len(ARCHITECTURES):
        pytest.skip(reason="only part of the matrix ran (-k): nothing to compare")
    committed = Matrix.load(COMMITTED).outcomes() if COMMITTED.is_file() else {}
    changed = {key: ok for key, ok in measured.items() if committed.get(key) != ok}
    assert not changed, f"the support matrix changed ({changed}): run `{UPDATE_COMMAND}` and commit it"


def test_backends_in_the_matrix_exist() -> None:
    for backend, precision in LANES:
        assert precision in get_backend_class(backend).precisions


def test_nncf_group_size_failure_becomes_one_sentence(tmp_path: Path) -> None:
    """The guide's fixed group 128 on SmolLM2's 576 channels, through the real exporter: what the
    playground did before the recipe adapted, now explained instead of a raw log."""
    import sys

    from playground.backends.base import ModelFormatError
    from playground.models.export_errors import Failure
    from playground.models.exporters import OPENVINO_EXPORT, OPENVINO_WEIGHT_ARGS, _run_tool

    model_dir = build_model(next(spec for spec in ARCHITECTURES if spec.name == "llama-gqa-576"))
    command = [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "openvino", "--model",
               str(model_dir), "--task", "text-generation-with-past", *OPENVINO_WEIGHT_ARGS["int4"],
               str(tmp_path / "out")]  # fmt: skip
    with pytest.raises(ModelFormatError) as failure:
        _run_tool(command, Failure("openvino-genai", "int4", OPENVINO_EXPORT, "", model_dir), print)
    message = str(failure.value)
    assert "int4 with group size 128 does not divide every layer's input channels" in message, message
    assert "576" in message and "\n" not in message and "Traceback" not in message
    assert CLEAR.match(message), message
