"""Generation settings shared by every backend, validated once before any worker starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass

MAX_NEW_TOKENS_LIMIT = 4096
MAX_PROMPT_CHARS = 32_000  # untrusted pages may paste megabytes; refuse before tokenising


class SettingsError(ValueError):
    """Invalid generation settings or prompt; the message is shown to the user as is."""


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 128
    do_sample: bool = False  # greedy by default: repeatable across runs and runtimes
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0
    # Stop at end-of-sequence tokens. Benchmarks may turn this off to force exactly
    # max_new_tokens tokens on every backend.
    stop_at_eos: bool = True

    def validate(self) -> GenerationSettings:
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int):
            raise SettingsError("max new tokens must be a whole number")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
            raise SettingsError(
                f"max new tokens must be between 1 and {MAX_NEW_TOKENS_LIMIT}, got {self.max_new_tokens}"
            )
        if self.do_sample:
            if not 0.01 <= float(self.temperature) <= 5.0:
                raise SettingsError(f"temperature must be between 0.01 and 5, got {self.temperature}")
            if not 0.01 <= float(self.top_p) <= 1.0:
                raise SettingsError(f"top-p must be between 0.01 and 1, got {self.top_p}")
        if not 0 <= int(self.seed) < 2**31:
            raise SettingsError(f"seed must be between 0 and 2^31-1, got {self.seed}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def validate_prompt(prompt: str) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise SettingsError("The prompt is empty: type a question or pick an example.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise SettingsError(
            f"The prompt is {len(prompt):,} characters long; the limit is {MAX_PROMPT_CHARS:,}."
        )
    return prompt
