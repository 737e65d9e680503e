"""Backends and utilization readers found through entry points: ours, an installed plugin's, and
the fallback of a checkout that was never pip-installed. Fast: no real runtime is loaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib

from playground import backends, plugins
from playground.backends.base import Backend
from playground.engine.comparison import Comparison, ComparisonRequest
from playground.engine.records import BackendSpec
from playground.monitor.base import UtilizationReader
from playground.monitor.detect import reader_classes
from playground.paths import REPO_ROOT
from playground.settings import GenerationSettings

BUILT_IN = [
    "transformers", "openvino-genai", "optimum-intel", "onnxruntime-genai", "npu-library", "llama.cpp",
]


def pyproject_table(group: str) -> dict[str, str]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)["project"]["entry-points"][group]


def test_our_backends_are_declared_as_entry_points() -> None:
    table = pyproject_table(plugins.BACKENDS_GROUP)
    assert list(table) == [*BUILT_IN, "openai-endpoint", "scripted"]  # one backend per --endpoint: none here
    assert backends.backend_names() == BUILT_IN  # the scripted one is hidden unless asked for
    assert backends.plugin_problems() == {}
    for name, target in table.items():
        cls = plugins.Registration(name, target, "test").load()
        assert issubclass(cls, Backend) and cls.name == name
        assert target.split(":")[0].endswith("_backend"), "one backend per *_backend.py module"


def test_our_readers_are_declared_as_entry_points() -> None:
    table = pyproject_table(plugins.MONITORS_GROUP)
    classes, failed = reader_classes()
    assert failed == []
    assert [cls.__module__ + ":" + cls.__name__ for cls in classes] == list(table.values())
    assert all(issubclass(cls, UtilizationReader) for cls in classes)


def test_installed_metadata_matches_pyproject() -> None:
    try:
        dist = metadata.distribution(plugins.DIST_NAME)
    except metadata.PackageNotFoundError:
        pytest.skip(reason="the project is not pip-installed here (scripts/setup.sh does it); the "
                    "checkout's pyproject.toml fallback is what runs, see the next test")
    for group in (plugins.BACKENDS_GROUP, plugins.MONITORS_GROUP):
        installed = {e.name: e.value for e in dist.entry_points if e.group == group}
        assert installed == pyproject_table(group), (
            f"{group}: the installed entry points are stale; run `bash scripts/setup.sh` (pip install -e .)"
        )


def test_an_uninstalled_checkout_reads_its_own_pyproject(tmp_path: Path) -> None:
    """A copy of the checkout (no ``*.egg-info`` beside it) run with ``python -S`` (no site-packages):
    no installed distribution at all, so our entry points come from its ``pyproject.toml``."""
    shutil.copytree(REPO_ROOT / "playground", tmp_path / "playground",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    code = (
        "import json; from playground import plugins; "
        "print(json.dumps({group: [[r.name, r.target, r.source] for r in plugins.registrations(group)] "
        "for group in (plugins.BACKENDS_GROUP, plugins.MONITORS_GROUP)}))"
    )
    result = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(tmp_path)}, check=True, timeout=60)
    for group, found in json.loads(result.stdout).items():
        assert {name: target for name, target, _ in found} == pyproject_table(group)
        assert {source for _, _, source in found} == {"pyproject.toml"}


def write_dist(site: Path, name: str, entry_points: str) -> None:
    """An installed distribution's metadata as pip writes it (``*.dist-info``), nothing else."""
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_a_broken_plugin_is_left_out_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dist(tmp_path, "broken_plugin", f"[{plugins.BACKENDS_GROUP}]\n"
               "missing = no_such_module_here:Backend\nwrong = json:JSONDecoder\n"
               "renamed = playground.backends.transformers_backend:TransformersBackend\n"
               "transformers = json:JSONDecoder\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    backends.reload()
    try:
        problems = backends.plugin_problems()
        assert backends.backend_names() == BUILT_IN  # ours still there, nothing broken offered
    finally:
        monkeypatch.undo()
        backends.reload()
    assert "No module named 'no_such_module_here'" in problems["missing"]
    assert "broken_plugin" in problems["missing"]
    assert "is not a concrete Backend" in problems["wrong"]
    assert "TransformersBackend.name is 'transformers'" in problems["renamed"]
    # a plugin that reuses one of our names does not replace ours
    assert backends.get_backend_class("transformers").__module__ == "playground.backends.transformers_backend"


def test_installed_plugin_is_found_and_runs_in_a_worker(echo_plugin_importable: Path) -> None:
    assert backends.backend_names() == [*BUILT_IN, "echo"]
    cls = backends.get_backend_class("echo")
    assert cls.__module__ == "playground_echo" and cls.label == "echo (example plugin)"
    pids: list[int] = []
    comparison = Comparison(
        ComparisonRequest(prompts=["the plugin answers in words"], specs=[BackendSpec("echo")],
                          settings=GenerationSettings(max_new_tokens=32)),
        on_worker=lambda lane, pid, started: started and pids.append(pid),
    )
    list(comparison.events())
    (record,) = comparison.records
    assert record.error == "" and "the plugin answers in words" in record.text, record
    assert record.new_tokens == len(record.text.split()) and record.device == "CPU"
    assert pids and pids[0] != os.getpid()  # it ran in a worker process


def test_plugin_backend_is_probed_in_its_worker(echo_plugin_importable: Path) -> None:
    from playground.engine.probing import probe_backend

    probe = probe_backend("echo")
    assert probe.installed and probe.usable and probe.version == "playground-echo 0.1.0", probe


def test_the_worker_imports_the_class_the_app_resolved_and_checks_it() -> None:
    """The app sends ``module:Class``; the worker imports that alone, and refuses a target that is
    not the backend it names (or not a backend at all)."""
    target = backends.class_target("transformers")
    assert target == "playground.backends.transformers_backend:TransformersBackend"
    assert backends.resolve_class("transformers", target) is backends.get_backend_class("transformers")
    assert backends.resolve_class("transformers") is backends.get_backend_class("transformers")
    assert backends.class_target("no-such-backend") == ""
    with pytest.raises(KeyError, match="is not the backend"):
        backends.resolve_class("openvino-genai", target)
    with pytest.raises(KeyError, match="is not the backend"):
        backends.resolve_class("transformers", "playground.settings:GenerationSettings")
