"""Answer quality over a comparison's prompts: each lane's agreement with the reference lane,
aggregated per prompt first, then over the prompts (issue 13, "quality" in the spirit of
OpenVINO's who-what-benchmark, but live and across runtimes).

Per prompt, a lane's figure is the **median over its runs** of that prompt (agreement %,
similarity; flagged when any run was). Over the prompt set it is the **mean of those per-prompt
medians**, so every prompt weighs the same, however many runs it had: a lane is not judged by one
prompt's many runs. The worst prompt is the one with the lowest agreement (then the lowest
similarity, then the first). A prompt where the lane has no agreement figure (every run failed;
no reference result; tokenizers that differ without a ``tokenizer.json`` to re-tokenise both
texts, e.g. an endpoint lane) is left out of the mean and listed with the reason. A prompt where
the lane *was* the reference (it is the yardstick: 100 % by definition) is left out too; a lane
that was the reference on every prompt is ``reference``.

The CLI's summary, the ranking's agreement (``bench/ranking.py``), the page's quality table and
the ``--json`` summary file all read this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from playground.engine import stats
from playground.engine.records import RunRecord, by_lane

Lane = tuple[str, str, str]  # (backend, device, precision), as ``records.by_lane`` groups them


@dataclass(frozen=True)
class PromptQuality:
    """One lane on one prompt: medians over its runs of that prompt."""

    prompt_index: int  # 0-based, as the records' ``prompt_index``
    agreement_pct: float | None
    text_similarity: float | None
    flagged: bool
    reference: bool  # this lane was the yardstick on this prompt
    note: str = ""  # why there is no agreement figure


@dataclass(frozen=True)
class LaneQuality:
    lane: Lane
    prompts: tuple[PromptQuality, ...]

    @property
    def name(self) -> str:
        return " ".join(part for part in self.lane if part)

    @property
    def reference(self) -> bool:
        """The yardstick on every prompt it answered."""
        return bool(self.prompts) and all(p.reference for p in self.prompts)

    @property
    def compared(self) -> list[PromptQuality]:
        """The prompts with an agreement figure (the mean's prompts)."""
        return [p for p in self.prompts if not p.reference and p.agreement_pct is not None]

    @property
    def mean_agreement_pct(self) -> float | None:
        return stats.mean([p.agreement_pct for p in self.compared])

    @property
    def mean_similarity(self) -> float | None:
        return stats.mean([p.text_similarity for p in self.prompts if not p.reference])

    @property
    def worst(self) -> PromptQuality | None:
        """The lowest agreement (then similarity), the first on ties."""
        compared = self.compared
        if not compared:
            return None
        return min(compared, key=lambda p: (p.agreement_pct, p.text_similarity or 0.0, p.prompt_index))

    @property
    def flagged(self) -> list[PromptQuality]:
        return [p for p in self.prompts if p.flagged]

    @property
    def not_computed(self) -> list[PromptQuality]:
        """Prompts without an agreement figure, each with its reason (``note``)."""
        return [p for p in self.prompts if not p.reference and p.agreement_pct is None]

    @property
    def reference_prompts(self) -> list[PromptQuality]:
        return [p for p in self.prompts if p.reference]

    def to_dict(self) -> dict:
        """The JSON summary's entry (``prompt`` numbers there are 0-based ``prompt_index``)."""
        worst = self.worst
        return {
            "backend": self.lane[0], "device": self.lane[1], "precision": self.lane[2],
            "reference": self.reference,
            "prompts": len(self.prompts),
            "mean_agreement_pct": _round(self.mean_agreement_pct, 2),
            "mean_text_similarity": _round(self.mean_similarity, 3),
            "worst_prompt_index": None if worst is None else worst.prompt_index,
            "worst_agreement_pct": None if worst is None else worst.agreement_pct,
            "flagged_prompts": [p.prompt_index for p in self.flagged],
            "not_computed": [{"prompt_index": p.prompt_index, "reason": p.note} for p in self.not_computed],
            "per_prompt": [{"prompt_index": p.prompt_index, "agreement_pct": p.agreement_pct,
                            "text_similarity": p.text_similarity, "flagged": p.flagged,
                            "reference": p.reference} for p in self.prompts],
        }


def lane_quality(records: Sequence[RunRecord]) -> list[LaneQuality]:
    """Every lane's quality over the prompts, lanes in the records' order; empty when nothing was
    compared with a reference (a single lane; every lane failed)."""
    if not any(r.reference or r.agreement_pct is not None or r.agreement_note.startswith("reference")
               for r in records):
        return []
    lanes = []
    for lane, runs in by_lane(records).items():
        by_prompt: dict[int, list[RunRecord]] = {}
        for record in runs:
            by_prompt.setdefault(record.prompt_index, []).append(record)
        lanes.append(LaneQuality(lane, tuple(prompt_quality(index, by_prompt[index])
                                             for index in sorted(by_prompt))))
    return lanes


def prompt_quality(index: int, runs: Sequence[RunRecord]) -> PromptQuality:
    """One lane's runs of one prompt: medians, any flag, or why there is no figure."""
    good = [r for r in runs if r.ok]
    if not good:
        reason = runs[0].error.splitlines()[0][:120] if runs and runs[0].error else "no run"
        return PromptQuality(index, None, None, False, False, f"failed: {reason}")
    flagged = any(r.agreement_flag for r in good)
    if all(r.agreement_note.startswith("reference") for r in good):
        return PromptQuality(index, 100.0, 1.0, flagged, True)
    compared = [r for r in good if not r.agreement_note.startswith("reference")]
    pct = stats.median([r.agreement_pct for r in compared])
    similarity = stats.median([r.text_similarity for r in compared])
    note = ""
    if pct is None:
        notes = [r.agreement_note for r in compared if r.agreement_note]
        note = notes[0] if notes else "no token ids to compare"
    return PromptQuality(index, _round(pct, 2), _round(similarity, 3), flagged, False, note)


def by_name(qualities: Sequence[LaneQuality]) -> dict[Lane, LaneQuality]:
    return {quality.lane: quality for quality in qualities}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
