"""Turn what the user typed (``demo``, ``smollm2``, a local folder, a hub id) into a local model folder."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from playground.models.catalog import named_model
from playground.paths import DEMO_MODEL_DIR, DEMO_MODEL_ID

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")
# Only what the runtimes read: no pickles, no code from the hub unless the user vets it.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


class ModelNotFoundError(Exception):
    """The model could not be found or fetched; the message says what to do instead."""


@dataclass(frozen=True)
class ModelSource:
    """A model the engine can hand to every backend: a label and a local HF folder."""

    name: str  # what the user asked for ("demo", "microsoft/Phi-3-mini-4k-instruct", a path)
    path: Path

    @property
    def config(self) -> dict:
        return json.loads((self.path / "config.json").read_text())

    @property
    def context_length(self) -> int | None:
        value = self.config.get("max_position_embeddings")
        return int(value) if value else None


def resolve_model(spec: str | None, allow_local_paths: bool = True, download: bool = True) -> ModelSource:
    """Resolve ``spec``; ``allow_local_paths`` is False for untrusted callers (shared pages).
    ``download=False``: a hub model must already be on this machine (no network, no wait)."""
    spec = (spec or DEMO_MODEL_ID).strip()
    if spec == str(DEMO_MODEL_DIR):
        spec = DEMO_MODEL_ID
    named = named_model(spec)
    if named is not None:  # a short id from the catalog: safe for any caller, it is no path
        if not named.is_ready():
            raise ModelNotFoundError(
                f"{named.title} ({named.id!r}) is not set up on this machine (looked in "
                f"{named.folder}): {named.setup_hint}."
            )
        return ModelSource(named.id, named.folder)
    path = Path(spec).expanduser()
    looks_like_path = spec.startswith((".", "/", "~", "\\")) or path.exists() or ":" in spec[:3]
    if looks_like_path:
        if not allow_local_paths:
            raise ModelNotFoundError(
                "Local model folders can only be chosen by whoever started the app "
                "(`python app.py --model PATH`); use 'demo', 'smollm2' or a hub id here."
            )
        if path.is_file() and path.suffix.lower() == ".gguf":  # llama.cpp runs it as is; the rest import it
            from playground.errors import ModelFormatError
            from playground.models.gguf_models import import_gguf_file

            try:
                return ModelSource(spec, import_gguf_file(path))
            except ModelFormatError as exc:
                raise ModelNotFoundError(str(exc)) from exc
        if not path.is_dir():
            raise ModelNotFoundError(f"Model folder {spec!r} does not exist.")
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{spec!r} is not a Hugging Face model folder (no config.json in it).")
        return ModelSource(spec, path.resolve())
    if not HUB_ID.match(spec):
        raise ModelNotFoundError(
            f"{spec!r} is neither 'demo', 'smollm2', a local model folder, nor a Hugging Face hub id like "
            "'microsoft/Phi-3-mini-4k-instruct'."
        )
    if not download and needs_download(spec):
        raise ModelNotFoundError(
            f"{spec!r} is not on this machine yet: resolve it first (Policy.admit or resolve_model), "
            "which downloads it from the Hugging Face hub."
        )
    return ModelSource(spec, _download_from_hub(spec))


def needs_download(spec: str | None) -> bool:
    """True for a hub id whose files are not on this machine yet (checked without the network)."""
    spec = (spec or "").strip()
    if not HUB_ID.match(spec) or Path(spec).expanduser().exists():
        return False
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(spec, allow_patterns=HUB_PATTERNS, local_files_only=True)
    except Exception:  # LocalEntryNotFoundError and friends: not cached
        return True
    return False


def _download_from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        pass
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, etag_timeout=10))
    except RepositoryNotFoundError as exc:
        raise ModelNotFoundError(f"No model {repo_id!r} on the Hugging Face hub.") from exc
    except GatedRepoError as exc:
        raise ModelNotFoundError(
            f"{repo_id!r} is gated: accept its licence on huggingface.co and log in (`hf auth login`)."
        ) from exc
    except Exception as exc:  # connection refused, DNS failure, timeouts, offline mode
        raise ModelNotFoundError(
            f"Cannot reach the Hugging Face hub to download {repo_id!r} ({type(exc).__name__}). "
            f"This machine looks offline: download it on a connected machine with "
            f"`hf download {repo_id} --local-dir DIR`, copy DIR here and pass that folder, "
            "or use the demo model."
        ) from exc
