"""Recover the chat messages from a prompt the engine already templated (for chat-API backends).

The engine renders the model's chat template once and sends every backend the same templated text
(``models.chat.render_prompt``). A server behind the chat-completions API applies its own template,
so it needs the messages instead: the template is rendered again here with marker texts, and the
prompt is matched against what surrounds them. Templates that copy the texts verbatim (all the
usual ones) match; anything else is sent as one user message and the record says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from playground.models.chat import render_prompt

USER_MARK = "\u2063USER\u2063"
SYSTEM_MARK = "\u2063SYSTEM\u2063"


@dataclass(frozen=True)
class Recovered:
    messages: list[dict[str, str]]
    exact: bool  # False: the template did not match; the whole prompt went as one user message


def _between(text: str, rendered: str, marks: list[str]) -> list[str] | None:
    """The texts at ``marks`` in ``text``, if ``text`` is ``rendered`` with them filled in."""
    pieces = [rendered]
    for mark in marks:
        head = pieces.pop()
        if head.count(mark) != 1:
            return None
        pieces.extend(head.split(mark))
    found = []
    rest = text
    if not rest.startswith(pieces[0]):
        return None
    rest = rest[len(pieces[0]):]
    for index, literal in enumerate(pieces[1:]):
        last = index == len(pieces) - 2
        if last:
            if not rest.endswith(literal):
                return None
            found.append(rest[: len(rest) - len(literal)] if literal else rest)
        else:
            at = rest.find(literal)
            if at < 0 or not literal:
                return None
            found.append(rest[:at])
            rest = rest[at + len(literal):]
    return found


def recover_messages(model_dir: Path, templated: str) -> Recovered:
    """The messages whose rendering is ``templated``: user alone first (a template's default system
    text is then the server's business), then system + user."""
    try:
        plain = render_prompt(model_dir, USER_MARK, None)
        with_system = render_prompt(model_dir, USER_MARK, SYSTEM_MARK)
    except Exception:  # a template that cannot render markers: send the text as it is
        return Recovered([{"role": "user", "content": templated}], exact=False)
    texts = _between(templated, plain, [USER_MARK])
    if texts is not None:
        return Recovered([{"role": "user", "content": texts[0]}], exact=True)
    if 0 <= with_system.find(SYSTEM_MARK) < with_system.find(USER_MARK):
        texts = _between(templated, with_system, [SYSTEM_MARK, USER_MARK])
        if texts is not None:
            return Recovered([{"role": "system", "content": texts[0]}, {"role": "user", "content": texts[1]}],
                             exact=True)
    return Recovered([{"role": "user", "content": templated}], exact=False)
