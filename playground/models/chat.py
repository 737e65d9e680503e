"""Render the model's own chat template once, so every backend gets the identical prompt."""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_SYSTEM_PROMPT = "You are a helpful AI assistant."


def load_chat_template(model_dir: Path) -> str | None:
    jinja_file = model_dir / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text()
    config_file = model_dir / "tokenizer_config.json"
    if config_file.is_file():
        template = json.loads(config_file.read_text()).get("chat_template")
        if isinstance(template, list):  # named templates: take the default one
            template = next((t["template"] for t in template if t.get("name") == "default"), None)
        return template
    return None


class ChatPrompt(str):
    """The templated text every local runtime is fed, which also carries the chat messages it was
    rendered from: a backend behind a chat API sends ``messages`` instead (its server applies
    its own template). A backend that knows nothing of it just sees a ``str``."""

    messages: list[dict[str, str]]

    def __new__(cls, text: str, messages: list[dict[str, str]]) -> ChatPrompt:
        prompt = super().__new__(cls, text)
        prompt.messages = [dict(message) for message in messages]
        return prompt


def chat_messages(user_prompt: str, system_prompt: str | None = None) -> list[dict[str, str]]:
    """The conversation a prompt is: the system prompt (when there is one), then the user's."""
    messages = []
    if system_prompt and system_prompt.strip():
        messages.append({"role": "system", "content": system_prompt.strip()})
    messages.append({"role": "user", "content": user_prompt})
    return messages


def render_prompt(model_dir: Path, user_prompt: str, system_prompt: str | None = None) -> str:
    """The templated text fed to every runtime (none of them adds its own template)."""
    messages = chat_messages(user_prompt, system_prompt)
    template = load_chat_template(model_dir)
    if not template:
        return user_prompt
    special = _special_tokens(model_dir)
    from jinja2.sandbox import ImmutableSandboxedEnvironment  # here: every worker imports this module

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = _raise_template_error
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, **special)


def _special_tokens(model_dir: Path) -> dict[str, str]:
    config_file = model_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    tokens = {}
    for key in ("bos_token", "eos_token"):
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        tokens[key] = value or ""
    return tokens


def _raise_template_error(message: str) -> None:
    raise ValueError(f"chat template: {message}")
