"""Fast checks: README's support matrix is the committed measurement, and precision choices adapt.

The matrix itself is measured by the slow ``tests/test_architectures.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from playground.models import quantization
from playground.models.export_errors import Failure, explain, last_error_line, what_works
from playground.models.exporters import openvino_recipe
from playground.models.support_matrix import (
    COMMITTED,
    README,
    UPDATE_COMMAND,
    Matrix,
    readme_block,
    render_markdown,
)
from playground.paths import DEMO_MODEL_DIR, REPO_ROOT


def test_readme_matrix_is_generated_from_the_committed_json() -> None:
    block = readme_block(README.read_text())
    assert block is not None, "README.md lost its support-matrix markers"
    assert block == render_markdown(Matrix.load(COMMITTED)), (
        f"README.md's support matrix differs from {COMMITTED.relative_to(REPO_ROOT)}: run `{UPDATE_COMMAND}`"
    )


def test_the_script_checks_the_readme() -> None:
    script = REPO_ROOT / "scripts" / "support_matrix.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_matrix_covers_every_architecture_and_backend() -> None:
    matrix = Matrix.load(COMMITTED)
    backends = {backend for backend, _ in matrix.lanes}
    assert {"transformers", "openvino-genai", "optimum-intel", "onnxruntime-genai"} <= backends
    for arch in matrix.architectures:
        for backend, precision in matrix.lanes:
            row = matrix.result(arch["name"], backend, precision)
            assert row is not None, (arch["name"], backend, precision)
            assert row.ok or row.message, row


def _config(tmp_path: Path, **config: int) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_int4_group_size_divides_every_layer(tmp_path: Path) -> None:
    smollm2 = _config(tmp_path, hidden_size=576, intermediate_size=1536, num_attention_heads=9, head_dim=64)
    assert quantization.quantised_input_channels(quantization.text_config(smollm2)) == (576, 1536)
    assert quantization.openvino_int4_group(smollm2).size == 64
    assert quantization.ort_int4_block(smollm2).size == 32
    variant, args = openvino_recipe(smollm2, "int4")
    assert variant == "int4-g64"
    assert args[args.index("--group-size") + 1] == "64" and "--sym" in args
    assert openvino_recipe(smollm2, "int4-npu")[1][3] == "-1"  # the NPU recipe stays channel-wise


def test_guide_recipe_kept_where_128_divides() -> None:
    assert openvino_recipe(DEMO_MODEL_DIR, "int4") == (
        "int4",
        ["--weight-format", "int4", "--group-size", "128", "--ratio", "0.6", "--sym"],
    )


def test_no_dividing_group_lets_nncf_adjust(tmp_path: Path) -> None:
    odd = _config(tmp_path, hidden_size=200, intermediate_size=600, num_attention_heads=5)
    assert quantization.openvino_int4_group(odd).size is None
    variant, args = openvino_recipe(odd, "int4")
    assert variant == "int4-gadjust" and args[-2:] == ["--group-size-fallback", "adjust"]


def test_int4_groups_read_from_the_ir(tmp_path: Path) -> None:
    xml = tmp_path / "openvino_model.xml"
    xml.write_text(
        '<data element_type="i4" shape="576, 9, 64" offset="0" size="1"/>\n'
        '<data element_type="u4" shape="1536, 24, 64" offset="1" size="1"/>\n'
        '<data element_type="i4" shape="49152, 576" offset="2" size="1"/>\n'
        '<data element_type="u8" shape="576, 9, 64" offset="3" size="1"/>\n'
    )
    groups = quantization.int4_groups_in_ir(xml)
    assert groups == [64, -1]
    assert quantization.describe_int4_groups(groups) == "int4 groups 64/channel-wise"
    assert quantization.describe_int4_groups([64]) == "int4 group 64"


def test_generic_failure_shows_only_the_last_error_line() -> None:
    output = "\n".join(
        [
            "Loading weights: 100%|##########| 3/3",
            "Traceback (most recent call last):",
            '  File "x.py", line 3, in <module>',
            "    raise RuntimeError('first')",
            "RuntimeError: first",
            "UserWarning: something harmless",
            "ValueError: the model weights are not in a format this exporter reads",
        ]
    )
    assert last_error_line(output) == "ValueError: the model weights are not in a format this exporter reads"
    message = explain(Failure("optimum-intel", "int4", "OpenVINO export", output, None, 1))
    assert "\n" not in message and "Traceback" not in message
    assert "OpenVINO export failed (exit code 1): ValueError: the model weights" in message


@pytest.mark.skipif(not COMMITTED.is_file(), reason="no committed support matrix yet")
def test_what_works_comes_from_the_matrix() -> None:
    matrix = Matrix.load(COMMITTED)
    working = [row for row in matrix.results if row.ok and row.backend != "transformers"]
    assert working, "the committed matrix has no working non-reference backend"
    row = working[0]
    text = what_works(row.architecture, "no-such-backend", "int4", same_backend=False)
    assert row.backend.split("-")[0] in text or "NPU library" in text
