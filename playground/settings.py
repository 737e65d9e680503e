"""What the backends see of a run: the generation settings, a thin view of the run parameters.

Defaults, bounds and messages are declared once (``engine/run_fields.py``) and validated by
``engine.parameters.RunParameters``; this module keeps the frozen dataclass the workers receive
(``to_dict`` crosses the process boundary) and the prompt check. It does not import pydantic:
every worker process imports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from playground.engine.run_fields import FIELDS, MAX_NEW_TOKENS_LIMIT, MAX_PROMPT_CHARS, SettingsError

__all__ = ["MAX_NEW_TOKENS_LIMIT", "MAX_PROMPT_CHARS", "GenerationSettings", "SettingsError",
           "validate_prompt"]


def _default(name: str) -> Any:
    return FIELDS[name].default


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = _default("max_new_tokens")
    do_sample: bool = _default("decoding") == "sampling"  # greedy by default: repeatable across runtimes
    temperature: float = _default("temperature")
    top_p: float = _default("top_p")
    seed: int = _default("seed")
    # Stop at end-of-sequence tokens. Benchmarks may turn this off to force exactly
    # max_new_tokens tokens on every backend.
    stop_at_eos: bool = _default("stop_at_eos")

    def validate(self) -> GenerationSettings:
        """The same strict rules as the page, the CLI and /compare (``RunParameters``)."""
        if not isinstance(self.do_sample, bool):
            raise SettingsError(f"do_sample must be true or false, got {self.do_sample!r}")
        from playground.engine.parameters import RunParameters  # pydantic: only where inputs are checked

        RunParameters.parse({
            "max_new_tokens": self.max_new_tokens, "decoding": "sampling" if self.do_sample else "greedy",
            "temperature": self.temperature, "top_p": self.top_p, "seed": self.seed,
            "stop_at_eos": self.stop_at_eos,
        })
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def validate_prompt(prompt: str, char_limit: int | None = None) -> str:
    """Refuse an empty prompt, and one over ``char_limit`` characters (None: no cap; the model's
    context still bounds it, checked on its tokens)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise SettingsError("The prompt is empty: type a question or pick an example.")
    if char_limit is not None and len(prompt) > char_limit:
        raise SettingsError(f"The prompt is {len(prompt):,} characters long; the limit is {char_limit:,}.")
    return prompt
