"""Headless benchmark: the same comparison as the web page, printed as a table and saved as JSON.

python -m playground.bench --runs 3 --json out.json
python -m playground.bench --backends openvino-genai:NPU:int4,transformers --mode parallel
python -m playground.bench --list-devices
python -m playground.bench --sweep 128,512,2k --chart sweep.html
python -m playground.bench --matrix --target-ttft 1 --target-decode 10 --chart matrix.html
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from playground import logs
from playground.backends.base import BackendProbe
from playground.bench import matrix, ranking, sweep
from playground.bench.chart_files import ChartPathError, check_chart_path
from playground.bench.tables import agreement_legend, format_quality, format_table
from playground.engine import answer_quality, endpoints, parameters, prompt_sets
from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.events import LaneEvent
from playground.engine.parameters import SettingsError
from playground.engine.policy import Policy
from playground.engine.probing import probe_all
from playground.engine.records import (
    BackendSpec,
    RunRecord,
    parse_backend_specs,
)
from playground.history.owners import LOCAL
from playground.history.store import default_path, save_to_history
from playground.models.resolve import ModelNotFoundError, ModelSource, needs_download

DEFAULT_PROMPT = "What is the for statement?"
# JSON rows: the field names first, then the extra context we measure.
JSON_FIELDS = RunRecord.field_names()


def add_run_parameters(parser: argparse.ArgumentParser) -> None:
    """One option per run parameter (``RunParameters``): name, default, bounds and help from the
    field; values are checked by the model itself (``build_request``), not by argparse."""
    for name in parameters.names("cli"):
        field, meta = parameters.fields()[name], parameters.meta(name)
        flag = "--" + name.replace("_", "-")
        default = parameters.default(name, "bench")
        low, high = parameters.bounds(name)
        limits = f"{low}-{high}, " if low is not None and high is not None else ""
        help_text = f"{field.description} ({limits}default: {default!r})".replace("%", "%%")
        if field.annotation is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default,
                                help=help_text)
        elif field.annotation in (int, float, str):
            parser.add_argument(flag, dest=name, type=field.annotation, default=default, help=help_text)
        else:  # a Literal: its values
            parser.add_argument(flag, dest=name, choices=parameters.choices(name), default=default,
                                help=help_text)
        for shortcut, (value, shortcut_help) in meta.get("cli_flags", {}).items():
            parser.add_argument(shortcut, dest=name, action="store_const", const=value,
                                help=f"{shortcut_help} (= {_spelled(flag, value)})")


def _spelled(flag: str, value: object) -> str:
    if isinstance(value, bool):
        return flag if value else flag.replace("--", "--no-", 1)
    return f"{flag} {value}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m playground.bench",
        description="Run one prompt through several inference backends and compare them.",
    )
    add_run_parameters(parser)
    parser.add_argument("--device", default="", help="device for backends that do not name one")
    parser.add_argument("--precision", default="", help="precision for backends that do not name one")
    parser.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    parser.add_argument("--prompts-file", type=Path, help="one prompt per line")
    parser.add_argument("--json", type=Path, help="write the per-run records here")
    parser.add_argument("--load-timeout", type=float, default=1800.0, help="seconds (conversion + load)")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=120.0,
        help="seconds without a token before a backend counts as hung",
    )
    parser.add_argument(
        "--first-token-timeout",
        type=float,
        default=900.0,
        help="seconds allowed for the first token (prefill of a long prompt)",
    )
    parser.add_argument(
        "--memory-limit",
        type=float,
        default=None,
        metavar="MB",
        help="cap on the memory all backends may hold together, MB (default: PLAYGROUND_MEMORY_LIMIT_MB, "
        "else available memory minus a 1 GB margin); a load that cannot fit is refused",
    )
    parser.add_argument(
        "--history",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep this comparison in the playground's history, beside the page's runs "
        "(default: yes; PLAYGROUND_DATA_DIR moves the folder)",
    )
    parser.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="NAME=URL[,model=M][,key_env=VAR]",
        help="an OpenAI-compatible server as a backend named NAME (then --backends NAME,...); the API key "
        "comes from the environment variable key_env (default OPENAI_API_KEY); also label=TEXT, "
        "timeout=SECONDS; repeatable",
    )
    parser.add_argument(
        "--sweep",
        metavar="TOKENS,...",
        help="prompt-length sweep: the same lanes at each of these prompt lengths in tokens (e.g. "
        "128,512,2k), cut from a shipped long text; prints prefill and decode tok/s per length",
    )
    parser.add_argument(
        "--matrix",
        action="store_true",
        help="every usable backend x device x precision of the model (bare names in --backends limit it "
        "to those backends), one after another, with perplexity (--no-quality skips it); ends in the "
        "ranking, and the recommendation for --target-ttft / --target-decode",
    )
    parser.add_argument("--chart", type=chart_path, metavar="FILE.html|FILE.png",
                        help="write a chart here: decode speed x memory x quality per lane, the trade-off "
                        "front marked (with --sweep: prefill and decode tok/s against prompt length); "
                        "HTML, or PNG through kaleido and a Chrome/Chromium (else the HTML beside it)")
    parser.add_argument("--target-ttft", type=float, metavar="SECONDS",
                        help="recommend the lane that meets this TTFT (and --target-decode), from the runs")
    parser.add_argument("--target-decode", type=float, metavar="TOK_S",
                        help="recommend the lane that decodes at least this fast (and meets --target-ttft)")
    parser.add_argument(
        "--list-devices",
        action="store_true",
        help="show what each backend can use here, and why not, then exit",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.matrix and "--no-quality" not in argv:
        args.quality = True  # "most faithful" needs a measure on every runtime that has logits
    log_path = logs.configure("bench")  # the engine's diagnostics and tracebacks; stdout stays the table
    try:
        endpoints.configure(args.endpoint)  # before the registry is read
    except endpoints.EndpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list_devices:
        print(format_probes(probe_all()))
        return 0
    if args.prompt_set.strip() == prompt_sets.LIST:
        print(prompt_sets.describe())
        return 0
    try:
        request = build_request(args)
        if needs_download(request.model):
            print(f"downloading {request.model!r} from the Hugging Face hub…", file=sys.stderr)
        model, _ = Policy.local().admit(request.model, request.specs)  # the explicit (maybe slow) step
        swept = sweep_prompts(args, request, model) if args.sweep else None
        progress = matrix_progress(args, request, model) if args.matrix else None
        comparison = Comparison(request, model=model)
    except (SettingsError, ModelNotFoundError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    started, started_at = time.perf_counter(), time.time()
    try:
        for event in comparison.events():
            report_progress(event)
            line = progress.observe(event) if progress is not None else None
            if line:
                print(line, file=sys.stderr)
    except KeyboardInterrupt:
        comparison.stop()
        print("interrupted", file=sys.stderr)
    records = comparison.records
    print()
    if swept is not None:  # one row per lane and length: the per-lane table would mix the lengths
        rows = sweep.sweep_rows(records, swept)
        print(sweep.format_sweep(rows))
        if args.chart:
            chart = sweep.write_chart(rows, args.chart, f"prompt-length sweep, {comparison.model.name}")
            print(chart.message())
    else:
        print(format_table(records))
    legend = agreement_legend(records)
    if legend:
        print(legend)
    qualities = answer_quality.lane_quality(records)
    if swept is None and len(comparison.request.prompts) > 1 and qualities:
        print("\n" + format_quality(qualities, comparison.request.prompts))
    if swept is None:
        report_ranking(args, records, comparison.model.name)
    threads = sorted({r.threads for r in records if r.threads})
    print(
        f"\n{len(records)} records in {time.perf_counter() - started:.1f} s "
        f"({args.mode}, model {comparison.model.name}, "
        f"threads {', '.join(map(str, threads)) or '-'}, no page attached)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([record_json(r) for r in records], indent=2))
        print(f"wrote {args.json}")
        if qualities:  # beside the records: the list of records stays what its readers expect
            summary = quality_json_path(args.json)
            summary.write_text(json.dumps(quality_json(qualities, comparison.request, records), indent=2))
            print(f"wrote {summary} (quality over the prompts)")
    if args.history and records:
        saved = save_to_history(records, owner=LOCAL, started_at=started_at, source="cli", request=request)
        print(f"kept in the history as {saved} ({default_path()})" if saved
              else f"could not keep it in the history (see {log_path})")
    if any(r.traceback for r in records):
        print(f"tracebacks of the failures: {log_path}" + (f" and {args.json}" if args.json else ""),
              file=sys.stderr)
    return 0 if records and all(r.ok for r in records) else 1


def report_ranking(args: argparse.Namespace, records: list[RunRecord], model: str) -> None:
    """Fastest, smallest, most faithful, the front; the recommendation for stated targets; the chart."""
    lanes = ranking.lane_figures(records)
    if len(lanes) > 1:
        print("\n" + "\n".join(ranking.ranking_lines(lanes)))
    if lanes and (args.target_ttft is not None or args.target_decode is not None):
        print("\n" + ranking.recommend(lanes, args.target_ttft, args.target_decode))
    if args.chart and lanes:
        print(ranking.write_tradeoff_chart(lanes, args.chart, f"{model}: speed, memory, quality").message())


def chart_path(text: str) -> Path:
    """``--chart``'s value: an .html or a .png file; argparse refuses any other before anything runs."""
    try:
        return check_chart_path(Path(text))
    except ChartPathError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def sweep_prompts(args: argparse.Namespace, request: ComparisonRequest, model: ModelSource) -> list:
    """``--sweep``: the request's prompts become one per length (``playground.bench.sweep``)."""
    if args.prompt or args.prompts_file or args.prompt_set.strip():
        raise SettingsError("--sweep builds its own prompts from a shipped text: leave out --prompt, "
                            "--prompts-file and --prompt-set")
    prompts, skipped = sweep.build_prompts(model.path, sweep.parse_lengths(args.sweep), request.system_prompt,
                                           request.settings.max_new_tokens, model.context_length)
    for note in skipped:
        print(f"sweep: left out {note}", file=sys.stderr)
    if not prompts:
        raise SettingsError("--sweep: no length fits this model (see above)")
    request.prompts = [p.prompt for p in prompts]
    return prompts


def matrix_progress(args: argparse.Namespace, request: ComparisonRequest,
                    model: ModelSource) -> matrix.MatrixProgress:
    """``--matrix``: the request's lanes become every usable device x precision of the named
    backends; the plan (conversions, estimate from this machine's history) is printed first."""
    if args.sweep:
        raise SettingsError("--matrix and --sweep each build their own comparison: use one at a time")
    history = matrix.owner_history(model.name) if args.history else []
    plan = matrix.prepare(request, model, probe_all(), history)
    for note in plan.skipped:
        print(f"matrix: left out {note}", file=sys.stderr)
    print(plan.summary(), file=sys.stderr)
    return matrix.MatrixProgress(plan)


def build_request(args: argparse.Namespace) -> ComparisonRequest:
    params = parameters.RunParameters.parse({name: getattr(args, name) for name in parameters.names("cli")})
    if params.prompt_set.strip() and (args.prompt or args.prompts_file):
        raise SettingsError(f"--prompt-set {params.prompt_set.strip()} brings its own prompts: leave out "
                            "--prompt and --prompts-file (or --prompt-set)")
    prompts = list(args.prompt)
    if args.prompts_file:
        prompts += [line for line in args.prompts_file.read_text().splitlines() if line.strip()]
    if not prompts:
        prompts = [DEFAULT_PROMPT]
    if params.backends.strip():
        specs = parse_backend_specs(params.backends)
    else:
        probes = probe_all()
        specs = [BackendSpec(name) for name, probe in probes.items() if probe.usable]
        skipped = [
            f"{name} ({probe.reason or 'no usable device'})"
            for name, probe in probes.items()
            if not probe.usable
        ]
        if skipped:
            print("skipping: " + "; ".join(skipped), file=sys.stderr)
    specs = [
        BackendSpec(spec.backend, spec.device or args.device, spec.precision or args.precision)
        for spec in specs
    ]
    request = params.to_request(
        specs,
        load_timeout_s=args.load_timeout,
        idle_timeout_s=args.idle_timeout,
        first_token_timeout_s=args.first_token_timeout,
        memory_limit_mb=args.memory_limit,
    )
    if not params.prompt_set.strip():  # else to_request took the set's prompts
        request.prompts = prompts
    return request


def report_progress(event: LaneEvent) -> None:
    """Long steps (conversion, loading) and failures, on stderr so stdout stays the table."""
    if event.kind == "state" and event.state != "queued":
        print(f"[{event.lane}] {event.state}: {event.message}", file=sys.stderr)
    elif event.kind == "error":
        print(f"[{event.lane}] ERROR: {event.message}", file=sys.stderr)


def record_json(record: RunRecord) -> dict:
    data = record.to_dict()
    return {name: data[name] for name in JSON_FIELDS}


def quality_json_path(records_path: Path) -> Path:
    """``out.json`` -> ``out.quality.json``: the summary beside the records."""
    return records_path.with_name(records_path.stem + ".quality" + (records_path.suffix or ".json"))


def quality_json(qualities: list[answer_quality.LaneQuality], request: ComparisonRequest,
                 records: list[RunRecord]) -> dict:
    """The ``--json`` summary file: the prompts, the reference and each lane's aggregate."""
    return {
        "model": records[0].model if records else "",
        "reference": sorted({r.reference for r in records if r.reference}),
        "prompts": list(request.prompts),
        "aggregation": "per prompt: median over its runs; per lane: mean over prompts of those medians",
        "lanes": [quality.to_dict() for quality in qualities],
    }


def format_probes(probes: dict[str, BackendProbe]) -> str:
    lines = []
    for name, probe in probes.items():
        status = probe.version if probe.installed else f"not installed: {probe.reason}"
        lines.append(f"{name} ({probe.label}): {status}")
        if probe.installed:
            lines.append(f"  precisions: {', '.join(probe.precisions)} (default {probe.default_precision})")
        for device in probe.devices:
            mark = "yes" if device.available else "no "
            lines.append(f"  [{mark}] {device.device:<8} {device.note}")
    return "\n".join(lines)
