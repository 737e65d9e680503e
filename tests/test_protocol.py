"""The fast layer of the engine's protocol (milliseconds, no runtime loaded): messages survive the
wire, the lane state machine refuses what cannot happen, records are built from the messages by
field, and every declared metric reaches the results table, the CSV / JSON downloads, the CLI
table and the panel without a hand-kept list."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from dataclasses import dataclass, fields, replace
from multiprocessing import Pipe
from pathlib import Path

import pytest

from playground import logs
from playground.backends.base import BackendProbe, DeviceProbe
from playground.bench.cli import record_json
from playground.bench.tables import format_table
from playground.engine.comparison import Comparison, ComparisonRequest, _Lane
from playground.engine.events import ErrorEvent, ResultEvent, StateEvent, TokensEvent
from playground.engine.protocol import (
    Exit,
    Failed,
    Generate,
    Hello,
    LaneState,
    Load,
    Loaded,
    Probe,
    Probed,
    Progress,
    ProtocolError,
    Result,
    Stop,
    Tokens,
    decode,
    encode,
)
from playground.engine.records import (
    BackendSpec,
    LoadReport,
    RunRecord,
    RunReport,
    metric,
    metric_fields,
)
from playground.history.exports import write_exports
from playground.settings import GenerationSettings
from playground.ui.live import LaneView
from playground.ui.panels import badge, metrics_markdown
from playground.ui.results import HEADERS, record_dicts, table_rows

LOADED = Loaded(device="CPU", precision="int4", device_note="int4 group 64", threads=1,
                versions="openvino 2026.4; python 3.11", load_s=1.25, conversion_s=9.5,
                conversion_reused=False)
RESULT = Result(prompt_tokens=17, new_tokens=5, ttft_s=0.0421, decode_tokens_per_s=38.25, e2e_s=0.1532,
                peak_rss_mb=321.5, other_cpu_percent=3.0, text="Hello there", stopped=False,
                token_ids=[5, 6, 7, 8, 9], prompt_ids_digest="abc123")
MESSAGES = [
    Probe("openvino-genai"),
    Load("transformers", "/models/demo", "cpu", "fp32"),
    Generate("<|user|>hi", GenerationSettings(max_new_tokens=8).to_dict(), 0.05, run_id="r1"),
    Stop("r1"),
    Exit(),
    Hello(4242),
    Probed(BackendProbe("openvino-genai", "OpenVINO GenAI", installed=True, version="2026.4",
                        devices=[DeviceProbe("CPU", True), DeviceProbe("NPU", False, "no NPU here")],
                        precisions=["int4", "int8"], default_precision="int4")),
    Progress("Converting to openvino int4", LaneState.CONVERTING),
    LOADED,
    Tokens("Hel", 2, 0.031),
    RESULT,
    Failed("generate", "RuntimeError: boom", "Traceback (most recent call last):\n  ...\nRuntimeError: boom"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.kind)
def test_every_message_survives_the_wire(message) -> None:
    sender, receiver = Pipe()
    sender.send(encode(message))  # pickled through a real connection, as worker and engine do
    back = decode(receiver.recv())
    assert back == message and type(back) is type(message)


def test_the_wire_carries_plain_data_only() -> None:
    kind, payload = encode(MESSAGES[6])
    assert kind == "probed" and payload["probe"]["devices"][1] == {"device": "NPU", "available": False,
                                                                   "note": "no NPU here"}
    assert encode(Progress("x", LaneState.CONVERTING)) == ("progress", {"text": "x", "stage": "converting"})


@pytest.mark.parametrize("data, error", [
    (("tokens", "text", 3, 0.1), "not a protocol message"),  # the old positional tuple
    (("launch", {}), "not a protocol message"),
    ("result", "not a protocol message"),
    (("tokens", {"text": "a", "count": 1}), "malformed tokens message"),
    (("loaded", {"device": "CPU", "precision": "int4", "gpu_watts": 3}), "malformed loaded message"),
    (("progress", {"text": "x", "stage": "generating"}), "progress belongs to loading or converting"),
    (("progress", {"text": "x", "stage": "thinking"}), "malformed progress message"),
])
def test_what_does_not_fit_is_refused(data, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        decode(data)


def test_lane_states_are_their_values() -> None:
    assert LaneState.DONE == "done" and str(LaneState.GENERATING) == "generating"
    assert f"{LaneState.ERROR}" == "error" and LaneState("converting") is LaneState.CONVERTING
    assert badge(LaneState.STOPPED) == '<span class="state-badge state-stopped">stopped</span>'
    assert {state for state in LaneState if state.terminal} == {"done", "stopped", "error"}
    assert [state.value for state in LaneState if state.active] == ["starting", "loading", "converting",
                                                                    "generating"]


def test_the_lane_state_machine() -> None:
    Q, S, L, C, G, D, X, E = (LaneState.QUEUED, LaneState.STARTING, LaneState.LOADING, LaneState.CONVERTING,
                              LaneState.GENERATING, LaneState.DONE, LaneState.STOPPED, LaneState.ERROR)
    path = [Q, S, L, C, C, L, G, G, D]  # a first-time conversion, two runs
    state = path[0]
    for step in path[1:]:
        state = state.to(step)
    assert state is D
    assert Q.to(L) is L  # a worker kept loaded from the last comparison
    for start in (Q, S, L, C, G):
        assert start.can_become(E) and start.can_become(X)
    for start, refused in [(Q, G), (S, G), (C, G), (G, L), (G, C), (G, Q), (D, G), (E, E), (X, L), (D, X)]:
        assert start.can_become(refused) == (start is refused and not start.terminal), (start, refused)
    with pytest.raises(ProtocolError, match="from done to generating"):
        D.to(G)


class PipeWorker:
    """The transport of a worker without its process: a real connection carrying encoded
    messages, so a lane can be driven message by message in milliseconds (the real worker
    processes are exercised by tests/test_engine.py)."""

    def __init__(self) -> None:
        self.conn, self.far = Pipe()
        self.pid = 0
        self.proc = self
        self.closed = False

    def poll(self) -> None:
        return None

    def send(self, command) -> None:
        self.conn.send(encode(command))

    def recv(self):
        return decode(self.conn.recv())

    def reply(self, message) -> None:
        self.far.send(encode(message))

    def command(self):
        return decode(self.far.recv())

    def child_out_of_memory(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    kill = request_stop = close


def lane_on_a_pipe(runs: int = 1) -> tuple[_Lane, PipeWorker]:
    request = ComparisonRequest(prompts=["What is the for statement?"], specs=[BackendSpec("openvino-genai")],
                                runs=runs, memory_check=False)
    comparison = Comparison(request)
    lane = _Lane(request.specs[0], comparison)
    comparison.lanes = [lane]
    lane.worker = PipeWorker()  # type: ignore[assignment]
    lane.state = LaneState.LOADING  # where start() leaves it once the Load command is out
    return lane, lane.worker  # type: ignore[return-value]


def test_a_lane_builds_its_record_from_the_messages(caplog) -> None:
    lane, worker = lane_on_a_pipe(runs=2)
    worker.reply(Progress("Converting to openvino int4", LaneState.CONVERTING))
    [converting] = lane.receive()
    assert converting == StateEvent(lane.key, LaneState.CONVERTING, "Converting to openvino int4")
    worker.reply(LOADED)
    loaded, generating = lane.receive()
    assert loaded.state is LaneState.LOADING and "in 1.25 s, converted in 9.5 s" in loaded.message
    assert generating == StateEvent(lane.key, LaneState.GENERATING, "run 1/2")
    command = worker.command()
    assert isinstance(command, Generate) and command.prompt == lane.comparison.prompts[0].templated
    worker.reply(Tokens("Hel", 2, 0.03))
    [tokens] = lane.receive()
    assert tokens == TokensEvent(lane.key, "Hel", 2, 0.03, run=1)
    assert command.run_id  # the run's own id: a Stop names it, the Result echoes it
    worker.reply(replace(RESULT, run_id=command.run_id))
    events = list(lane.receive())
    [result] = [e for e in events if isinstance(e, ResultEvent)]
    record = result.record
    for part, message in ((RunReport, RESULT), (LoadReport, LOADED)):  # every figure, by field
        for f in fields(part):
            assert getattr(record, f.name) == getattr(message, f.name), f.name
    assert (record.device, record.precision, record.device_note, record.threads, record.versions) == (
        "CPU", "int4", "int4 group 64", 1, "openvino 2026.4; python 3.11")
    assert record.run == 1 and record.extra["prompt_ids_digest"] == "abc123" and not record.traceback
    assert isinstance(worker.command(), Generate) and lane.state is LaneState.GENERATING  # run 2
    with caplog.at_level(logging.INFO, logger="playground.engine.comparison"):
        worker.reply(Failed("generate", "RuntimeError: boom", "Traceback ...\nRuntimeError: boom"))
        events = list(lane.receive())
    failed = next(e.record for e in events if isinstance(e, ResultEvent))
    assert failed.error == "RuntimeError: boom" and failed.traceback.endswith("RuntimeError: boom")
    assert "Traceback ...\nRuntimeError: boom" in caplog.text  # the log keeps it too
    assert events[-1] == StateEvent(lane.key, LaneState.DONE, "all runs finished") and worker.closed
    assert lane.comparison.records == [record, failed]


def test_a_failed_load_keeps_its_traceback() -> None:
    lane, worker = lane_on_a_pipe()
    worker.reply(Failed("load", "The OpenVINO export failed: unsupported architecture", "Traceback ...x"))
    error, final = list(lane.receive())[:2]
    assert isinstance(error, ErrorEvent) and error.message.startswith("The OpenVINO export failed")
    assert error.record.traceback == "Traceback ...x" and error.record.error == error.message
    assert final == StateEvent(lane.key, LaneState.ERROR, error.message) and lane.state is LaneState.ERROR
    assert "Traceback" not in metrics_markdown(view_of(error.record, LaneState.ERROR, error.message))


def test_an_unexpected_message_fails_the_lane_not_the_comparison() -> None:
    lane, worker = lane_on_a_pipe()
    worker.reply(Hello(1))
    error = next(iter(lane.receive()))
    assert isinstance(error, ErrorEvent) and "unexpected hello message" in error.message


def view_of(record: RunRecord, state: LaneState = LaneState.DONE, message: str = "") -> LaneView:
    return LaneView("k", record.backend, record.backend, record.device, record.precision, state=state,
                    message=message, record=record, error=record.error)


def sample_record(record_type: type[RunRecord] = RunRecord, **extra) -> RunRecord:
    """A record whose every declared metric has a distinctive value."""
    values = {f.name: 1000 + 11 * index + 0.25 for index, (f, _) in enumerate(metric_fields(record_type))}
    return record_type("openvino-genai", "CPU", "int4", "demo", run=1, **{**values, **extra})


def renderings(records: list[RunRecord], tmp_path: Path) -> tuple[list[str], list[list], dict, dict, str,
                                                                  str]:
    record_type = type(records[0])
    rows = record_dicts(records, "2026-12-02 01:00:00")
    csv_path, json_path = write_exports(rows, tmp_path, record_type=record_type)
    with csv_path.open(encoding="utf-8") as handle:
        csv_row = next(csv.DictReader(handle))
    from playground.ui.results import columns

    headers = [title for title, _, _ in columns(record_type)]
    return (headers, table_rows(rows, record_type), csv_row, json.loads(json_path.read_text())[0],
            format_table(records), metrics_markdown(view_of(records[0])))


def test_every_declared_metric_reaches_table_downloads_cli_and_panel(tmp_path: Path) -> None:
    record = sample_record()
    headers, table, csv_row, json_row, cli, panel = renderings([record], tmp_path)
    assert headers == HEADERS
    declared = metric_fields()
    assert {f.name for f, _ in declared} >= {"ttft_s", "decode_tokens_per_s", "e2e_s", "load_s",
                                             "conversion_s", "peak_rss_mb", "new_tokens", "prompt_tokens"}
    for f, m in declared:
        value = getattr(record, f.name)
        assert f.name in csv_row and float(csv_row[f.name]) == value, f.name
        assert json_row[f.name] == value and record_json(record)[f.name] == value, f.name
        if m.table:
            cell = table[0][headers.index(m.title)]
            assert cell == (round(value, m.digits) if m.digits else round(value) if m.digits == 0 else value)
        if m.cli:
            assert m.cli in cli.splitlines()[0], f.name
            digits = m.cli_digits if m.cli_digits is not None else (m.digits or 0)
            assert f"{value * m.cli_scale:,.{digits}f}" in cli.splitlines()[2], f.name
        if m.panel is not None:
            assert f"{m.panel} {value:,.{m.digits}f} {m.unit}".strip() in panel, f.name
    assert "traceback" in json_row and "traceback" not in " ".join(headers)


@dataclass
class WithEnergy(RunRecord):
    energy_j: float | None = metric("energy (J)", digits=1, panel="energy", unit="J", panel_line=1,
                                    cli="energy J")


def test_a_new_metric_is_one_field(tmp_path: Path) -> None:
    """A metric declared on a record class (here a subclass) shows everywhere with no other edit."""
    record = sample_record(WithEnergy, energy_j=12.25)
    headers, table, csv_row, json_row, cli, panel = renderings([record], tmp_path)
    assert table[0][headers.index("energy (J)")] == 12.2  # rounded half to even, as the other figures
    assert csv_row["energy_j"] == "12.25" and json_row["energy_j"] == 12.25
    header, _, row = cli.splitlines()[:3]
    at = header.index("energy J")
    assert row[at:at + len("energy J")].strip() == "12.2"
    assert "energy 12.2 J" in panel


def test_the_cli_table_keeps_its_medians_and_ratio() -> None:
    records = [sample_record(decode_tokens_per_s=rate, ttft_s=0.05) for rate in (10.0, 30.0, 20.0)]
    records += [RunRecord("transformers", "cpu", "fp32", "demo", run=run, decode_tokens_per_s=rate,
                          ttft_s=0.1, load_s=2.0) for run, rate in ((1, 40.0), (2, 40.0))]
    records += [RunRecord("onnxruntime-genai", "cpu", "int4", "demo", run=run, error="crashed", load_s=4.0)
                for run in (1, 2)]
    table = format_table(records).splitlines()
    assert "decode tok/s (min-max)" in table[0] and "vs first" in table[0]
    assert "20.0 (10.0-30.0)" in table[2] and "1.00x" in table[2] and "50.0" in table[2]  # TTFT in ms
    ours = table[3]
    assert "40.0 (40.0-40.0)" in ours and "2.00x" in ours and "100.0" in ours and " 2 " in ours
    failed = table[4].split()
    # a lane whose runs all failed: no run counted, its load still shown, its error as the note
    assert failed[3] == "0" and "4.00" in failed and failed[-1] == "crashed"


def test_logs_go_to_the_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PLAYGROUND_CACHE", str(tmp_path))
    path = logs.configure("test-protocol")
    try:
        logging.getLogger("playground.engine.comparison").error("lane x failed:\n%s", "Traceback: boom")
        for handler in logging.getLogger("playground").handlers:
            handler.flush()
        assert path == tmp_path / "logs" / "test-protocol.log" and "Traceback: boom" in path.read_text()
    finally:
        for handler in list(logging.getLogger("playground").handlers):
            if getattr(handler, "_playground", False):
                logging.getLogger("playground").removeHandler(handler)
                handler.close()


def test_a_real_worker_speaks_the_protocol(tmp_path: Path, monkeypatch) -> None:
    """The worker process itself (about a second: no runtime is imported): handshake, a failing
    command answered with its sentence and traceback, the worker still serving, then Exit."""
    from playground.engine.launcher import WorkerProcess

    monkeypatch.setenv("PLAYGROUND_CACHE", str(tmp_path))
    worker = WorkerProcess("protocol-test")
    try:
        worker.send(Probe("no-such-runtime"))
        failed = worker.recv()
        assert isinstance(failed, Failed) and failed.command == "probe"
        assert "Unknown backend 'no-such-runtime'" in failed.message
        assert failed.traceback.startswith("Traceback") and "get_backend_class" in failed.traceback
        worker.send(Generate("hi", GenerationSettings().to_dict(), 0.05))  # nothing loaded yet
        failed = worker.recv()
        assert isinstance(failed, Failed) and failed.message == "No model loaded"
    finally:
        worker.close()
    assert worker.proc.returncode == 0  # Exit ended it cleanly
    assert "probe failed" in worker.log_path.read_text()  # the worker's log keeps the traceback


def test_a_run_on_a_contended_host_says_so_in_the_panel_and_the_cli(tmp_path: Path) -> None:
    """Steal (a VM host's share of the CPU) reaches every view; only a contended run is flagged."""
    calm = sample_record(host_steal_percent=1.0, contended_host=False)
    contended = dataclasses.replace(sample_record(host_steal_percent=23.0, contended_host=True), run=2)
    _, _, csv_row, json_row, cli, panel = renderings([contended, calm], tmp_path)
    assert csv_row["host_steal_percent"] == "23.0" and json_row["contended_host"] is True
    assert "**Shared host:**" in panel and "23 %" in panel
    assert "shared host: 1/2 runs lost up to 23 % of the CPU to steal" in cli
    assert "Shared host" not in metrics_markdown(view_of(calm))
    assert "shared host" not in format_table([calm])


def test_token_times_are_in_the_json_download_only(tmp_path: Path) -> None:
    record = sample_record(token_times_ms=[12.5, 20.0, 27.25])
    _, _, csv_row, json_row, _, _ = renderings([record], tmp_path)
    assert json_row["token_times_ms"] == [12.5, 20.0, 27.25]
    assert "token_times_ms" not in csv_row and "itl_p99_ms" in csv_row and "prefill_tokens_per_s" in csv_row
