"""The conversion cache: reuse what is complete, never what is half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from playground.models.convert_cache import DONE_MARKER, cached_conversion, conversion_dir


@pytest.fixture
def model(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("PLAYGROUND_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def write_files(out: Path) -> None:
    (out / "weights.bin").write_bytes(b"x" * 10)


def test_complete_conversion_is_reused(model: Path) -> None:
    calls: list[Path] = []
    steps: list[str] = []

    def convert(out: Path) -> None:
        calls.append(out)
        write_files(out)

    first = cached_conversion(
        model, "fmt", "int4", convert, lambda text, stage="loading": steps.append(f"{stage}: {text}")
    )
    second = cached_conversion(
        model, "fmt", "int4", convert, lambda text, stage="loading": steps.append(f"{stage}: {text}")
    )
    folder = first.path
    assert folder == second.path and (folder / "weights.bin").is_file() and (folder / DONE_MARKER).is_file()
    assert (first.reused, second.reused) == (False, True) and len(calls) == 1
    assert steps[0].startswith("converting: Converting") and steps[-1].startswith("loading: Using cached")
    # what the conversion took travels with its result (no module-global side channel)
    assert first.seconds > 0 and second.seconds == 0


def test_precisions_and_changed_sources_get_their_own_entry(model: Path) -> None:
    int4 = conversion_dir(model, "fmt", "int4")
    assert int4 != conversion_dir(model, "fmt", "int8")
    (model / "config.json").write_text('{"changed": true}')
    assert int4 != conversion_dir(model, "fmt", "int4")


def test_a_failed_conversion_leaves_nothing_behind(model: Path) -> None:
    def crash(out: Path) -> None:
        write_files(out)
        raise RuntimeError("exporter died half-way")

    with pytest.raises(RuntimeError):
        cached_conversion(model, "fmt", "int4", crash, lambda *_: None)
    target = conversion_dir(model, "fmt", "int4")
    assert not target.exists()
    assert not list(target.parent.glob(target.name + ".partial-*"))


def test_a_half_written_folder_is_converted_again(model: Path) -> None:
    """A folder without the completion marker (killed process, full disk) is not a conversion."""
    target = conversion_dir(model, "fmt", "int4")
    target.mkdir(parents=True)
    (target / "weights.bin").write_bytes(b"truncated")
    calls = []

    def convert(out: Path) -> None:
        calls.append(out)
        write_files(out)

    conversion = cached_conversion(model, "fmt", "int4", convert, lambda *_: None)
    assert not conversion.reused and calls and (conversion.path / "weights.bin").read_bytes() == b"x" * 10
