"""Measure what loading a model really takes per backend, next to the engine's estimate.

Runs a real comparison (one backend at a time, fresh workers) and samples each worker's
resident memory and that of its children (the exporter during a first-time conversion) at
20 Hz. Prints estimate vs measurement per backend; the README's memory table comes from it.

    PLAYGROUND_CACHE=/tmp/fresh .venv/bin/python -m playground.engine.memory_bench --model demo --json m.json
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import psutil

from playground.engine.admission import estimate_lane
from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.memory import estimate
from playground.engine.policy import Policy
from playground.engine.records import BackendSpec, parse_backend_specs
from playground.models.resolve import resolve_model
from playground.settings import GenerationSettings


class TreeSampler(threading.Thread):
    """Peak RSS of a worker (alone) and of its child processes (an exporter), sampled."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.pids: dict[int, str] = {}
        self.worker_peak: dict[str, float] = {}
        self.children_peak: dict[str, float] = {}
        self.tree_peak: dict[str, float] = {}  # worker + its largest child at the same moment
        self.done = threading.Event()

    def watch(self, lane: str, pid: int, started: bool) -> None:
        if started:
            self.pids[pid] = lane

    def run(self) -> None:
        while not self.done.is_set():
            for pid, lane in list(self.pids.items()):
                try:
                    proc = psutil.Process(pid)
                    own = proc.memory_info().rss / 2**20
                    # The largest child: exporters fork short-lived helpers that share their pages.
                    sizes = [child.memory_info().rss for child in proc.children(recursive=True)]
                    kids = max(sizes, default=0) / 2**20
                except psutil.Error:
                    continue
                self.worker_peak[lane] = max(self.worker_peak.get(lane, 0.0), own)
                self.children_peak[lane] = max(self.children_peak.get(lane, 0.0), kids)
                self.tree_peak[lane] = max(self.tree_peak.get(lane, 0.0), own + kids)
            time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument(
        "--backends",
        default="transformers,openvino-genai,optimum-intel,onnxruntime-genai,npu-library",
    )
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--json", type=Path, help="write the measurements here")
    parser.add_argument(
        "--table", type=Path, nargs="+", help="print the README table from measurement files, then exit"
    )
    args = parser.parse_args()
    if args.table:
        print(format_table([row for path in args.table for row in json.loads(path.read_text())]))
        return 0
    rows = []
    for spec in parse_backend_specs(args.backends):
        request = ComparisonRequest(
            prompts=["What is the for statement?"],
            specs=[spec],
            model=args.model,
            settings=GenerationSettings(max_new_tokens=args.max_new_tokens, stop_at_eos=False),
            memory_check=False,  # measure what it takes, whatever the estimate says
        )
        sampler = TreeSampler()
        model, _ = Policy.local().admit(request.model, request.specs)
        comparison = Comparison(request, on_worker=sampler.watch, model=model)
        tokens = (comparison.prompts[0].tokens or 0) + args.max_new_tokens
        estimate, _ = estimate_lane(comparison.model.path, spec, tokens)
        sampler.start()
        loaded: dict = {}
        for event in comparison.events():
            if event.kind == "error":
                print(f"[{spec.key}] {event.message}", file=sys.stderr)
        sampler.done.set()
        records = comparison.records
        record = records[-1] if records else None
        loaded = {"convert_s": record.conversion_s if record else None}
        row = {
            "model": comparison.model.name,
            "backend": spec.backend,
            "precision": record.precision if record else spec.precision,
            "tokens": tokens,
            "estimate": estimate.to_dict(),
            "peak_rss_mb": record.peak_rss_mb if record else None,
            "sampled_worker_peak_mb": round(sampler.worker_peak.get(spec.key, 0.0), 1),
            "sampled_exporter_peak_mb": round(sampler.children_peak.get(spec.key, 0.0), 1),
            "sampled_tree_peak_mb": round(sampler.tree_peak.get(spec.key, 0.0), 1),
            "error": record.error if record else "no record",
            **loaded,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def _error(estimated: float, measured: float | None) -> str:
    return f"{(estimated - measured) / measured:+.0%}" if measured else "-"


def format_table(rows: list[dict]) -> str:
    """Estimate (as made before the first load: no conversion cached) vs measured, per row."""
    lines = [
        "| model | backend | precision | estimated load MB | measured peak RSS MB | error "
        "| estimated conversion MB | measured exporter peak MB | error |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row.get("error") or not row.get("precision"):
            continue
        spec = BackendSpec(row["backend"], "", row["precision"])
        model = resolve_model(row["model"])
        # As the engine estimates before a first load: nothing converted yet.
        found = estimate(model.path, spec.backend, spec.precision, "", int(row.get("tokens") or 100))
        conversion = found.runtime_mb + found.conversion_mb if found.conversion_mb else None
        exporter = row.get("sampled_exporter_peak_mb") or 0.0
        measured_conversion = row.get("sampled_tree_peak_mb") if exporter > 100 else None
        name = "demo" if model.name == "demo" else model.path.name
        lines.append(
            f"| {name} | {row['backend']} | {row['precision']} | {found.load_mb:,.0f} "
            f"| {row['peak_rss_mb']:,.0f} | {_error(found.load_mb, row['peak_rss_mb'])} "
            f"| {f'{conversion:,.0f}' if conversion else '-'} "
            f"| {f'{measured_conversion:,.0f}' if measured_conversion else '-'} "
            f"| {_error(conversion, measured_conversion) if conversion and measured_conversion else '-'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
