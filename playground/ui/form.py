"""What the page (or the /compare API) asks for, turned into a validated engine request."""

from __future__ import annotations

from dataclasses import dataclass

from playground.engine.comparison import ComparisonRequest
from playground.engine.records import BackendSpec
from playground.engine.reference import AUTO
from playground.settings import GenerationSettings, SettingsError
from playground.ui.options import AppOptions

MODE_CHOICES = [("one after another (fair)", "sequential"), ("all at once (race)", "parallel")]
DECODING_CHOICES = [("greedy", "greedy"), ("sampling", "sampling")]
AUTO_LABEL = "auto (highest precision)"


@dataclass
class RunForm:
    """The page's inputs, as plain values (gradio hands sliders over as floats)."""

    prompt: str = ""
    system_prompt: str = ""
    model: str = "demo"
    max_new_tokens: int = 128
    decoding: str = "greedy"
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0
    stop_at_eos: bool = True
    mode: str = "sequential"
    warmup: int = 0
    runs: int = 1
    reference: str = AUTO  # the lane answers are compared with ("auto": the highest precision)

    def settings(self) -> GenerationSettings:
        return GenerationSettings(
            max_new_tokens=_whole(self.max_new_tokens, "max new tokens"),
            do_sample=self.decoding == "sampling",
            temperature=float(self.temperature),
            top_p=float(self.top_p),
            seed=_whole(self.seed, "seed"),
            stop_at_eos=bool(self.stop_at_eos),
        )

    def request(self, specs: list[BackendSpec], options: AppOptions) -> ComparisonRequest:
        """Build the engine request; the engine validates the rest when the Comparison is made."""
        model = (self.model or options.model).strip()
        allow_local = options.model_access(model)  # raises ModelNotFoundError when refused
        prompt = self.prompt or ""
        return ComparisonRequest(
            prompts=[prompt] if prompt.strip() else [],
            specs=specs,
            model=model,
            system_prompt=(self.system_prompt or "").strip() or None,
            settings=self.settings(),
            mode=self.mode,
            warmup=_whole(self.warmup, "warm-up runs"),
            runs=_whole(self.runs, "measured runs"),
            allow_local_paths=allow_local,
            reference=(self.reference or AUTO).strip(),
        )


def reference_choices(specs: list[BackendSpec], labels: dict[str, str]) -> list[tuple[str, str]]:
    """The page's "compare answers against" options: auto, then each selected lane
    (``labels``: backend name -> what the page calls it)."""
    choices = [(AUTO_LABEL, AUTO)]
    for spec in specs:
        detail = " ".join(filter(None, [spec.device, spec.precision]))
        shown = f"{labels.get(spec.backend, spec.backend)} {detail}".strip()
        choices.append((shown, ":".join([spec.backend, spec.device, spec.precision]).rstrip(":")))
    return choices


def _whole(value: object, name: str) -> int:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SettingsError(f"{name} must be a whole number, got {value!r}") from None
    if number != int(number):
        raise SettingsError(f"{name} must be a whole number, got {value!r}")
    return int(number)
