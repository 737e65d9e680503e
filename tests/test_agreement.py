"""Answer agreement's pure functions and the reference judge, on hand-made ids and texts (ms)."""

from __future__ import annotations

import random
import time

import pytest

from playground.engine import agreement
from playground.engine.agreement import Agreement, compare, first_divergence, flag_outliers, token_agreement
from playground.engine.records import BackendSpec, RunRecord
from playground.engine.reference import (
    SAMPLING_NOTE,
    AgreementJudge,
    reference_order,
    resolve_choice,
    stop_token_ids,
)
from playground.models.tokens import encode
from playground.paths import DEMO_MODEL_DIR
from playground.settings import SettingsError

EOS = 9
PARIS = "The capital of France is Paris."
GARBAGE = "-al-al-al- and and and and and and and and and and and"


def test_token_agreement_counts_the_reference_positions() -> None:
    assert token_agreement([1, 2, 3, 4], [1, 2, 3, 4]) == (100.0, 4)
    assert token_agreement([1, 2, 0, 4], [1, 2, 3, 4]) == (75.0, 4)
    # a run that ends early disagrees on the reference's positions it never produced
    assert token_agreement([1, 2], [1, 2, 3, 4]) == (50.0, 4)
    # what a run says after the reference's answer ended is not compared
    assert token_agreement([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4]) == (100.0, 4)
    assert token_agreement([0, 1, 2, 3, 4], [1, 2, 3, 4]) == (0.0, 4)  # shifted by one token
    # stopped by the user: only what both produced counts
    assert token_agreement([1, 2], [1, 2, 3, 4], stopped=True) == (100.0, 2)
    assert token_agreement([], []) == (100.0, 0)
    assert token_agreement([5], []) == (0.0, 0)  # the reference ended at once, this one did not


def test_first_divergence() -> None:
    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 5, 3], [1, 2, 3]) == 1
    assert first_divergence([7], [1, 2, 3]) == 0
    assert first_divergence([1, 2], [1, 2, 3]) == 2  # where the shorter one ended


def test_compare_ignores_a_trailing_eos_only_one_runtime_streams() -> None:
    result = compare([1, 2, 3, EOS], [1, 2, 3], "a b c", "a b c", stop_ids={EOS})
    assert result == Agreement(100.0, None, 3, 1.0, 0)
    longer = compare([1, 2, 3, 4, 5, EOS], [1, 2, 3, EOS], "a b c d e", "a b c", stop_ids={EOS})
    assert (longer.agreement_pct, longer.first_divergence, longer.beyond_reference) == (100.0, 3, 2)
    # but an EOS in the middle is a real difference
    early = compare([1, EOS, 3], [1, 2, 3], "a", "a b c", stop_ids={EOS})
    assert early.first_divergence == 1 and early.agreement_pct == pytest.approx(200 / 3)
    # a stopped run is compared on the common prefix, so it is not a divergence
    stopped = compare([1, 2], [1, 2, 3, 4], "a b", "a b c d", stopped=True)
    assert (stopped.agreement_pct, stopped.first_divergence, stopped.compared) == (100.0, None, 2)
    # no ids (different tokenizers and no tokenizer.json): text similarity only
    assert compare(None, [1], "x", "x").agreement_pct is None


def test_text_similarity_is_word_level() -> None:
    assert agreement.text_similarity(PARIS, PARIS) == 1.0
    assert agreement.text_similarity("", "") == 1.0
    assert agreement.text_similarity("\n" * 32, PARIS) == 0.0
    assert agreement.text_similarity(GARBAGE, PARIS) < agreement.SIMILARITY_FLOOR
    drifted = "The capital city of France is Paris, known for the Eiffel tower."
    assert 0.5 < agreement.text_similarity(drifted, PARIS) < 1.0
    # long, repetitive garbage stays cheap (difflib takes seconds on it)
    started = time.perf_counter()
    score = agreement.text_similarity("and " * 4000, "the capital of France is Paris and it is " * 400)
    assert time.perf_counter() - started < 0.5 and score == pytest.approx(2 * 400 / 7600)


def _lcs_table(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        previous = 0
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], previous + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def test_bit_parallel_lcs_matches_the_textbook_table() -> None:
    rng = random.Random(7)
    for _ in range(300):
        a = [rng.choice("abcd") for _ in range(rng.randrange(0, 30))]
        b = [rng.choice("abcde") for _ in range(rng.randrange(0, 30))]
        assert agreement.lcs_length(a, b) == _lcs_table(a, b), (a, b)


def _agreement(pct: float | None, similarity: float) -> Agreement:
    return Agreement(pct, 0 if pct != 100 else None, 64, similarity)


def test_outlier_far_below_its_peers_is_flagged() -> None:
    verdicts, on_reference = flag_outliers(
        {
            "ort-int4": _agreement(100, 1.0),
            "ov-int8": _agreement(87.5, 0.9),
            "npu-int4": _agreement(1.6, 0.03),
        }
    )
    assert verdicts["npu-int4"].flagged and "agreement" in verdicts["npu-int4"].reason
    assert not verdicts["ort-int4"].flagged and not verdicts["ov-int8"].flagged
    assert not on_reference.flagged


def test_legitimate_drift_is_not_flagged() -> None:
    # what the demo model's int4 lanes do: early divergence, different but sensible text
    verdicts, _ = flag_outliers(
        {
            "ort": _agreement(18.75, 0.247),
            "ov": _agreement(4.17, 0.144),
            "optimum": _agreement(4.17, 0.144),
            "npu": _agreement(4.17, 0.194),
        }
    )
    assert not any(v.flagged for v in verdicts.values()), verdicts
    # drifting at token 9 against a peer that agrees fully: low agreement, sensible text
    assert not flag_outliers({"fp32": _agreement(100, 1.0), "int4": _agreement(37.5, 0.3)})[0]["int4"].flagged
    # a lone lane is only flagged when it has nothing in common with the reference
    assert not flag_outliers({"ov": _agreement(3.0, 0.2)})[0]["ov"].flagged
    assert flag_outliers({"npu": _agreement(3.0, 0.0)})[0]["npu"].flagged


def test_text_far_below_peers_is_flagged_even_with_low_agreement_everywhere() -> None:
    verdicts, _ = flag_outliers(
        {"a": _agreement(10, 0.45), "b": _agreement(12, 0.5), "c": _agreement(6, 0.07)}
    )
    assert [key for key, v in verdicts.items() if v.flagged] == ["c"]
    assert "similarity" in verdicts["c"].reason


def test_a_broken_reference_is_called_out_instead_of_everybody_else() -> None:
    results = {"a": _agreement(0, 0.02), "b": _agreement(0, 0.03)}
    texts = {"a": PARIS, "b": PARIS + " It is"}
    verdicts, on_reference = flag_outliers(results, texts)
    assert on_reference.flagged and not any(v.flagged for v in verdicts.values())
    # lanes that are broken differently do not accuse the reference
    verdicts, on_reference = flag_outliers(results, {"a": GARBAGE, "b": "\n" * 30})
    assert not on_reference.flagged and all(v.flagged for v in verdicts.values())


def test_auto_reference_is_the_highest_precision_ties_to_transformers() -> None:
    specs = [
        BackendSpec("onnxruntime-genai"),  # default int4
        BackendSpec("openvino-genai", "CPU", "int8"),
        BackendSpec("onnxruntime-genai", "cpu", "fp32"),
        BackendSpec("transformers"),  # default fp32
        BackendSpec("npu-library", "NPU", "fp16"),
    ]
    order = reference_order(specs)
    assert order[0] == specs[3].key  # fp32 tie goes to transformers
    assert order[1:] == [specs[2].key, specs[4].key, specs[1].key, specs[0].key]
    assert reference_order(specs, "auto (highest precision)") == order
    assert reference_order(specs, "onnxruntime-genai:cpu:fp32") == [specs[2].key]
    assert reference_order(specs, specs[1].key) == [specs[1].key]
    assert resolve_choice(specs, "openvino-genai") == specs[1].key
    with pytest.raises(SettingsError, match="matches several"):
        resolve_choice(specs, "onnxruntime-genai")
    with pytest.raises(SettingsError, match="not one of the selected"):
        resolve_choice(specs, "optimum-intel")


def _record(backend: str, ids: list[int], text: str, run: int = 1, digest: str = "same", **kw) -> RunRecord:
    record = RunRecord(backend, "cpu", "x", "m", new_tokens=len(ids), text=text, run=run, token_ids=ids, **kw)
    record.extra["prompt_ids_digest"] = digest
    return record


def _judge(order: list[str], greedy: bool = True, retokenise=lambda text: None) -> AgreementJudge:
    return AgreementJudge(order, greedy=greedy, stop_ids={EOS}, retokenise=retokenise)


def test_judge_updates_earlier_lanes_when_the_reference_arrives_last() -> None:
    judge = _judge(["ref", "good", "bad"])
    good = _record("good", [1, 2, 3, 4, EOS], PARIS)
    bad = _record("bad", [7, 7, 7, 7, 7, 7], GARBAGE)
    assert judge.add("good", good) == []  # the reference has not answered yet
    assert judge.add("bad", bad) == []
    reference = _record("ref", [1, 2, 3, 4], PARIS)
    changed = judge.add("ref", reference)
    assert {key for key, _ in changed} == {"ref", "good", "bad"}
    assert (reference.agreement_pct, reference.agreement_note) == (100.0, "reference")
    assert reference.reference == "ref:cpu:x"  # what it ran as: backend:device:precision
    assert (good.agreement_pct, good.first_divergence, good.text_similarity, good.agreement_flag) == (
        100.0,
        None,
        1.0,
        False,
    )
    assert bad.agreement_pct == 0.0 and bad.first_divergence == 0 and bad.agreement_flag
    assert bad.agreement_note and bad.reference == "ref:cpu:x"
    assert judge.finish() == []  # nothing left to settle


def test_judge_hands_over_to_the_next_lane_when_the_reference_fails() -> None:
    judge = _judge(["ref", "ort", "ov"])
    ort = _record("ort", [1, 2, 3], PARIS)
    ov = _record("ov", [1, 2, 5], PARIS)
    judge.add("ort", ort)
    judge.add("ov", ov)
    judge.add("ref", RunRecord("ref", "cpu", "fp32", "m", run=1, error="crashed"))
    assert ort.agreement_note == "reference" and ov.reference == "ort:cpu:x"
    assert ov.agreement_pct == pytest.approx(200 / 3, abs=0.01) and ov.first_divergence == 2


def test_judge_waits_then_settles_when_no_reference_comes() -> None:
    judge = _judge(["ref"])  # an explicit reference: no hand-over
    other = _record("other", [1], "a")
    assert judge.add("other", other) == []
    changed = judge.finish()
    assert changed == [("other", other)] and other.reference == "" and "no reference" in other.agreement_note


def test_judge_flags_nothing_when_sampling() -> None:
    judge = _judge(["ref", "a", "b"], greedy=False)
    judge.add("a", _record("a", [1, 2], PARIS))
    bad = _record("b", [5, 6], "\n\n\n")
    judge.add("b", bad)
    judge.add("ref", _record("ref", [1, 2], PARIS))
    assert bad.agreement_pct == 0.0 and not bad.agreement_flag and bad.agreement_note == SAMPLING_NOTE


def test_judge_compares_retokenised_text_when_tokenizers_differ() -> None:
    judge = _judge(["ref", "ov"], retokenise=lambda text: [len(word) for word in text.split()])
    ov = _record("ov", [900, 901], PARIS, digest="other")
    judge.add("ov", ov)
    judge.add("ref", _record("ref", [1, 2], PARIS))
    assert ov.agreement_pct == 100.0 and "re-tokenising" in ov.agreement_note
    # without a tokenizer to re-tokenise with: text similarity only
    judge = _judge(["ref", "ov"])
    ov = _record("ov", [900, 901], PARIS, digest="other")
    judge.add("ov", ov)
    judge.add("ref", _record("ref", [1, 2], PARIS))
    assert ov.agreement_pct is None and ov.text_similarity == 1.0 and "similarity only" in ov.agreement_note


def test_judge_groups_by_prompt_and_run_and_skips_warmups() -> None:
    judge = _judge(["ref", "a"])
    assert judge.add("ref", _record("ref", [1], "x", run=0)) == []
    first = _record("a", [1], "x", run=1)
    second = _record("a", [2], "y", run=2)
    judge.add("a", first)
    judge.add("a", second)
    judge.add("ref", _record("ref", [1], "x", run=2))
    assert first.reference == "" and second.agreement_pct == 0.0  # run 1 has no reference yet


def test_demo_model_stop_ids_and_retokenising() -> None:
    assert stop_token_ids(DEMO_MODEL_DIR)  # Phi-3 style end tokens from the model folder
    ids = encode(DEMO_MODEL_DIR, PARIS)
    assert ids and all(isinstance(i, int) for i in ids)


def test_the_reference_waits_for_a_better_lane_and_hands_over_when_one_ends_without() -> None:
    """One rule for agreement and perplexity: the first lane in order with a usable result; none
    while an earlier lane may still give one; a lane that ended without one hands over."""
    from playground.engine.reference import Handover

    results: dict[str, bool] = {"b": True}
    handover = Handover(["a", "b", "c"])
    assert handover.pick(results.get) is None  # "a" may still come
    assert handover.end("a") and not handover.end("a")
    assert handover.pick(results.get) == "b"
    results.update(a=False)  # a result that is not usable (a failed run) never waits
    assert Handover(["a", "b"]).pick(results.get) == "b"
    nothing = Handover(["a", "c"])
    assert nothing.pick({}.get) is None
    nothing.end_all()
    assert nothing.pick({}.get) == ""
