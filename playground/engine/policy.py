"""What a caller may ask of this machine: model folders, hub downloads, lanes and work at once.

The page, the ``/compare`` API and the CLI all go through ``Policy.admit`` (and ``check_work``)
before a comparison is made; the UI only shows the messages. A shared or network page is
untrusted: no local folders (except the launch model), no hub downloads unless
``--allow-downloads``, and at most ``--max-tokens-per-request`` generated tokens per comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from playground.engine.parameters import MAX_PROMPT_CHARS, SettingsError
from playground.engine.records import BackendSpec
from playground.models.catalog import CATALOG
from playground.models.resolve import HUB_ID, ModelNotFoundError, ModelSource, needs_download, resolve_model
from playground.paths import DEMO_MODEL_ID
from playground.settings import validate_prompt

if TYPE_CHECKING:
    from playground.engine.comparison import ComparisonRequest

MAX_LANES = 6  # backends side by side in one comparison (the page has this many panels)
# What one comparison from an untrusted page may generate at most, summed over lanes, prompts,
# warm-ups and runs: 4 lanes x 4 runs x 1,024 tokens. Minutes of the machine on a real model, not
# the hours that ``runs=100`` with six lanes would be. The owner changes it with a launch option.
UNTRUSTED_MAX_TOKENS = 16_384
DEFAULT_MAX_QUEUE = 16  # comparisons waiting their turn, from every user together

PolicyError = (SettingsError, ModelNotFoundError)  # refusals whose message the user reads


@dataclass(frozen=True)
class Policy:
    """``untrusted``: strangers can reach the caller (shared link, network address)."""

    untrusted: bool = False
    allow_downloads: bool = True
    launch_models: tuple[str, ...] = ()  # always allowed, even local folders
    max_lanes: int | None = MAX_LANES  # None: no limit (the headless CLI has no panels to fill)
    max_tokens_per_request: int | None = None  # None: no limit (the owner's own page and CLI)

    @classmethod
    def local(cls) -> Policy:
        """Whoever runs the CLI owns the machine: any folder, any download, any number of lanes."""
        return cls(untrusted=False, allow_downloads=True, max_lanes=None)

    def model_access(self, spec: str) -> bool:
        """Check ``spec``; returns ``allow_local_paths`` for ``resolve_model``, raises
        ModelNotFoundError when an untrusted caller asks for a download that is off."""
        spec = (spec or DEMO_MODEL_ID).strip()
        if not self.untrusted or spec in ("", *CATALOG, *self.launch_models):
            return True  # named models are no paths: any page may pick them
        if HUB_ID.match(spec) and not self.allow_downloads and needs_download(spec):
            raise ModelNotFoundError(
                f"{spec!r} is not on this machine, and downloading models from a shared page is "
                "turned off: whoever started the app can allow it with `--allow-downloads`, or "
                "start it with `--model` instead."
            )
        return False

    def check_lanes(self, specs: Sequence[BackendSpec]) -> None:
        if self.max_lanes is not None and len(specs) > self.max_lanes:
            raise SettingsError(f"Pick at most {self.max_lanes} backends at once.")

    @property
    def prompt_char_limit(self) -> int | None:
        """Strangers may paste megabytes: their prompts are capped before anything tokenises them.
        The owner's page and the CLI send prompts as long as the model's context."""
        return MAX_PROMPT_CHARS if self.untrusted else None

    def check_work(self, request: ComparisonRequest) -> None:
        """Refuse a prompt longer than this caller may send, and a comparison that could generate
        more tokens than this caller may ask for."""
        for prompt in request.prompts:
            validate_prompt(prompt, self.prompt_char_limit)
        limit = self.max_tokens_per_request
        if limit is None:
            return
        asked = work_tokens(request)
        if asked > limit:
            passes = request.warmup + request.runs
            raise SettingsError(
                f"This comparison could generate up to {asked:,} tokens ({len(request.specs)} lane(s) x "
                f"{max(len(request.prompts), 1)} prompt(s) x {passes} run(s) with warm-up x "
                f"{request.settings.max_new_tokens:,} new tokens); this page allows {limit:,} per "
                "comparison. Lower the runs, warm-up, max new tokens or lanes (whoever started the "
                "app sets the limit with `--max-tokens-per-request`)."
            )

    def check_batch(self, what: str) -> None:
        """The matrix and the sweep hold the machine for minutes with many lanes or prompts, beyond
        any page's quota: the machine's owner alone starts them."""
        if self.untrusted:
            raise SettingsError(
                f"The {what} runs many lanes or prompts for minutes, so only whoever started the app can "
                "start it: from a page opened on this machine, or with `python -m playground.bench`."
            )

    def model_hint(self) -> str:
        """What the model field accepts here, for the page to show."""
        if not self.untrusted:
            return "smollm2, demo, a Hugging Face hub id, or a local model folder"
        return "smollm2, demo or a hub id" + (" (downloads allowed)" if self.allow_downloads
                                              else " already on this machine")

    def admit(self, model: str, specs: Sequence[BackendSpec]) -> tuple[ModelSource, bool]:
        """The explicit step before ``Comparison(request, model=...)``: check the lanes and the
        model against this policy, then resolve the model (which may download it from the hub:
        ask ``needs_download`` first to tell the user). Returns (model, allow_local_paths)."""
        self.check_lanes(specs)
        allow_local = self.model_access(model)
        return resolve_model(model, allow_local), allow_local


def work_tokens(request: ComparisonRequest) -> int:
    """The most tokens ``request`` can generate: every lane, prompt, warm-up and run at max new tokens."""
    passes = request.warmup + request.runs
    return len(request.specs) * max(len(request.prompts), 1) * passes * request.settings.max_new_tokens
