"""Quality next to speed (issue 13): each lane's perplexity on a held-out text shipped with the
project, and its ratio to the reference lane's.

The engine asks a lane's worker (``protocol.Score``) after its runs when the request asks for
quality; the worker answers from its runtime's own logits (``Backend.perplexity``) or says why it
cannot (``Scored.note``). ``PerplexityBoard`` keeps the answers and sets the records' fields; the
reference is the first lane in the agreement's preference order that has a perplexity (the
highest precision one for ``auto``), so a lane without logits hands over to the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from playground.engine.protocol import Scored
from playground.engine.records import RunRecord
from playground.engine.reference import Handover, describe
from playground.paths import DEMO_MODEL_DIR, REPO_ROOT

HELDOUT_DIR = REPO_ROOT / "assets" / "heldout"
# The demo model learnt Python's docs: it is scored on docs-style text it never saw; real models
# on plain English prose.
PYTHON_DOCS = "python-docs.txt"
ENGLISH_PROSE = "english-prose.txt"
MAX_TOKENS = 1024  # tokens of the text scored at most (both texts are shorter with these tokenizers)


@dataclass(frozen=True)
class HeldOut:
    name: str  # the file's name in assets/heldout/
    text: str


def heldout_for(model_dir: Path) -> HeldOut:
    """The held-out text a model is scored on."""
    name = PYTHON_DOCS if model_dir.resolve() == DEMO_MODEL_DIR.resolve() else ENGLISH_PROSE
    return HeldOut(name, (HELDOUT_DIR / name).read_text(encoding="utf-8").strip())


Changed = list[tuple[str, RunRecord]]


class PerplexityBoard:
    """Every lane's answer to ``Score``, and what it makes of its records."""

    def __init__(self, order: list[str], text: str) -> None:
        self.handover = Handover(order)  # lane keys in the order they serve as reference
        self.text = text
        self.scored: dict[str, Scored] = {}
        self.records: dict[str, list[RunRecord]] = {}

    def add_record(self, key: str, record: RunRecord) -> None:
        self.records.setdefault(key, []).append(record)

    def add(self, key: str, scored: Scored) -> Changed:
        self.scored[key] = scored
        return self._apply()

    def lane_ended(self, key: str) -> Changed:
        """The lane will score nothing (more): a reference that had no perplexity hands over."""
        return self._apply() if self.handover.end(key) else []

    def finish(self) -> Changed:
        """Every lane ended: ratios to the best reference there is."""
        self.handover.end_all()
        return self._apply() if self.scored else []

    def reference(self) -> str | None:
        """The first lane in order with a perplexity; None while a better one may still come."""
        def usable(key: str) -> bool | None:
            scored = self.scored.get(key)
            return None if scored is None else scored.perplexity is not None

        return self.handover.pick(usable)

    def _apply(self) -> Changed:
        reference = self.reference()
        base = self.scored[reference].perplexity if reference else None
        shown = reference or ""
        if reference and self.records.get(reference):
            shown = describe(self.records[reference][0])
        changed: Changed = []
        for key, scored in self.scored.items():
            ratio = round(scored.perplexity / base, 3) if base and scored.perplexity is not None else None
            note = scored.note
            if scored.perplexity is not None and reference and key != reference:
                note = f"vs {shown}'s perplexity"
                theirs = self.scored[reference].tokens
                if scored.tokens != theirs:  # another tokenizer: per-token figures differ by design
                    note += f"; {scored.tokens} tokens scored against its {theirs}: tokenizers differ"
            elif key == reference and len(self.scored) > 1:
                note = "reference perplexity"
            for record in self.records.get(key, []):
                if not record.ok:
                    continue
                before = (record.perplexity, record.perplexity_vs_reference, record.perplexity_note)
                record.perplexity = None if scored.perplexity is None else round(scored.perplexity, 4)
                record.perplexity_tokens = scored.tokens or None
                record.perplexity_text = self.text
                record.perplexity_vs_reference = ratio
                record.perplexity_note = note
                if (record.perplexity, record.perplexity_vs_reference, record.perplexity_note) != before:
                    changed.append((key, record))
        return changed


def failed(message: str) -> Scored:
    """What a lane whose ``Score`` failed (a runtime error) records: no perplexity, and why."""
    return Scored(None, note=f"perplexity failed: {message}")
