"""Every run parameter declared once: type, default, bounds, description and how each front end
shows it. Plain data on purpose: every worker process imports the defaults (through
``settings.GenerationSettings``) and building the pydantic model costs ~0.25 s per process, so the
model (``parameters.RunParameters``) is built from this table only where inputs are validated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from playground.models.chat import DEFAULT_SYSTEM_PROMPT

MAX_NEW_TOKENS_LIMIT = 4096
MAX_PROMPT_CHARS = 32_000  # untrusted pages may paste megabytes; refuse before tokenising (policy)
MAX_SEED = 2**31 - 1
REFERENCE_AUTO = "auto"  # == engine.reference.AUTO (the highest precision lane)
Mode = Literal["sequential", "parallel"]
Decoding = Literal["greedy", "sampling"]
MODES: tuple[str, ...] = get_args(Mode)
DECODINGS: tuple[str, ...] = get_args(Decoding)


class SettingsError(ValueError):
    """Invalid generation settings or prompt; the message is shown to the user as is."""


@dataclass(frozen=True)
class Declared:
    """One run parameter. ``options``: the bounds (``ge``, ``le``, ``max_length``,
    ``allow_inf_nan``) and what the front ends need: ``label`` / ``info`` (page), ``widget``
    ("slider", "number", "checkbox", "radio", "textbox", "dropdown"), ``step``, ``elem_id``,
    ``choices`` ((shown, value) pairs), ``page`` / ``cli`` / ``api`` (False: not on that front end),
    ``api_required``, ``cli_flags`` (extra ``{flag: (value, help)}`` shortcuts) and
    ``bench_default`` (the headless benchmark's default where it differs: a benchmark wants
    warm-ups and repeats)."""

    annotation: Any
    default: Any
    description: str
    options: dict[str, Any] = field(default_factory=dict)


def declared(annotation: Any, default: Any, description: str, **options: Any) -> Declared:
    return Declared(annotation, default, description, options)


# In /compare's positional order (gradio_client callers may pass them by position).
FIELDS: dict[str, Declared] = {
    "prompt": declared(
        # no length bound here: the model's context bounds it, and an untrusted page's policy caps
        # it at MAX_PROMPT_CHARS (playground.engine.policy) before it is tokenised
        str, "", "the user's question, sent to every backend", label="Prompt",
        widget="textbox", elem_id="prompt", cli=False, api_required=True),
    "backends": declared(
        str, "", "comma list of name[:device[:precision]] ('' = the default selection)", label="Backends",
        max_length=2000, page=False),
    "model": declared(
        str, "", "'smollm2', 'demo', a Hugging Face hub id or a local model folder ('' = the app's model; "
        "the CLI's is 'demo')", label="Model", max_length=1000, widget="dropdown", elem_id="model",
        bench_default="demo"),
    "max_new_tokens": declared(
        int, 128, "tokens to generate at most", label="Max new tokens", ge=1, le=MAX_NEW_TOKENS_LIMIT,
        widget="slider", step=1, elem_id="max-new-tokens"),
    "decoding": declared(
        Decoding, "greedy", "greedy (repeatable across runs and runtimes) or sampling", label="Decoding",
        widget="radio", elem_id="decoding", choices=[("greedy", "greedy"), ("sampling", "sampling")],
        cli_flags={"--sample": ("sampling", "sample instead of greedy decoding")}),
    "temperature": declared(
        float, 0.7, "sampling temperature", label="Temperature", ge=0.01, le=2.0, allow_inf_nan=False,
        widget="slider", step=0.01, info="sampling only"),
    "top_p": declared(
        float, 0.9, "nucleus sampling: keep the smallest set of tokens with this probability",
        label="Top-p", ge=0.01, le=1.0, allow_inf_nan=False, widget="slider", step=0.01,
        info="sampling only"),
    "seed": declared(int, 0, "random seed for sampling", label="Seed", ge=0, le=MAX_SEED, widget="number"),
    "stop_at_eos": declared(
        bool, True, "stop at end-of-sequence tokens (off: always generate max new tokens)",
        label="Stop at end of sequence", info="off: always generate max new tokens", widget="checkbox",
        elem_id="stop-at-eos",
        cli_flags={"--ignore-eos": (False, "generate exactly --max-new-tokens tokens on every backend")}),
    "mode": declared(
        Mode, "sequential", "sequential: each backend alone (fair); parallel: all at once (a race)",
        label="Mode", widget="radio", elem_id="mode",
        choices=[("one after another (fair)", "sequential"), ("all at once (race)", "parallel")]),
    "system_prompt": declared(
        str, DEFAULT_SYSTEM_PROMPT, "system message put before the prompt ('' for none)",
        label="System prompt (optional)", max_length=MAX_PROMPT_CHARS, widget="textbox",
        elem_id="system-prompt"),
    "warmup": declared(
        int, 0, "warm-up runs per prompt, not recorded", label="Warm-up runs", ge=0, le=10, widget="number",
        elem_id="warmup", info="not recorded; 1 steadies the numbers", bench_default=1),
    "runs": declared(
        int, 1, "measured runs per prompt", label="Measured runs", ge=1, le=100, widget="number",
        elem_id="runs", bench_default=3),
    "reference": declared(
        str, REFERENCE_AUTO, "the lane every answer is compared with: 'auto' (the highest precision, "
        "transformers first on ties) or name[:device[:precision]] of a selected one",
        label="Compare answers against", max_length=200, widget="dropdown", elem_id="reference",
        info="every answer's token agreement and text similarity with this lane's"),
    "quality": declared(
        bool, False, "after its runs, measure each lane's perplexity on a held-out text (assets/heldout/) "
        "from its runtime's own logits", label="Measure perplexity (quality)", widget="checkbox",
        elem_id="quality", info="after the runs; backends without logits say why",
        cli_flags={"--perplexity": (True, "measure each lane's perplexity on the held-out text")}),
    "prompt_set": declared(
        # a name only, checked against the shipped sets (engine.prompt_sets): it may come from a
        # hostile page, so never a path; '' = the prompt alone
        str, "", "a shipped prompt set (assets/prompt-sets/) whose prompts run instead of the prompt, "
        "for answer quality over several prompts ('' = none; the CLI's 'list' shows them)",
        label="Prompt set", max_length=40, widget="dropdown", elem_id="prompt-set",
        info="its prompts run instead of the prompt box; each lane's agreement is averaged over them"),
}
