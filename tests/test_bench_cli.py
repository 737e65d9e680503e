"""The headless benchmark as people run it: a subprocess, a printed table, a JSON file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from playground.paths import REPO_ROOT

ISSUE_FIELDS = {
    "backend",
    "device",
    "precision",
    "model",
    "prompt_tokens",
    "new_tokens",
    "load_s",
    "ttft_s",
    "decode_tokens_per_s",
    "e2e_s",
    "peak_rss_mb",
    "text",
}


AGREEMENT_FIELDS = {
    "token_ids",
    "reference",
    "agreement_pct",
    "first_divergence",
    "text_similarity",
    "agreement_flag",
    "agreement_note",
}

# One short measured run: the tests check behaviour, not speed.
QUICK = ("--runs", "1", "--warmup", "0", "--max-new-tokens", "8")


def bench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "playground.bench", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_bench_prints_medians_and_writes_records(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = bench(
        "--backends",
        "onnxruntime-genai,openvino-genai:CPU:int8",
        "--runs",
        "2",
        "--warmup",
        "1",
        "--max-new-tokens",
        "16",
        "--ignore-eos",
        "--prompt",
        "What is a list?",
        "--reference",
        "openvino-genai:CPU:int8",
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = json.loads(out.read_text())
    assert len(records) == 4
    for record in records:
        assert set(record) >= ISSUE_FIELDS | AGREEMENT_FIELDS
        assert record["reference"] == "openvino-genai:CPU:int8"
        assert len(record["token_ids"]) == 16 and 0 <= record["agreement_pct"] <= 100
        assert 0 <= record["text_similarity"] <= 1
        assert record["new_tokens"] == 16 and record["text"] and record["decode_tokens_per_s"] > 0
        assert record["model"] == "demo"
    assert {(r["backend"], r["precision"]) for r in records} == {
        ("onnxruntime-genai", "int4"),
        ("openvino-genai", "int8"),
    }
    table = result.stdout
    assert "decode tok/s (min-max)" in table and "onnxruntime-genai" in table and "1.00x" in table
    header, _, *rows = table.strip().splitlines()
    assert "agree %" in header and "1st diff" in header and "sim" in header
    agree_column = slice(header.index("agree %"), header.index("1st diff"))
    lanes = {row.split()[0]: row for row in rows if row.split() and row.split()[0] in ("openvino-genai",
                                                                                       "onnxruntime-genai")}
    assert lanes["openvino-genai"][agree_column].strip() == "ref"
    ort = next(r for r in records if r["backend"] == "onnxruntime-genai")
    agree = f"{ort['agreement_pct']:,.1f}" + (" !" if ort["agreement_flag"] else "")
    assert lanes["onnxruntime-genai"][agree_column].strip() == agree
    assert "answers compared with openvino-genai:CPU:int8" in table
    # long steps report progress on stderr
    assert "loading" in result.stderr and "done: all runs finished" in result.stderr


@pytest.mark.slow
def test_bench_reads_prompts_from_a_file(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is a list?\n\nExplain the json module.\n")
    out = tmp_path / "out.json"
    result = bench(
        "--backends",
        "onnxruntime-genai",
        "--prompts-file",
        str(prompts),
        *QUICK,
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(json.loads(out.read_text())) == 2


@pytest.mark.slow
def test_list_devices_says_what_is_missing_and_why() -> None:
    result = bench("--list-devices")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for name in ("transformers", "openvino-genai", "optimum-intel", "onnxruntime-genai", "npu-library"):
        assert f"{name} (" in text
    assert "[yes] CPU" in text and "[yes] cpu" in text
    assert "[no ] NPU      NPU not present" in text
    assert "[no ] dml" in text and "DirectML" in text


def test_bench_reports_bad_input_clearly() -> None:
    result = bench("--model", "/nonexistent/folder", "--backends", "onnxruntime-genai")
    assert result.returncode == 2
    assert "Model folder '/nonexistent/folder' does not exist" in result.stderr
    result = bench("--max-new-tokens", "0", "--backends", "onnxruntime-genai")
    assert result.returncode == 2 and "between 1 and 4096" in result.stderr


@pytest.mark.slow
def test_a_failing_backend_does_not_stop_the_others(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = bench(
        "--backends",
        "transformers:cuda,onnxruntime-genai",
        *QUICK,
        "--json",
        str(out),
    )
    assert result.returncode == 1  # something failed, and the exit code says so
    records = {r["backend"]: r for r in json.loads(out.read_text())}
    assert "CUDA is not available" in records["transformers"]["error"]
    assert records["onnxruntime-genai"]["text"]
    assert "CUDA is not available" in result.stdout  # the table's note column
