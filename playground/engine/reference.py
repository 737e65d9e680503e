"""Which lane of a comparison is the reference, and the agreement of every run with it.

The comparison feeds each finished run to ``AgreementJudge.add``; it returns the records
whose agreement fields changed (in sequential mode the reference may finish after the
others, and each new peer can change the outlier rule's median), so the comparison can tell
the page to redraw those panels. ``finish`` settles what is left when every lane ended.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from playground.backends import backend_classes
from playground.engine import agreement
from playground.engine.records import BackendSpec, RunRecord
from playground.settings import SettingsError

AUTO = "auto"
# fp32 > bf16 / fp16 > int8 > int4: the reference is the lane that rounds the least.
PRECISION_RANK = {"fp32": 4, "bf16": 3, "fp16": 3, "int8": 2, "int4": 1}
PREFERRED_BACKEND = "transformers"  # ties go to the plain PyTorch implementation
SAMPLING_NOTE = "sampling: agreement is only meaningful for greedy decoding (nothing flagged)"
RETOKENISED_NOTE = "tokenizers differ: compared after re-tokenising both texts"
TEXT_ONLY_NOTE = "tokenizers differ: text similarity only"


def effective_precision(spec: BackendSpec) -> str:
    if spec.precision:
        return spec.precision
    cls = backend_classes().get(spec.backend)
    return cls.default_precision if cls is not None else ""


def reference_order(specs: Sequence[BackendSpec], choice: str = AUTO) -> list[str]:
    """Lane keys in the order they serve as reference: the chosen one alone, or for ``auto``
    every lane by precision (then transformers first, then the selection order), so a failed
    reference hands over to the next best lane."""
    choice = (choice or AUTO).strip()
    if choice.lower() != AUTO and not choice.lower().startswith(AUTO + " "):
        return [resolve_choice(specs, choice)]

    def rank(item: tuple[int, BackendSpec]) -> tuple[int, int, int]:
        index, spec = item
        return (-PRECISION_RANK.get(effective_precision(spec), 0), spec.backend != PREFERRED_BACKEND, index)

    return [spec.key for _, spec in sorted(enumerate(specs), key=rank)]


def resolve_choice(specs: Sequence[BackendSpec], choice: str) -> str:
    """A lane key, or ``name[:device[:precision]]`` matching exactly one selected lane."""
    keys = [spec.key for spec in specs]
    if choice in keys:
        return choice
    try:
        wanted = BackendSpec.parse(choice)
    except ValueError as exc:
        raise SettingsError(f"reference: {exc}") from None
    matches = [
        spec.key
        for spec in specs
        if spec.backend == wanted.backend
        and (not wanted.device or wanted.device.lower() in (spec.device.lower(), "auto"))
        and (not wanted.precision or wanted.precision in (spec.precision, effective_precision(spec)))
    ]
    if len(matches) != 1:
        listed = ", ".join(keys)
        what = "matches several" if matches else "is not one"
        raise SettingsError(f"The reference {choice!r} {what} of the selected backends ({listed}).")
    return matches[0]


def stop_token_ids(model_dir: Path) -> set[int]:
    """The model's end-of-sequence ids (generation_config.json and config.json)."""
    ids: set[int] = set()
    for name in ("generation_config.json", "config.json"):
        try:
            value = json.loads((model_dir / name).read_text(encoding="utf-8")).get("eos_token_id")
        except (OSError, ValueError, AttributeError):
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, int):
                ids.add(item)
    return ids


Retokenise = Callable[[str], list[int] | None]
Changed = list[tuple[str, RunRecord]]  # (lane key, record whose agreement fields changed)


@dataclass
class Handover:
    """Which lane serves as the reference, for agreement and for perplexity alike: the first lane
    in preference order with a usable result; none yet while an earlier lane may still give one;
    and a lane that ended without one hands over to the next."""

    order: list[str]  # lane keys, the preferred reference first
    ended: set[str] = field(default_factory=set)  # lanes that will produce nothing more

    def end(self, key: str) -> bool:
        """Mark ``key`` ended; False when it already was (nothing can change)."""
        if key in self.ended:
            return False
        self.ended.add(key)
        return True

    def end_all(self) -> None:
        self.ended.update(self.order)

    def pick(self, usable: Callable[[str], bool | None]) -> str | None:
        """``usable(key)``: True for a usable result, False for one that is not, None for none yet.
        Returns the reference's key, None while it may still come, or "" when no lane can be it."""
        for key in self.order:
            state = usable(key)
            if state:
                return key
            if state is None and key not in self.ended:
                return None  # still running: wait for it
        return ""


class AgreementJudge:
    """Compares every run with the reference run of the same prompt and run number."""

    def __init__(
        self,
        order: list[str],
        greedy: bool,
        stop_ids: set[int],
        retokenise: Retokenise,
    ) -> None:
        self.handover = Handover(order)
        self.greedy = greedy
        self.stop_ids = stop_ids
        self.retokenise = retokenise
        self.groups: dict[tuple[int, int], dict[str, RunRecord]] = {}

    def add(self, key: str, record: RunRecord) -> Changed:
        """A measured run finished (or failed); returns the records whose agreement changed."""
        if record.run < 1:
            return []
        group = self.groups.setdefault((record.prompt_index, record.run), {})
        group[key] = record
        return self._judge(group)

    def lane_ended(self, key: str) -> Changed:
        """A lane will produce nothing more (done, failed): a reference that failed hands over."""
        return self._judge_all() if self.handover.end(key) else []

    def finish(self) -> Changed:
        """Every lane ended: judge the groups whose reference never came."""
        self.handover.end_all()
        return self._judge_all()

    def _judge_all(self) -> Changed:
        changed: Changed = []
        for group in self.groups.values():
            changed += self._judge(group)
        return changed

    def _reference(self, group: dict[str, RunRecord]) -> str | None:
        """The first lane in preference order with a result here; None while one may still come."""
        return self.handover.pick(lambda key: None if group.get(key) is None else group[key].ok)

    def _judge(self, group: dict[str, RunRecord]) -> Changed:
        before = {key: _fields(record) for key, record in group.items()}
        reference_key = self._reference(group)
        if reference_key is None:
            return []
        if reference_key == "":
            for record in group.values():
                if record.ok:
                    _set(record, "", None, None, None, False, "no reference result to compare with")
        else:
            self._compare(group, reference_key)
        return [(key, record) for key, record in group.items() if _fields(record) != before[key]]

    def _compare(self, group: dict[str, RunRecord], reference_key: str) -> None:
        reference = group[reference_key]
        name = describe(reference)
        _set(reference, name, 100.0, None, 1.0, False, "reference")
        results: dict[str, agreement.Agreement] = {}
        notes: dict[str, str] = {}
        for key, record in group.items():
            if key == reference_key or not record.ok:
                continue
            ids, reference_ids, notes[key] = self._comparable_ids(record, reference)
            results[key] = agreement.compare(
                ids,
                reference_ids,
                record.text,
                reference.text,
                self.stop_ids,
                stopped=record.stopped or reference.stopped,
            )
        verdicts, on_reference = agreement.flag_outliers(results, {key: group[key].text for key in results})
        if not self.greedy:  # sampled answers differ by design: report, never flag
            verdicts = {key: agreement.Verdict(False, SAMPLING_NOTE) for key in results}
            reference.agreement_note = f"reference; {SAMPLING_NOTE}"
        elif on_reference.flagged:
            reference.agreement_flag, reference.agreement_note = True, f"reference: {on_reference.reason}"
        for key, result in results.items():
            verdict = verdicts[key]
            beyond = result.beyond_reference
            longer = f"{beyond} more token(s) after the reference ended" if beyond else ""
            note = "; ".join(filter(None, [verdict.reason, notes[key], longer]))
            record = group[key]
            _set(
                record,
                name,
                result.agreement_pct,
                result.first_divergence,
                result.text_similarity,
                verdict.flagged,
                note,
            )

    def _comparable_ids(
        self, record: RunRecord, reference: RunRecord
    ) -> tuple[list[int] | None, list[int] | None, str]:
        """The lanes' own ids when their tokenizers agree on the prompt; otherwise both texts
        re-tokenised with the model folder's tokenizer; otherwise none (text only)."""
        mine = record.extra.get("prompt_ids_digest", "")
        theirs = reference.extra.get("prompt_ids_digest", "")
        if mine and mine == theirs and (record.token_ids or not record.new_tokens):
            return record.token_ids, reference.token_ids, ""
        ids, reference_ids = self.retokenise(record.text), self.retokenise(reference.text)
        if ids is None or reference_ids is None:
            return None, None, TEXT_ONLY_NOTE
        return ids, reference_ids, RETOKENISED_NOTE


def describe(record: RunRecord) -> str:
    """What a record calls its reference: the spec it really ran as, ``name:device:precision``
    (readable in a panel, and valid as a ``--reference`` choice)."""
    return ":".join([record.backend, record.device, record.precision])


def _fields(record: RunRecord) -> tuple:
    return (
        record.reference,
        record.agreement_pct,
        record.first_divergence,
        record.text_similarity,
        record.agreement_flag,
        record.agreement_note,
    )


def _set(
    record: RunRecord,
    reference: str,
    pct: float | None,
    divergence: int | None,
    similarity: float | None,
    flagged: bool,
    note: str,
) -> None:
    record.reference = reference
    record.agreement_pct = None if pct is None else round(pct, 2)
    record.first_divergence = divergence
    record.text_similarity = None if similarity is None else round(similarity, 3)
    record.agreement_flag = flagged
    record.agreement_note = note
