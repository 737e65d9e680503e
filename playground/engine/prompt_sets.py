"""The shipped prompt sets (``assets/prompt-sets/NAME.txt``), listed and loaded by name.

A set is picked by name alone: the name may come from a hostile page or ``/compare`` caller, so
it must be one of the shipped sets' names (checked against the folder's listing, after a
character check), never a path. The file format is ``--prompts-file``'s: one prompt per line,
blank lines skipped; a line starting with ``#`` is a comment, the first one describing the set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from playground.engine.run_fields import SettingsError
from playground.paths import REPO_ROOT

PROMPT_SETS_DIR = REPO_ROOT / "assets" / "prompt-sets"
SUFFIX = ".txt"
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
LIST = "list"  # ``--prompt-set list`` prints the sets (no set may take this name)


@dataclass(frozen=True)
class PromptSet:
    name: str
    description: str
    prompts: tuple[str, ...]


def names() -> list[str]:
    """The shipped sets' names, sorted."""
    return sorted(_read_all())


def sets() -> list[PromptSet]:
    return [_read_all()[name] for name in names()]


def load(name: object) -> PromptSet:
    """The shipped set called ``name``; SettingsError (naming the sets) for anything else."""
    known = _read_all()
    if not isinstance(name, str) or not NAME.fullmatch(name) or name not in known:
        shown = repr(name)[:60]
        listed = ", ".join(names()) or "(none shipped)"
        raise SettingsError(f"Unknown prompt set {shown}: pick one of {listed}.")
    return known[name]


def choices() -> list[tuple[str, str]]:
    """(shown, value) pairs for a page's dropdown: none first (the prompt box), then each set."""
    return [("none (the prompt above)", ""),
            *((f"{item.name} ({len(item.prompts)} prompts)", item.name) for item in sets())]


def describe() -> str:
    """What ``--prompt-set list`` prints: one line per set, then its prompts."""
    lines = []
    for item in sets():
        lines.append(f"{item.name} ({len(item.prompts)} prompts): {item.description}")
        lines += [f"  {index}. {prompt}" for index, prompt in enumerate(item.prompts, 1)]
    return "\n".join(lines)


def parse(text: str) -> tuple[str, tuple[str, ...]]:
    """(description, prompts) of a set file's text."""
    description, prompts = "", []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            description = description or stripped.lstrip("#").strip()
            continue
        prompts.append(stripped)
    return description, tuple(prompts)


@cache
def _read_all() -> dict[str, PromptSet]:
    """Every shipped set, read once per process (a few hundred bytes each)."""
    found = {}
    for path in PROMPT_SETS_DIR.glob("*" + SUFFIX):
        name = path.name.removesuffix(SUFFIX)
        if not NAME.fullmatch(name) or name == LIST:
            continue
        description, prompts = parse(path.read_text(encoding="utf-8"))
        if prompts:
            found[name] = PromptSet(name, description, prompts)
    return found
