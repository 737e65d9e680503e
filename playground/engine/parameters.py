"""Every run parameter once: its default, bounds, description and how each front end shows it.

The CLI's options (``bench/cli.py``), the page's widgets (``ui/form.py``) and the ``/compare``
API's signature (``ui/api.py``) are all derived from ``RunParameters``, so they cannot disagree.
Validation is strict: no coercion of strings, booleans or non-finite numbers, because a shared
page is hostile and a silent ``"false"`` -> ``True`` would run something nobody asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from playground.engine.records import BackendSpec
from playground.models.chat import DEFAULT_SYSTEM_PROMPT

if TYPE_CHECKING:
    from playground.engine.comparison import ComparisonRequest
    from playground.settings import GenerationSettings

MAX_NEW_TOKENS_LIMIT = 4096
MAX_PROMPT_CHARS = 32_000  # untrusted pages may paste megabytes; refuse before tokenising
MAX_SEED = 2**31 - 1
REFERENCE_AUTO = "auto"  # == engine.reference.AUTO (the highest precision lane)
Mode = Literal["sequential", "parallel"]
Decoding = Literal["greedy", "sampling"]
MODES: tuple[str, ...] = get_args(Mode)
DECODINGS: tuple[str, ...] = get_args(Decoding)


class SettingsError(ValueError):
    """Invalid generation settings or prompt; the message is shown to the user as is."""


def declare(default: Any, description: str, *, label: str, **extra: Any) -> Any:
    """A field plus what the front ends need: ``label`` / ``info`` (page), ``widget`` ("slider",
    "number", "checkbox", "radio", "textbox", "dropdown"), ``step``, ``elem_id``, ``choices``
    ((shown, value) pairs), ``page`` / ``cli`` / ``api`` (False: not on that front end),
    ``cli_flags`` (extra ``{flag: (value, help)}`` shortcuts) and ``bench_default`` (the headless
    benchmark's default when it differs: a benchmark wants warm-ups and repeats)."""
    bounds = {key: extra.pop(key) for key in ("ge", "le", "max_length") if key in extra}
    if "allow_inf_nan" in extra:
        bounds["allow_inf_nan"] = extra.pop("allow_inf_nan")
    return Field(default, description=description, json_schema_extra={"label": label, **extra}, **bounds)


class RunParameters(BaseModel):
    """What one comparison run is asked to do (the backends and model are chosen by name)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    prompt: str = declare("", "the user's question, sent to every backend", label="Prompt",
                         max_length=MAX_PROMPT_CHARS, widget="textbox", elem_id="prompt", cli=False,
                         api_required=True)
    backends: str = declare("", "comma list of name[:device[:precision]] ('' = the default selection)",
                           label="Backends", max_length=2000, page=False)
    model: str = declare("", "'smollm2', 'demo', a Hugging Face hub id or a local model folder "
                        "('' = the app's model; the CLI's is 'demo')", label="Model", max_length=1000,
                        widget="dropdown", elem_id="model", bench_default="demo")
    max_new_tokens: int = declare(128, "tokens to generate at most", label="Max new tokens", ge=1,
                                 le=MAX_NEW_TOKENS_LIMIT, widget="slider", step=1, elem_id="max-new-tokens")
    decoding: Decoding = declare(
        "greedy", "greedy (repeatable across runs and runtimes) or sampling", label="Decoding",
        widget="radio", elem_id="decoding", choices=[("greedy", "greedy"), ("sampling", "sampling")],
        cli_flags={"--sample": ("sampling", "sample instead of greedy decoding")})
    temperature: float = declare(0.7, "sampling temperature", label="Temperature", ge=0.01, le=2.0,
                                allow_inf_nan=False, widget="slider", step=0.01, info="sampling only")
    top_p: float = declare(0.9, "nucleus sampling: keep the smallest set of tokens with this probability",
                          label="Top-p", ge=0.01, le=1.0, allow_inf_nan=False, widget="slider", step=0.01,
                          info="sampling only")
    seed: int = declare(0, "random seed for sampling", label="Seed", ge=0, le=MAX_SEED, widget="number")
    stop_at_eos: bool = declare(True, "stop at end-of-sequence tokens (off: always generate max new tokens)",
                               label="Stop at end of sequence", info="off: always generate max new tokens",
                               widget="checkbox", elem_id="stop-at-eos",
                               cli_flags={"--ignore-eos": (False, "generate exactly --max-new-tokens "
                                                           "tokens on every backend")})
    mode: Mode = declare(
        "sequential", "sequential: each backend alone (fair); parallel: all at once (a race)",
        label="Mode", widget="radio", elem_id="mode",
        choices=[("one after another (fair)", "sequential"), ("all at once (race)", "parallel")])
    system_prompt: str = declare(DEFAULT_SYSTEM_PROMPT, "system message put before the prompt ('' for none)",
                                label="System prompt (optional)", max_length=MAX_PROMPT_CHARS,
                                widget="textbox", elem_id="system-prompt")
    warmup: int = declare(0, "warm-up runs per prompt, not recorded", label="Warm-up runs", ge=0, le=10,
                         widget="number", elem_id="warmup", info="not recorded; 1 steadies the numbers",
                         bench_default=1)
    runs: int = declare(1, "measured runs per prompt", label="Measured runs", ge=1, le=100, widget="number",
                       elem_id="runs", bench_default=3)
    reference: str = declare(REFERENCE_AUTO, "the lane every answer is compared with: 'auto' (the highest "
                            "precision, transformers first on ties) or name[:device[:precision]] of a "
                            "selected one",
                            label="Compare answers against", max_length=200, widget="dropdown",
                            elem_id="reference",
                            info="every answer's token agreement and text similarity with this lane's")

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

        prompt = self.prompt
        return ComparisonRequest(
            prompts=[prompt] if prompt.strip() else [], specs=list(specs), model=self.model.strip(),
            system_prompt=self.system_prompt.strip() or None, settings=self.generation(), mode=self.mode,
            warmup=self.warmup, runs=self.runs, reference=self.reference.strip() or REFERENCE_AUTO, **engine,
        )

    @classmethod
    def parse(cls, values: dict[str, Any]) -> RunParameters:
        """Validate ``values``; raises ``SettingsError`` with one readable sentence per problem."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError(explain(exc, values)) from None


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
