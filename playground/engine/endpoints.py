"""OpenAI-compatible endpoints configured at launch: ``--endpoint name=URL[,model=M][,key_env=VAR]...``.

Only whoever starts the app or the CLI configures endpoints: the page and ``/compare`` can pick a
configured one by its name (it is a backend like any other), never type a URL, so a shared page
cannot make this machine send requests anywhere (no server-side request forgery). The API key is
never part of the configuration: it names the environment variable holding it (``key_env``), read
by the worker that calls the server.

The configuration travels to workers in ``PLAYGROUND_ENDPOINTS`` (JSON, no secrets): workers
inherit the launcher's environment, so app, probes and workers agree on the endpoints.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

ENDPOINTS_ENV = "PLAYGROUND_ENDPOINTS"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_TIMEOUT_S = 120.0  # no byte from the server for this long: the lane fails with a message
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
OPTIONS = ("model", "key_env", "label", "timeout")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class EndpointError(ValueError):
    """An ``--endpoint`` value that cannot be used; the message says what to write instead."""


@dataclass(frozen=True)
class EndpointConfig:
    """One OpenAI-compatible server, as the owner configured it."""

    name: str  # the lane's backend name, e.g. "ollama"
    url: str  # the API base, e.g. http://127.0.0.1:11434/v1
    model: str = ""  # "" = the first model the server lists
    key_env: str = DEFAULT_KEY_ENV  # environment variable holding the API key (may be unset)
    label: str = ""  # shown on the card; "" = derived from name and host
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def title(self) -> str:
        if self.label:
            return self.label
        host = urlsplit(self.url).hostname or self.url
        return f"{self.name} on this machine" if _is_loopback(host) else f"{self.name} at {host}"

    def api_key(self) -> str:
        """The key from its environment variable; servers without authentication take any."""
        return os.environ.get(self.key_env, "") or "not-needed"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_endpoint(text: str) -> EndpointConfig:
    """``name=URL[,model=M][,key_env=VAR][,label=TEXT][,timeout=SECONDS]``."""
    head, *rest = [part.strip() for part in text.split(",")]
    name, sep, url = head.partition("=")
    name = name.strip().lower()
    url = url.strip().rstrip("/")
    if not sep or not name or not url:
        raise EndpointError(f"--endpoint {text!r} is not name=URL[,model=...][,key_env=VAR]")
    if not NAME.match(name):
        raise EndpointError(f"--endpoint name {name!r}: use lowercase letters, digits, '.', '_', '-' "
                            "(it becomes the backend's name, e.g. --backends ollama)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(f"--endpoint {name}: {url!r} is not an http(s) URL like http://127.0.0.1:8000/v1")
    options: dict[str, str] = {}
    for item in filter(None, rest):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in OPTIONS:
            raise EndpointError(f"--endpoint {name}: unknown option {item!r}; options: {', '.join(OPTIONS)}")
        options[key] = value.strip()
    key_env = options.get("key_env", DEFAULT_KEY_ENV)
    if not ENV_NAME.match(key_env):
        raise EndpointError(f"--endpoint {name}: key_env names an environment variable, got {key_env!r} "
                            "(the key itself is never written on the command line)")
    try:
        timeout = float(options.get("timeout", DEFAULT_TIMEOUT_S))
    except ValueError as exc:
        raise EndpointError(f"--endpoint {name}: timeout must be seconds, "
                            f"got {options['timeout']!r}") from exc
    if timeout <= 0:
        raise EndpointError(f"--endpoint {name}: timeout must be more than 0 s")
    return EndpointConfig(name, url, options.get("model", ""), key_env, options.get("label", ""), timeout)


def parse_endpoints(texts: Iterable[str], taken: Iterable[str] = ()) -> list[EndpointConfig]:
    """Every ``--endpoint``; a name used twice, or already a backend's, is refused."""
    seen = set(taken)
    found = []
    for text in texts:
        endpoint = parse_endpoint(text)
        if endpoint.name in seen:
            raise EndpointError(f"--endpoint name {endpoint.name!r} is already taken (a backend or another "
                                "--endpoint): pick another name")
        seen.add(endpoint.name)
        found.append(endpoint)
    return found


def export(endpoints: Iterable[EndpointConfig], environ: dict[str, str] | None = None) -> None:
    """Put the configuration where workers find it (this process's environment)."""
    environ = os.environ if environ is None else environ  # type: ignore[assignment]
    data = [asdict(endpoint) for endpoint in endpoints]
    if data:
        environ[ENDPOINTS_ENV] = json.dumps(data)
    else:
        environ.pop(ENDPOINTS_ENV, None)


def configured(environ: dict[str, str] | None = None) -> list[EndpointConfig]:
    """The endpoints the launch configured (none when unset; a broken value is no endpoint)."""
    environ = os.environ if environ is None else environ  # type: ignore[assignment]
    text = environ.get(ENDPOINTS_ENV, "").strip()
    if not text:
        return []
    try:
        return [EndpointConfig(**item) for item in json.loads(text)]
    except (TypeError, ValueError):
        return []


def configure(texts: Iterable[str]) -> list[EndpointConfig]:
    """The launch's ``--endpoint`` values, checked against the registered backends' names and put
    where the registry and the workers read them; EndpointError says what is wrong."""
    from playground.backends import reload
    from playground.plugins import BACKENDS_GROUP, registrations

    found = parse_endpoints(texts, taken=[entry.name for entry in registrations(BACKENDS_GROUP)])
    export(found)
    reload()
    return found


def describe(endpoint: EndpointConfig) -> str:
    """One line for the console: never the key, only where it is read from."""
    model = endpoint.model or "the first it lists"
    return f"{endpoint.name}: {endpoint.title}, {endpoint.url}, model {model}, key from ${endpoint.key_env}"
