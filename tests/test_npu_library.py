"""The Intel NPU Acceleration Library backend, for real: demo model, every precision, no mocks.

Everything runs in one child process, as the playground's worker would: importing the library
patches ``torch.nn.Module.to`` for the whole process and the backend ``chdir``s into its cache,
neither of which may leak into the pytest process (other backends' tests run there).
On this CI machine there is no NPU, so the library runs on its OpenVINO CPU fallback.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from playground.paths import DEMO_MODEL_DIR, REPO_ROOT

PRECISIONS = ("int4", "int8", "fp16")
MAX_NEW_TOKENS = 24

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("intel_npu_acceleration_library") is None,
        reason="Intel NPU Acceleration Library not installed: run `python scripts/install_npu_library.py`",
    ),
    pytest.mark.skipif(
        not (DEMO_MODEL_DIR / "config.json").is_file(), reason=f"no demo model at {DEMO_MODEL_DIR}"
    ),
]

CHILD = r"""
import json, sys, time
from pathlib import Path
from playground.backends.npu_library_backend import NPULibraryBackend
from playground.settings import GenerationSettings

model_dir, max_new, precisions = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(",")
prompt = "<|user|>\nWhat is an NPU?<|end|>\n<|assistant|>\n"
report = {"probe": {"installed": None}, "runs": {}}
probe = NPULibraryBackend.probe()
report["probe"] = {
    "installed": probe.installed, "version": probe.version, "usable": probe.usable,
    "devices": [[d.device, d.available, d.note] for d in probe.devices],
}

def run(backend, settings, stop_after=None):
    chunks = []
    def on_tokens(text, count, ids):
        assert len(ids) == count
        chunks.append([text, count])
        return stop_after is None or sum(c for _, c in chunks) < stop_after
    start = time.perf_counter()
    out = backend.generate(prompt, settings, on_tokens)
    seconds = time.perf_counter() - start
    return {"text": "".join(t for t, _ in chunks), "streamed_tokens": sum(c for _, c in chunks),
            "chunks": len(chunks), "prompt_tokens": out.prompt_tokens, "new_tokens": out.new_tokens,
            "stopped": out.stopped, "tok_s": out.new_tokens / seconds}

for precision in precisions:
    backend = NPULibraryBackend()
    start = time.perf_counter()
    backend.load(model_dir, "NPU", precision, lambda message: None)
    greedy = GenerationSettings(max_new_tokens=max_new, stop_at_eos=False)
    sampled = GenerationSettings(max_new_tokens=max_new, stop_at_eos=False, do_sample=True, seed=7)
    report["runs"][precision] = {
        "load_s": time.perf_counter() - start,
        "device": backend.device, "device_note": backend.device_note,
        "context_length": backend.context_length,
        "greedy": [run(backend, greedy) for _ in range(2)],
        "sampled": [run(backend, sampled) for _ in range(2)],
        "stop": run(backend, greedy, stop_after=3),
    }
    backend.unload()
print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One worker-like child process loads the demo model at every precision, in turn."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PLAYGROUND_CACHE=str(tmp_path_factory.mktemp("cache")))
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(DEMO_MODEL_DIR), str(MAX_NEW_TOKENS), ",".join(PRECISIONS)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, f"child failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    result = json.loads(lines[-1][len("REPORT "):])
    for precision, run in result["runs"].items():  # shown with `pytest -s`: speed per precision
        print(f"npu-library {precision}: {run['greedy'][1]['tok_s']:.1f} tok/s, load {run['load_s']:.1f} s")
    return result


def test_probe_reports_cpu_fallback_without_npu(report: dict[str, Any]) -> None:
    probe = report["probe"]
    assert probe["installed"] and probe["usable"]
    assert probe["version"].startswith("1.4.0")
    assert [d[0] for d in probe["devices"]] == ["NPU"]
    has_npu = bool(list(Path("/dev").glob("accel/accel*")))
    expected = "NPU present" if has_npu else "no NPU: CPU fallback"
    assert probe["devices"][0][2].startswith(expected)
    # The requested device is "NPU"; a result says where it really ran.
    ran_on = "NPU" if probe["devices"][0][2] == "NPU present" else "CPU (NPU library fallback)"
    for run in report["runs"].values():
        assert run["device"] == ran_on and run["device_note"].startswith(expected)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_streams_text(report: dict[str, Any], precision: str) -> None:
    run = report["runs"][precision]
    assert run["context_length"] and run["context_length"] > 0
    first = run["greedy"][0]
    assert first["text"].strip(), f"{precision} streamed no text"
    assert first["new_tokens"] == MAX_NEW_TOKENS  # stop_at_eos=False forces the full length
    assert first["streamed_tokens"] == first["new_tokens"]  # the callback saw every token
    assert first["chunks"] > 1  # streamed, not delivered at the end
    assert first["prompt_tokens"] > 0 and not first["stopped"]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_greedy_and_seeded_sampling_repeat(report: dict[str, Any], precision: str) -> None:
    run = report["runs"][precision]
    assert run["greedy"][0]["text"] == run["greedy"][1]["text"]
    assert run["sampled"][0]["text"] == run["sampled"][1]["text"]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_callback_can_stop_generation(report: dict[str, Any], precision: str) -> None:
    stop = report["runs"][precision]["stop"]
    assert stop["stopped"]
    assert stop["new_tokens"] < MAX_NEW_TOKENS
