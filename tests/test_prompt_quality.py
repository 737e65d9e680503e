"""Answer quality over a prompt set: the shipped sets and their names, the aggregation over a real
comparison's records (scripted lanes), the ranking, CLI, JSON and page views of it, and the CLI on
the demo model with two real runtimes (slow)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from playground.bench import cli, tables
from playground.bench.ranking import lane_figures
from playground.engine import prompt_sets
from playground.engine.answer_quality import lane_quality
from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.parameters import RunParameters, SettingsError
from playground.engine.records import BackendSpec, RunRecord
from playground.paths import REPO_ROOT
from playground.settings import GenerationSettings
from playground.ui.controller import Controller
from playground.ui.results import quality_markdown

# The second lane says half of the reference's answer on the second prompt only.
PROMPTS = ["tokens=8 delay=0", "tokens=8 delay=0 load-slow:tokens=4", "tokens=8 delay=0"]


def test_the_shipped_sets() -> None:
    assert {"general", "demo"} <= set(prompt_sets.names())
    for name in ("general", "demo"):
        chosen = prompt_sets.load(name)
        assert 6 <= len(chosen.prompts) <= 10 and chosen.description, name
        assert all(p.strip() == p and p and not p.startswith("#") for p in chosen.prompts)
        assert len(set(chosen.prompts)) == len(chosen.prompts)
    assert "What is the capital of France?" in prompt_sets.load("general").prompts
    assert "What is the for statement?" in prompt_sets.load("demo").prompts  # the demo's own kind
    assert prompt_sets.choices()[0] == ("none (the prompt above)", "")
    assert ("general (8 prompts)", "general") in prompt_sets.choices()
    assert "general (8 prompts): " in prompt_sets.describe()
    assert prompt_sets.parse("# what\n\n a \n# more\nb\n") == ("what", ("a", "b"))


@pytest.mark.parametrize("name", ["../general", "general.txt", "/etc/passwd", "prompt-sets/general",
                                  "GENERAL", "general ", "..", "", "list", "x" * 200, "gen\x00eral", 3, None,
                                  ["general"]])
def test_a_set_is_picked_by_name_only(name: object) -> None:
    with pytest.raises(SettingsError, match="pick one of demo, general"):
        prompt_sets.load(name)


def test_a_prompt_set_replaces_the_prompt_never_both() -> None:
    params = RunParameters.parse({"prompt_set": "demo"})
    assert params.prompts() == list(prompt_sets.load("demo").prompts)
    assert RunParameters.parse({"prompt": "Hi"}).prompts() == ["Hi"]
    with pytest.raises(SettingsError, match="clear the prompt"):
        RunParameters.parse({"prompt": "Hi", "prompt_set": "demo"}).prompts()
    with pytest.raises(SettingsError, match=r"Unknown prompt set '\.\./\.\./etc/passwd'"):
        RunParameters.parse({"prompt_set": "../../etc/passwd"}).to_request([BackendSpec("scripted")])
    with pytest.raises(SettingsError, match="the limit is 40"):  # bounded before it is even looked up
        RunParameters.parse({"prompt_set": "a" * 41})


def test_the_cli_takes_a_set_alone() -> None:
    parse = cli.build_parser().parse_args
    request = cli.build_request(parse(["--backends", "scripted", "--prompt-set", "general"]))
    assert request.prompts == list(prompt_sets.load("general").prompts)
    for extra in (["--prompt", "Hi"], ["--prompts-file", "prompts.txt"]):
        with pytest.raises(SettingsError, match="brings its own prompts"):
            cli.build_request(parse(["--backends", "scripted", "--prompt-set", "general", *extra]))
    swept = parse(["--backends", "scripted", "--prompt-set", "general", "--sweep", "128"])
    with pytest.raises(SettingsError, match="--sweep builds its own prompts"):
        cli.sweep_prompts(swept, cli.build_request(swept), None)  # refused before the model is read


@pytest.mark.usefixtures("scripted_backend")  # and a cache of the test's own for the CLI's log
def test_the_cli_lists_the_sets(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--prompt-set", "list"]) == 0
    out = capsys.readouterr().out
    assert "demo (8 prompts)" in out and "  1. What is the capital of France?" in out
    assert cli.main(["--prompt-set", "../x", "--backends", "scripted", "--no-history"]) == 2
    assert "pick one of demo, general" in capsys.readouterr().err


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[RunRecord]:
    """Two scripted lanes, three prompts, three runs each: the second lane (load-slow) gives half
    the reference's answer on prompt 2 and the same answer elsewhere."""
    mp = pytest.MonkeyPatch()
    from playground.backends.scripted_backend import ENABLE_ENV

    mp.setenv(ENABLE_ENV, "1")
    mp.setenv("PLAYGROUND_CACHE", str(tmp_path_factory.mktemp("quality-cache")))
    try:
        request = ComparisonRequest(
            prompts=PROMPTS, specs=[BackendSpec.parse("scripted"), BackendSpec.parse("scripted::load-slow")],
            settings=GenerationSettings(max_new_tokens=16, stop_at_eos=False), warmup=0, runs=3)
        comparison = Comparison(request)
        list(comparison.events())
    finally:
        mp.undo()
    assert all(r.ok for r in comparison.records), [r.error for r in comparison.records]
    return comparison.records


def test_quality_is_the_mean_over_prompts_of_each_prompts_median(records: list[RunRecord]) -> None:
    reference, other = lane_quality(records)
    assert reference.reference and reference.name == "scripted CPU scripted"
    assert reference.mean_agreement_pct is None and reference.worst is None  # the yardstick
    assert not other.reference and len(other.prompts) == 3
    assert [p.agreement_pct for p in other.prompts] == [100.0, 50.0, 100.0]
    assert other.mean_agreement_pct == pytest.approx(250 / 3)
    assert other.worst is not None and other.worst.prompt_index == 1 and other.worst.agreement_pct == 50.0
    assert other.mean_similarity == pytest.approx((1 + 2 * 4 / 12 + 1) / 3, abs=1e-3)
    assert not other.flagged and not other.not_computed
    # the median over all nine runs says 100: one prompt's runs outvote the others
    runs = [r.agreement_pct for r in records if r.precision == "load-slow"]
    assert len(runs) == 9 and statistics.median(runs) == 100.0
    # the ranking judges the lane by the prompt set, the reference stays the yardstick
    figures = {lane.lane: lane for lane in lane_figures(records)}
    assert figures["scripted CPU load-slow"].agreement_pct == pytest.approx(250 / 3)
    assert figures["scripted CPU scripted"].reference
    assert figures["scripted CPU scripted"].quality(by_perplexity=False) == 100.0


def test_the_cli_summary_json_and_page_table(records: list[RunRecord]) -> None:
    text = tables.format_quality(lane_quality(records), PROMPTS)
    assert text.startswith("quality over 3 prompts, against scripted CPU scripted"), text
    lines = text.splitlines()
    assert lines[1].split() == ["lane", "mean", "agree", "%", "mean", "sim", "worst", "prompt", "flagged",
                                "not", "computed"]
    assert lines[3].split()[:4] == ["scripted", "CPU", "scripted", "ref"]
    assert lines[4].split() == ["scripted", "CPU", "load-slow", "83.3", "0.89", "#2", "(50.0", "%)", "0/3",
                                "-"]
    assert lines[5] == f"  #2: {PROMPTS[1]}"
    request = ComparisonRequest(prompts=PROMPTS, specs=[])
    summary = json.loads(json.dumps(cli.quality_json(lane_quality(records), request, records)))
    assert summary["prompts"] == PROMPTS and summary["reference"] == ["scripted:CPU:scripted"]
    lane = summary["lanes"][1]
    assert (lane["precision"], lane["mean_agreement_pct"], lane["worst_prompt_index"]) == \
        ("load-slow", 83.33, 1)
    assert [p["agreement_pct"] for p in lane["per_prompt"]] == [100.0, 50.0, 100.0]
    assert summary["lanes"][0]["reference"] and summary["lanes"][0]["mean_agreement_pct"] is None
    assert cli.quality_json_path(Path("out/run.json")) == Path("out/run.quality.json")
    page = quality_markdown(records, PROMPTS)
    assert "**Answer quality over the 3 prompts**" in page
    assert "| scripted CPU scripted | reference |" in page
    assert ("| scripted CPU load-slow | 83.3 | 0.89 | #2 (50.0 %): tokens=8 delay=0 load-slow:tokens=4 "
            "| 0/3 |") in page
    assert quality_markdown(records, PROMPTS[:1]) == ""  # one prompt: the table's rows say it


def test_prompts_without_a_figure_say_why() -> None:
    def run(precision: str, index: int, **fields: object) -> RunRecord:
        fields = {"reference": "x:CPU:fp32", **fields}
        return RunRecord(backend="x", device="CPU", precision=precision, model="m", run=1, prompt_index=index,
                         **fields)

    records = [
        run("fp32", 0, agreement_pct=100.0, text_similarity=1.0, agreement_note="reference"),
        run("fp32", 1, agreement_pct=100.0, text_similarity=1.0, agreement_note="reference"),
        run("fp32", 2, agreement_pct=100.0, text_similarity=1.0, agreement_note="reference"),
        run("api", 0, agreement_pct=None, text_similarity=0.5, agreement_note="tokenizers differ: text "
            "similarity only"),
        run("api", 1, agreement_pct=20.0, text_similarity=0.1, agreement_flag=True, agreement_note="far off"),
        run("api", 2, error="BackendError: the server went away\nTraceback"),
    ]
    _, lane = lane_quality(records)
    assert lane.mean_agreement_pct == 20.0 and lane.mean_similarity == pytest.approx(0.3)
    assert [p.prompt_index for p in lane.flagged] == [1]
    assert [(p.prompt_index, p.note) for p in lane.not_computed] == [
        (0, "tokenizers differ: text similarity only"), (2, "failed: BackendError: the server went away")]
    text = tables.format_quality(lane_quality(records), ["a", "b", "c"])
    assert "x CPU api: no agreement on prompt(s) 1: tokenizers differ: text similarity only" in text
    assert "x CPU api: no agreement on prompt(s) 3: failed: BackendError" in text
    assert lane_quality([run("api", 0, reference="")]) == []  # nothing was compared


def test_choosing_a_set_on_the_page_clears_the_prompt_box() -> None:
    box = Controller.prompt_set_chosen("demo")
    assert box.value == "" and "1. What is the for statement?" in box.placeholder
    assert Controller.prompt_set_chosen("").placeholder.startswith("Ask something")


def test_compare_runs_a_prompt_set_by_name(scripted_app) -> None:
    from gradio_client import Client

    client = Client(scripted_app.url, verbose=False)

    def compare(prompt: str, prompt_set: str) -> dict:
        return client.predict(api_name="/compare", prompt=prompt, backends="scripted", prompt_set=prompt_set,
                              max_new_tokens=4, runs=1)

    result = compare("", "demo")
    assert result["ok"], result
    assert [r["prompt_index"] for r in result["records"]] == list(range(8))
    refused = compare("", "../../etc/passwd")
    assert not refused["ok"] and "Unknown prompt set '../../etc/passwd'" in refused["error"]
    assert "clear the prompt" in compare("Hi", "demo")["error"]


@pytest.mark.slow
def test_the_cli_on_the_demo_model_over_a_prompt_set(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = subprocess.run(
        [sys.executable, "-m", "playground.bench", "--backends", "transformers,onnxruntime-genai:cpu:int4",
         "--prompt-set", "demo", "--runs", "1", "--warmup", "0", "--max-new-tokens", "12", "--ignore-eos",
         "--no-history", "--json", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    assert "quality over 8 prompts, against transformers cpu fp32" in text, text
    row = next(line for line in text.splitlines() if line.startswith("onnxruntime-genai cpu int4  "))
    assert "/8" in row and "#" in row, row
    records = json.loads(out.read_text())
    assert isinstance(records, list) and len(records) == 16  # the records file is unchanged in kind
    assert sorted({r["prompt_index"] for r in records}) == list(range(8))
    summary = json.loads((tmp_path / "out.quality.json").read_text())
    assert summary["prompts"] == list(prompt_sets.load("demo").prompts)
    reference, int4 = summary["lanes"]
    assert reference["reference"] and reference["backend"] == "transformers"
    assert int4["prompts"] == 8 and 0 <= int4["mean_agreement_pct"] <= 100
    per_prompt = {p["prompt_index"]: p["agreement_pct"] for p in int4["per_prompt"]}
    assert int4["worst_agreement_pct"] == min(per_prompt.values()) == per_prompt[int4["worst_prompt_index"]]
    assert int4["mean_agreement_pct"] == pytest.approx(statistics.fmean(per_prompt.values()), abs=0.01)
