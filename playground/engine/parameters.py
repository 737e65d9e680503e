"""The run parameters as a strict pydantic model, built from their one declaration (``run_fields``).

The CLI's options (``bench/cli.py``), the page's widgets (``ui/form.py``) and the ``/compare``
API's signature (``ui/api.py``) are all derived from ``RunParameters``, so they cannot disagree.
Validation is strict: no coercion of strings, booleans or non-finite numbers, because a shared
page is hostile and a silent ``"false"`` -> ``True`` would run something nobody asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from playground.engine.records import BackendSpec
from playground.engine.run_fields import (
    DECODINGS,
    FIELDS,
    MAX_NEW_TOKENS_LIMIT,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MODES,
    REFERENCE_AUTO,
    Decoding,
    Mode,
    SettingsError,
)

if TYPE_CHECKING:
    from playground.engine.comparison import ComparisonRequest
    from playground.settings import GenerationSettings

__all__ = ["DECODINGS", "MAX_NEW_TOKENS_LIMIT", "MAX_PROMPT_CHARS", "MAX_SEED", "MODES", "REFERENCE_AUTO",
           "Decoding", "Mode", "RunParameters", "SettingsError"]

BOUNDS = ("ge", "le", "max_length", "allow_inf_nan")


def declare(default: Any, description: str, **options: Any) -> Any:
    """The pydantic field of one declaration (``run_fields.Declared.options``): bounds go to
    pydantic, the rest is the front ends' metadata (``meta``)."""
    bounds = {key: options.pop(key) for key in BOUNDS if key in options}
    return Field(default, description=description, json_schema_extra=options, **bounds)


class _Run(BaseModel):
    """What one comparison run is asked to do (the backends and model are chosen by name)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    @property
    def do_sample(self) -> bool:
        return self.decoding == "sampling"

    def generation(self) -> GenerationSettings:
        """The backends' view (``settings.GenerationSettings``)."""
        from playground.settings import GenerationSettings

        return GenerationSettings(max_new_tokens=self.max_new_tokens, do_sample=self.do_sample,
                                  temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                                  stop_at_eos=self.stop_at_eos)

    def to_request(self, specs: Sequence[BackendSpec], **engine: Any) -> ComparisonRequest:
        """The engine request for these parameters (``engine``: ComparisonRequest's own knobs such
        as timeouts, ``allow_local_paths``, ``page_attached``); an empty prompt stays for the
        engine to refuse with its message."""
        from playground.engine.comparison import ComparisonRequest

        return ComparisonRequest(
            prompts=self.prompts(), specs=list(specs), model=self.model.strip(),
            system_prompt=self.system_prompt.strip() or None, settings=self.generation(), mode=self.mode,
            warmup=self.warmup, runs=self.runs, reference=self.reference.strip() or REFERENCE_AUTO,
            quality=self.quality, **engine,
        )

    def prompts(self) -> list[str]:
        """The prompt, or the shipped prompt set's prompts (``engine.prompt_sets``: a name only,
        refused unless it is one of the sets); both at once is refused, so neither is dropped
        silently."""
        prompt, name = self.prompt, self.prompt_set.strip()
        if not name:
            return [prompt] if prompt.strip() else []
        from playground.engine import prompt_sets

        chosen = prompt_sets.load(name)
        if prompt.strip():
            raise SettingsError(f"A prompt and the prompt set {name!r} were both given: clear the prompt "
                                "to run the set's prompts, or set the prompt set to none.")
        return list(chosen.prompts)

    @classmethod
    def parse(cls, values: dict[str, Any]) -> RunParameters:
        """Validate ``values``; raises ``SettingsError`` with one readable sentence per problem."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError(explain(exc, values)) from None


RunParameters = create_model(  # one field per declaration in run_fields.FIELDS, in its order
    "RunParameters", __base__=_Run, __module__=__name__,
    **{name: (item.annotation, declare(item.default, item.description, **item.options))
       for name, item in FIELDS.items()},
)


def fields() -> dict[str, Any]:
    """name -> pydantic FieldInfo, in declaration order."""
    return dict(RunParameters.model_fields)


def meta(name: str) -> dict[str, Any]:
    """The front-end metadata of one field (label, widget, ...)."""
    return dict(RunParameters.model_fields[name].json_schema_extra or {})  # type: ignore[arg-type]


def bounds(name: str) -> tuple[float | None, float | None]:
    """(minimum, maximum) of a numeric field, None where unbounded."""
    low = high = None
    for item in RunParameters.model_fields[name].metadata:
        low = getattr(item, "ge", None) if getattr(item, "ge", None) is not None else low
        high = getattr(item, "le", None) if getattr(item, "le", None) is not None else high
    return low, high


def choices(name: str) -> tuple[str, ...]:
    """The allowed values of a Literal field."""
    return tuple(RunParameters.model_fields[name].annotation.__args__)  # type: ignore[union-attr]


def default(name: str, front_end: str = "") -> Any:
    """A field's default; ``front_end="bench"`` gives the headless benchmark's own where it has one."""
    if front_end == "bench" and "bench_default" in meta(name):
        return meta(name)["bench_default"]
    return RunParameters.model_fields[name].default


def names(front_end: str) -> list[str]:
    """The fields a front end ("page", "cli" or "api") offers, in declaration order."""
    return [name for name in RunParameters.model_fields if meta(name).get(front_end, True)]


def explain(exc: ValidationError, values: dict[str, Any]) -> str:
    """pydantic's errors as the sentences the user reads ("temperature must be between 0.01 and 2, got 5")."""
    sentences = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        info = RunParameters.model_fields.get(name)
        label = meta(name)["label"].lower().removesuffix(" (optional)") if info else name
        got = values.get(name, error.get("input"))
        kind = error["type"]
        if kind == "extra_forbidden":
            sentences.append(f"unknown parameter {name!r}")
        elif kind in ("greater_than_equal", "less_than_equal"):
            low, high = bounds(name)
            sentences.append(f"{label} must be between {_show(low)} and {_show(high)}, got {got!r}")
        elif kind == "string_too_long":
            limit = error.get("ctx", {}).get("max_length", 0)
            what = "prompt" if name == "prompt" else label
            sentences.append(f"The {what} is {len(got):,} characters long; the limit is {limit:,}.")
        elif kind == "literal_error":
            sentences.append(f"{label} must be one of {', '.join(choices(name))}, got {got!r}")
        elif kind in ("finite_number", "value_error"):
            sentences.append(f"{label} must be a finite number, got {got!r}")
        elif info is not None and info.annotation is int:
            sentences.append(f"{label} must be a whole number, got {got!r}")
        elif info is not None and info.annotation is float:
            sentences.append(f"{label} must be a number, got {got!r}")
        elif info is not None and info.annotation is bool:
            sentences.append(f"{label} must be true or false, got {got!r}")
        elif info is not None and info.annotation is str:
            sentences.append(f"{label} must be text, got {got!r}")
        else:
            sentences.append(f"{label}: {error['msg']}")
    return "; ".join(sentences)


def _show(number: float | None) -> str:
    if number is None:
        return "any"
    return f"{number:g}" if isinstance(number, float) else str(number)
