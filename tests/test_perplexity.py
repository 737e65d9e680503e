"""Perplexity (issue 13, quality next to speed): the windowed computation, the Score / Scored round trip
through a real worker, the records' fields and how the table, the CLI and the panel show them.

The fast tests run the scripted backend (``perplexity=X`` in its prompt); the real runtimes' are in
``test_perplexity_runtimes.py`` (marked slow).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from playground.backends.base import BackendError
from playground.backends.perplexity import log_softmax, perplexity_of, windows
from playground.bench.cli import main
from playground.bench.tables import format_table
from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.events import QualityEvent
from playground.engine.pool import WorkerPool
from playground.engine.protocol import Score, Scored, decode, encode
from playground.engine.quality import ENGLISH_PROSE, PYTHON_DOCS, heldout_for
from playground.engine.records import BackendSpec
from playground.paths import DEMO_MODEL_DIR
from playground.settings import GenerationSettings
from playground.ui.live import LaneView
from playground.ui.panels import metrics_markdown
from playground.ui.results import columns, record_dicts, table_rows

VOCAB = 7


def bigram_logits(piece: list[int]) -> np.ndarray:
    """A model that looks at the previous token only: any window gives the same logits per position."""
    table = np.arange(VOCAB * VOCAB, dtype=np.float64).reshape(VOCAB, VOCAB) % 5 * 3.0
    return table[np.asarray(piece)]


def test_log_softmax_is_stable_and_normalised() -> None:
    rows = log_softmax(np.array([[1000.0, 1000.0, 990.0], [-1e4, 0.0, 1e4]], dtype=np.float32))
    assert np.isfinite(rows).all()
    assert np.allclose(np.exp(rows).sum(axis=1), 1.0)
    assert math.isclose(rows[0, 0], -math.log(2 + math.exp(-10)), rel_tol=1e-9)


def test_windows_score_every_token_but_the_first_once() -> None:
    for count in range(2, 40):
        for window in range(2, 12):
            spans = windows(count, window)
            assert sum(new for _, _, new in spans) == count - 1
            assert all(end - begin <= window and new <= end - begin - (begin == 0)
                       for begin, end, new in spans)
            assert spans[-1][1] == count
    assert windows(1, 8) == []


def test_uniform_logits_give_the_vocabulary_size() -> None:
    def uniform(piece: list[int]) -> np.ndarray:
        return np.zeros((len(piece), VOCAB))

    result = perplexity_of(list(range(5)) * 20, 16, uniform, 1024, "uniform")
    assert math.isclose(result.perplexity, VOCAB, rel_tol=1e-12)
    assert (result.tokens, result.window, result.source) == (99, 16, "uniform")
    assert result.windows > 1


def test_strided_windows_match_one_pass_for_a_short_memory_model() -> None:
    ids = [(i * 5 + i // 3) % VOCAB for i in range(300)]
    whole = perplexity_of(ids, 1024, bigram_logits, 1024, "bigram")
    strided = perplexity_of(ids, 32, bigram_logits, 1024, "bigram")
    rows = log_softmax(bigram_logits(ids))
    expected = math.exp(-np.mean([rows[i, ids[i + 1]] for i in range(len(ids) - 1)]))
    assert whole.windows == 1 and strided.windows > 10
    assert math.isclose(whole.perplexity, expected, rel_tol=1e-9)
    assert math.isclose(strided.perplexity, expected, rel_tol=1e-9)
    assert perplexity_of(ids, 32, bigram_logits, 100, "bigram").tokens == 99  # max_tokens bounds it


def test_wrong_logits_and_too_short_texts_are_refused() -> None:
    with pytest.raises(BackendError, match="rows of logits"):
        perplexity_of([1, 2, 3], 8, lambda piece: np.zeros((1, VOCAB)), 1024, "last row only")
    with pytest.raises(BackendError, match="nothing to score"):
        perplexity_of([1], 8, bigram_logits, 1024, "x")


def test_score_messages_round_trip() -> None:
    command = decode(encode(Score("some text", 512, run_id="r1")))
    assert command == Score("some text", 512, run_id="r1")
    answer = decode(encode(Scored(12.5, 99, 2, 64, "torch forward", 0.25, run_id="r1")))
    assert answer == Scored(12.5, 99, 2, 64, "torch forward", 0.25, run_id="r1")
    assert decode(encode(Scored(None, note="no logits"))).note == "no logits"


def test_each_model_gets_its_held_out_text() -> None:
    demo = heldout_for(DEMO_MODEL_DIR)
    assert demo.name == PYTHON_DOCS and "def keyword" in demo.text
    other = heldout_for(Path("/somewhere/SmolLM2-135M-Instruct"))
    assert other.name == ENGLISH_PROSE and "market" in other.text


@pytest.fixture(scope="module")
def warm() -> Iterator[WorkerPool]:
    """The two lanes' workers, loaded once for this module's comparisons (as the app keeps them)."""
    pool = WorkerPool()
    yield pool
    pool.close_all()


def scored_comparison(prompt: str, pool: WorkerPool, quality: bool = True) -> tuple[Comparison, list]:
    request = ComparisonRequest(
        prompts=[prompt], specs=[BackendSpec("scripted"), BackendSpec("scripted", "CPU", "load-slow")],
        settings=GenerationSettings(max_new_tokens=8, stop_at_eos=False), runs=2, quality=quality,
    )
    comparison = Comparison(request, pool=pool)
    return comparison, list(comparison.events())


@pytest.mark.usefixtures("scripted_backend")
def test_lanes_are_scored_after_their_runs_and_compared_with_the_reference(warm: WorkerPool) -> None:
    comparison, events = scored_comparison("tokens=4 scripted:perplexity=8 load-slow:perplexity=12", warm)
    by_lane = {(r.precision, r.run): r for r in comparison.records}
    assert len(by_lane) == 4 and all(r.ok for r in by_lane.values())
    for run in (1, 2):
        reference, other = by_lane["scripted", run], by_lane["load-slow", run]
        assert (reference.perplexity, reference.perplexity_vs_reference) == (8.0, 1.0)
        assert (other.perplexity, other.perplexity_vs_reference) == (12.0, 1.5)
        assert other.perplexity_note == "vs scripted:CPU:scripted's perplexity"
        assert reference.perplexity_text == PYTHON_DOCS and reference.perplexity_tokens
    quality = [e for e in events if isinstance(e, QualityEvent)]
    assert {e.lane for e in quality} == {"scripted@auto:default", "scripted@CPU:load-slow"}
    states = [e.message for e in events if e.kind == "state"]
    assert states.count(f"measuring perplexity on {PYTHON_DOCS}") == 2
    assert states[-1] == "all runs finished"


@pytest.mark.usefixtures("scripted_backend")
def test_a_lane_that_cannot_says_why_and_shows_a_dash(tmp_path: Path, warm: WorkerPool) -> None:
    comparison, _ = scored_comparison("tokens=4 scripted:perplexity=8.5", warm)
    cannot = [r for r in comparison.records if r.precision == "load-slow"]
    assert cannot and all(r.perplexity is None and r.perplexity_vs_reference is None for r in cannot)
    assert cannot[0].perplexity_note == "scripted (test backend): no perplexity= directive in its prompt"
    table = format_table(comparison.records)
    header, _, scored, unscored = table.splitlines()
    at = header.index("ppl ")
    assert scored[at:].split()[0] == "8.50" and unscored[at:].split()[0] == "-"
    assert "no perplexity: scripted (test backend): no perplexity= directive" in unscored
    view = LaneView("k", "scripted", "scripted", "CPU", "load-slow", record=cannot[-1])
    assert "perplexity - (scripted (test backend): no perplexity= directive in its prompt)" in (
        metrics_markdown(view))
    shown = LaneView("k", "scripted", "scripted", "CPU", "scripted", record=comparison.records[0])
    assert "perplexity 8.50" in metrics_markdown(shown)
    titles = [title for title, _, _ in columns()]
    rows = table_rows(record_dicts(comparison.records, "now"))
    assert [row[titles.index("perplexity")] for row in rows] == [8.5, 8.5, "", ""]


@pytest.mark.usefixtures("scripted_backend")
def test_nothing_is_scored_unless_asked(warm: WorkerPool) -> None:
    comparison, events = scored_comparison("tokens=4 perplexity=8", warm, quality=False)
    assert all(r.perplexity is None and not r.perplexity_note for r in comparison.records)
    assert not [e for e in events if isinstance(e, QualityEvent)]


@pytest.mark.usefixtures("scripted_backend")
def test_the_cli_flag_asks_for_perplexity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    code = main(["--backends", "scripted", "--prompt", "tokens=3 perplexity=4.25", "--runs", "1",
                 "--warmup", "0", "--perplexity", "--no-history", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "ppl" in printed and "4.25" in printed
    row = json.loads(out.read_text())[0]
    assert row["perplexity"] == 4.25 and row["perplexity_text"] == PYTHON_DOCS


@pytest.mark.usefixtures("scripted_backend")
def test_a_failed_score_is_a_note_not_a_failed_run(warm: WorkerPool) -> None:
    comparison, events = scored_comparison("tokens=4 scripted:perplexity=0.5 load-slow:perplexity=3", warm)
    failed = [r for r in comparison.records if r.precision == "scripted"]
    assert all(r.ok and r.perplexity is None for r in failed)
    note = failed[0].perplexity_note
    assert note == "perplexity failed: ProtocolError: a perplexity is at least 1, not 0.5"
    other = [r for r in comparison.records if r.precision == "load-slow"]
    assert other[0].perplexity == 3.0 and other[0].perplexity_vs_reference == 1.0  # the reference handed over
    assert [e.message for e in events if e.kind == "state"][-1] == "all runs finished"


def test_other_tokenizers_are_noted_beside_the_ratio() -> None:
    from playground.engine.quality import PerplexityBoard
    from playground.engine.records import RunRecord

    board = PerplexityBoard(["a", "b"], PYTHON_DOCS)
    records = {key: RunRecord(key, "cpu", "fp32", "demo", run=1) for key in "ab"}
    for key, record in records.items():
        board.add_record(key, record)
    board.add("a", Scored(10.0, 400))
    board.add("b", Scored(30.0, 500))
    assert records["b"].perplexity_vs_reference == 3.0
    assert records["b"].perplexity_note == "vs a:cpu:fp32's perplexity; 500 tokens scored against its 400: " \
        "tokenizers differ"
