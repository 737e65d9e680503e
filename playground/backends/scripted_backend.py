"""A backend without a model: streams scripted tokens, and hangs, crashes, fails or dawdles on
command. It is the fast test layer's runtime: it goes through the same registry, worker process,
pool and comparison as the real ones, but loads nothing, so an end-to-end run takes milliseconds.

Hidden unless ``PLAYGROUND_SCRIPTED_BACKEND=1`` (workers inherit the variable): it never appears
on a user's page.

What it does is chosen by its precision (the load) and by ``key=value`` words in the prompt
(the generation), e.g. the prompt ``"tokens=40 delay=0.05 load-slow:hang_after=3"``:

- precision ``scripted`` loads at once; ``load-slow`` takes ``LOAD_SLOW_S`` seconds, reporting
  progress; ``load-fails`` raises a ``ModelFormatError``; ``load-hangs`` never returns;
  ``load-crashes`` kills its own process; ``converts`` goes through the real conversion cache
  (``models/convert_cache.py``, format ``scripted``): converted the first time (``CONVERT_S``
  seconds), reused from the cache after that.
- ``tokens=N`` tokens (default 16, capped by max new tokens), ``delay=S`` seconds between tokens
  (default 0.005), ``first_delay=S`` before the first one (prefill), ``hang_after=N`` stops
  answering after N tokens (ignores Stop, like a stuck native call), ``crash_after=N`` kills the
  process (SIGKILL, like a native crash), ``fail_after=N`` raises a ``BackendError``,
  ``stall_at=N stall=S`` waits S seconds more before token N (a jitter spike).
- ``perplexity=X``: after its runs the lane reports perplexity X for the held-out text (scored as
  its UTF-8 bytes); without it, it says it cannot (the way a runtime without logits does).
- ``PRECISION:key=value`` applies to the lane at that precision only, so one comparison can hold
  a lane that hangs next to one that does not.

Token ``i`` is the text ``" w{i}"`` with id ``i``; the prompt's "tokens" are its UTF-8 bytes.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from playground.backends.base import (
    Backend,
    BackendError,
    BackendProbe,
    DeviceProbe,
    DeviceUnavailableError,
    GenerationOutput,
    ModelFormatError,
    NotSupportedError,
    PerplexityResult,
    ProgressCallback,
    TokenCallback,
)
from playground.settings import GenerationSettings

ENABLE_ENV = "PLAYGROUND_SCRIPTED_BACKEND"
LOAD_SLOW_S = 0.25  # long enough to be seen (and stopped) while loading
CONVERT_S = 0.2
DEFAULT_TOKENS = 16
DEFAULT_DELAY_S = 0.005
VERSION = "scripted 1"
DIRECTIVE = re.compile(
    r"(?<![\w:-])(?:([a-z][a-z-]*):)?(tokens|delay|first_delay|hang_after|crash_after|fail_after|stall_at|stall|perplexity)=([0-9.]+)"
)


def directives(prompt: str, precision: str = "scripted") -> dict[str, float]:
    """The ``key=value`` words of a prompt for the lane at ``precision``: unscoped words apply to
    every lane, ``precision:key=value`` only to that one (and wins); otherwise the last one wins."""
    found: dict[str, float] = {}
    scoped: dict[str, float] = {}
    for scope, key, value in DIRECTIVE.findall(prompt):
        if not scope:
            found[key] = float(value)
        elif scope == precision:
            scoped[key] = float(value)
    return {**found, **scoped}


def hang() -> None:
    """Block for good, deaf to Stop: what a runtime stuck in native code looks like to the engine."""
    while True:
        time.sleep(3600)


def crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class ScriptedBackend(Backend):
    name = "scripted"
    label = "scripted (test backend)"
    precisions = ("scripted", "load-slow", "load-fails", "load-hangs", "load-crashes", "converts")
    default_precision = "scripted"

    @classmethod
    def offered(cls) -> bool:
        return os.environ.get(ENABLE_ENV) == "1"

    @classmethod
    def probe(cls) -> BackendProbe:
        probe = cls.new_probe()
        probe.installed = True
        probe.version = VERSION
        probe.devices = [DeviceProbe("CPU", True, "no model: scripted tokens")]
        return probe

    def load(self, model_dir: Path, device: str, precision: str, progress: ProgressCallback) -> None:
        precision = self.check_precision(precision)
        if device != "CPU":
            raise DeviceUnavailableError(f"{self.label} runs on CPU only, not {device!r}.")
        progress(f"scripted load ({precision})")
        if precision == "load-slow":
            time.sleep(LOAD_SLOW_S)
        elif precision == "load-fails":
            raise ModelFormatError(f"{self.label}: this load fails on purpose ({model_dir.name}).")
        elif precision == "load-hangs":
            hang()
        elif precision == "load-crashes":
            crash()
        elif precision == "converts":
            from playground.models.convert_cache import cached_conversion

            def convert(folder: Path) -> None:
                time.sleep(CONVERT_S)
                (folder / "scripted.txt").write_text("converted by the scripted backend\n")

            self.conversion = cached_conversion(model_dir, "scripted", "converts", convert, progress)
        self.device, self.precision = device, precision
        self.device_note = "no model: scripted tokens"

    def generate(
        self, prompt: str, settings: GenerationSettings, on_tokens: TokenCallback
    ) -> GenerationOutput:
        script = directives(prompt, self.precision)
        self.script = script  # perplexity() answers from the last prompt's directives
        prompt_ids = list(prompt.encode())
        wanted = min(int(script.get("tokens", DEFAULT_TOKENS)), settings.max_new_tokens)
        delay = script.get("delay", DEFAULT_DELAY_S)
        time.sleep(script.get("first_delay", 0.0))
        produced = 0
        stopped = False
        for index in range(wanted):
            for key, action in (("hang_after", hang), ("crash_after", crash)):
                if script.get(key) == index:
                    action()
            if script.get("fail_after") == index:
                raise BackendError(f"{self.label}: generation fails on purpose after {index} tokens.")
            if index:
                time.sleep(delay + (script.get("stall", 0.0) if script.get("stall_at") == index else 0.0))
            produced += 1
            if on_tokens(f" w{index}", 1, [index]) is False:
                stopped = True
                break
        return GenerationOutput(len(prompt_ids), produced, stopped=stopped, prompt_ids=prompt_ids)

    def perplexity(self, text: str, max_tokens: int) -> PerplexityResult:
        value = getattr(self, "script", {}).get("perplexity")
        if value is None:
            raise NotSupportedError(f"{self.label}: no perplexity= directive in its prompt")
        return PerplexityResult(value, min(len(text.encode()), max_tokens) - 1, source="scripted")
