"""Answer agreement: how far one run's answer is from the reference run's, and when that is broken.

Pure functions on token ids and text, no runtime needed (``tests/test_agreement.py``).

Definitions (the README's "Answer agreement" section says the same for users):

- **Token agreement** (``agreement_pct``): both id lists lose their trailing end-of-sequence
  tokens first (some runtimes stream the EOS token, others do not). Then it is the share of the
  *reference's* positions ``i`` where the run generated the same id: how much of the reference
  answer the run reproduced, position by position. A run that ends before the reference did
  misses the rest (those positions count as different), so a lane that stops after three right
  tokens does not score 100 %. What a run says after the reference's answer ended has nothing to
  be compared with and is not counted (``max(len)`` was tried and rejected: on SmolLM2 an int4
  lane that answered "The capital of France is Paris" and rambled on for 40 tokens scored 12 %
  and looked as broken as real garbage); ``beyond_reference`` says how many tokens it added,
  and the first divergence and text similarity show it. When the user stopped a run, only
  ``min(len)`` positions (what both produced) are compared. Positional: after one inserted token
  the rest is shifted and rarely matches again, which is why the first divergence and the
  text similarity are reported beside it.
- **First divergence** (``first_divergence``): the 0-based index of the first position where the
  ids differ, or where the shorter run ended; ``None`` when the compared ids are identical.
- **Text similarity** (``text_similarity``): 2 x the longest common subsequence / the total
  length (the Indel similarity, what ``difflib.SequenceMatcher.ratio()`` approximates), over the
  words and punctuation marks of the two texts (``\\w+|[^\\w\\s]``). Words, not characters: two
  unrelated English texts share most letters (a character ratio of ~0.3) but few words in
  order, so garbage scores near 0 while a sensible answer that drifted keeps a good part of
  its words; and it costs milliseconds where a character-level comparison of long answers
  takes seconds.
- **Flag**: see ``flag_outliers``.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass

SIMILARITY_WORDS = 10_000  # more than 4,096 tokens make: a bound on time and memory only
# The outlier rule's constants (flag_outliers says why these values).
PEER_RATIO = 0.5  # under half the median of the other compared lanes ...
AGREEMENT_GAP_PCT = 25.0  # ... and this many points below it: far below its peers
PEER_SIMILARITY_FLOOR = 0.1  # only a text sharing less than this with the reference is flagged
SIMILARITY_FLOOR = 0.05  # nothing in common with the reference, peers or not
PEER_CONSENSUS = 0.5  # lanes whose texts are this similar among themselves agree with each other

_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class Agreement:
    """One run compared with the reference run."""

    agreement_pct: float | None  # None when there are no token ids to compare
    first_divergence: int | None
    compared: int  # token positions compared
    text_similarity: float
    beyond_reference: int = 0  # tokens the run generated after the reference's answer ended


def trim_stop(ids: Sequence[int], stop_ids: Collection[int]) -> list[int]:
    """The ids without trailing end-of-sequence tokens."""
    end = len(ids)
    while end and ids[end - 1] in stop_ids:
        end -= 1
    return list(ids[:end])


def first_divergence(ids: Sequence[int], reference: Sequence[int]) -> int | None:
    for index, (a, b) in enumerate(zip(ids, reference, strict=False)):
        if a != b:
            return index
    return None if len(ids) == len(reference) else min(len(ids), len(reference))


def token_agreement(ids: Sequence[int], reference: Sequence[int], stopped: bool = False) -> tuple[float, int]:
    """(% of the reference's positions with the same id, positions compared); see the module
    docstring. ``stopped``: the run was cut short, compare only what both produced."""
    compared = min(len(ids), len(reference)) if stopped else len(reference)
    if compared == 0:  # the reference said nothing: agreeing means saying nothing too
        return (100.0 if stopped or not ids else 0.0), 0
    matches = sum(1 for a, b in zip(ids[:compared], reference, strict=False) if a == b)
    return 100.0 * matches / compared, compared


def words(text: str) -> list[str]:
    return _WORD.findall(text)[:SIMILARITY_WORDS]


def text_similarity(text: str, reference: str) -> float:
    """2 x LCS / total over the words of both texts, in [0, 1]; 1.0 for two empty texts."""
    a, b = words(text), words(reference)
    if not a and not b:
        return 1.0
    return 2 * lcs_length(a, b) / (len(a) + len(b))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyrö 2004): one row of the
    dynamic programme is one Python integer, so 4,000 x 4,000 words take milliseconds where
    ``difflib`` needs seconds (it is quadratic on repeated words, exactly what garbage is)."""
    if len(a) < len(b):
        a, b = b, a
    masks: dict[str, int] = {}
    for index, word in enumerate(b):
        masks[word] = masks.get(word, 0) | (1 << index)
    full = (1 << len(b)) - 1
    row = full
    for word in a:
        match = row & masks.get(word, 0)
        row = ((row + match) | (row - match)) & full
    return len(b) - row.bit_count()


def compare(
    ids: Sequence[int] | None,
    reference_ids: Sequence[int] | None,
    text: str,
    reference_text: str,
    stop_ids: Collection[int] = (),
    stopped: bool = False,
) -> Agreement:
    """Compare one run with the reference; ``ids`` None = not comparable (text similarity only)."""
    similarity = text_similarity(text, reference_text)
    if ids is None or reference_ids is None:
        return Agreement(None, None, 0, similarity)
    a, b = trim_stop(ids, stop_ids), trim_stop(reference_ids, stop_ids)
    if stopped:
        shorter = min(len(a), len(b))
        a, b = a[:shorter], b[:shorter]
    pct, compared = token_agreement(a, b, stopped)
    return Agreement(pct, first_divergence(a, b), compared, similarity, max(0, len(a) - len(b)))


@dataclass(frozen=True)
class Verdict:
    """The outlier rule's decision for one lane of a group (same prompt and run)."""

    flagged: bool
    reason: str = ""


def flag_outliers(
    results: dict[str, Agreement], texts: dict[str, str] | None = None
) -> tuple[dict[str, Verdict], Verdict]:
    """Flag the runs far below their peers; returns (verdict per lane, verdict on the reference).

    ``results`` holds every non-reference lane of one prompt and run; a lane's peers are the
    others. A lane is only ever flagged when its text shares little with the reference's (text
    similarity under 0.1): two sensible answers, even ones that drifted apart, keep their
    function words and punctuation in order (0.14-0.25 measured on the demo model's int4
    drifts, 0.19-0.8 on SmolLM2's), garbage does not (0.03-0.08 for the NPU library's int4 on
    SmolLM2). Token agreement alone never flags: an int4 lane that diverges at token 9 has
    37 % against an fp32 peer's 100 %, and is merely drifting. Under that similarity, it is
    flagged when one of these holds:

    1. **agreement far below its peers**: under half their median token agreement and at least
       25 points below it (the gap keeps low, noisy values — 4 % against 19 %, wherever the
       first divergence happened to fall — from counting);
    2. **text far below its peers**: under half their median text similarity;
    3. **nothing in common** with the reference (similarity under 0.05), peers or not: an empty
       answer, a stream of newlines, "-al-al-al- and and and" against a real sentence.

    When two or more lanes are all under 0.1 *and* their texts agree with each other (mean
    pairwise similarity at least 0.5), the reference is the odd one out: no lane is flagged
    and the reference's verdict says it looks broken (``texts``: the lanes' texts).
    """
    low = {key for key, result in results.items() if result.text_similarity < PEER_SIMILARITY_FLOOR}
    if texts and len(results) >= 2 and low == set(results) and _consensus(list(texts.values())):
        reason = "every other lane disagrees with this reference but they agree with each other"
        return {key: Verdict(False, "the reference looks broken") for key in results}, Verdict(True, reason)
    return {key: _verdict(key, results) for key in results}, Verdict(False)


def _verdict(key: str, results: dict[str, Agreement]) -> Verdict:
    result = results[key]
    pct, similarity = result.agreement_pct, result.text_similarity
    if similarity >= PEER_SIMILARITY_FLOOR:
        return Verdict(False)
    peers = [r for k, r in results.items() if k != key]
    peer_pcts = [r.agreement_pct for r in peers if r.agreement_pct is not None]
    if pct is not None and peer_pcts:
        median = statistics.median(peer_pcts)
        if pct < PEER_RATIO * median and median - pct >= AGREEMENT_GAP_PCT:
            return Verdict(True, f"token agreement {pct:.0f}% against {median:.0f}% for the other lanes")
    if peers:
        median = statistics.median(r.text_similarity for r in peers)
        if similarity < PEER_RATIO * median:
            return Verdict(True, f"text similarity {similarity:.2f} against {median:.2f} for the other lanes")
    if similarity < SIMILARITY_FLOOR:
        return Verdict(True, f"the text has nothing in common with the reference's ({similarity:.2f})")
    return Verdict(False)


def _consensus(texts: list[str]) -> bool:
    pairs = [text_similarity(a, b) for index, a in enumerate(texts) for b in texts[index + 1 :]]
    return bool(pairs) and statistics.fmean(pairs) >= PEER_CONSENSUS
