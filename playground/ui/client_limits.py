"""Who a request is, for the per-client quotas (``engine.quotas``): its login, else its address."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from playground.engine.quotas import client_key


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if headers is None:
        return None
    return headers.get(name)


def client_of(username: str | None, request: Any, behind_proxy: bool) -> str:
    """The quota key of a starlette / fastapi / gradio request."""
    client = getattr(request, "client", None)
    address = getattr(client, "host", None) if client is not None else None
    headers = getattr(request, "headers", None)
    return client_key(username, address, _header(headers, "x-forwarded-for"), behind_proxy)


def login_of(blocks: Any, request: Any) -> str | None:
    """The login of a request's cookies, as gradio's own ``get_current_user`` finds it."""
    app = getattr(blocks, "server_app", None)
    if app is None or not getattr(app, "auth", None):
        return None
    cookie_id = getattr(app, "cookie_id", "")
    cookies = getattr(request, "cookies", {}) or {}
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return getattr(app, "tokens", {}).get(token) if token else None
