"""Launch options; the trust policy derived from them lives in ``engine.policy``."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

from playground.engine.policy import DEFAULT_MAX_QUEUE, UNTRUSTED_MAX_TOKENS, Policy
from playground.engine.quotas import (
    DEFAULT_MAX_JOBS_PER_CLIENT,
    DEFAULT_MAX_TOKENS_PER_CLIENT_HOUR,
    ClientQuota,
)
from playground.paths import DEMO_MODEL_ID

SHARE_USER = "playground"  # the login generated for a shared link started without --auth
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
LOOPBACK_ADDRESSES = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def share_login(share: bool, auth: tuple[str, str] | None, no_auth: bool) -> tuple[str, str] | None:
    """The login a page needs. A public link without one lets anyone on the internet run prompts
    on this machine, so ``--share`` without ``--auth`` gets a generated login (printed at start)
    unless the owner says ``--no-auth`` explicitly; the one-flag demo keeps working, safely."""
    if auth is not None or not share or no_auth:
        return auth
    return SHARE_USER, secrets.token_urlsafe(12)


def is_loopback(host: str) -> bool:
    """Only 127.0.0.1, ::1 and the names for them: the rest of 127.0.0.0/8 is how containers and
    port forwarders expose a service, so it is not taken as "only this machine's owner"."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host) in LOOPBACK_ADDRESSES
    except ValueError:
        return False


@dataclass(frozen=True)
class AppOptions:
    """What ``app.py`` was started with; the page and the API both obey it."""

    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    auth: tuple[str, str] | None = None
    model: str = DEMO_MODEL_ID
    backends: tuple[str, ...] = ()  # backend specs preselected on the page ("" = all usable)
    allow_downloads: bool = False
    launch_models: tuple[str, ...] = field(default=())  # always allowed, even local folders
    public: bool = False  # behind a reverse proxy or tunnel: every client looks local, so trust none
    max_tokens_per_request: int = UNTRUSTED_MAX_TOKENS  # on an untrusted page; 0 = no limit
    max_queue: int = DEFAULT_MAX_QUEUE
    max_jobs_per_client: int = DEFAULT_MAX_JOBS_PER_CLIENT  # on an untrusted page; 0 = no limit
    max_tokens_per_client_hour: int = DEFAULT_MAX_TOKENS_PER_CLIENT_HOUR  # on an untrusted page; 0 = none

    @property
    def untrusted(self) -> bool:
        """Strangers can reach the page: shared link, ``--public``, or a non-loopback address."""
        return self.share or self.public or not is_loopback(self.host)

    @property
    def policy(self) -> Policy:
        """What this app's page and API may do (``engine.policy``): the owner's own loopback page
        has no work limit; an untrusted one has the launch option's."""
        limit = self.max_tokens_per_request if self.untrusted and self.max_tokens_per_request > 0 else None
        return Policy(untrusted=self.untrusted, allow_downloads=self.allow_downloads,
                      launch_models=self.launch_models, max_tokens_per_request=limit)

    def client_quota(self) -> ClientQuota | None:
        """A new per-client quota (``engine.quotas``) for an untrusted page, None for the owner's."""
        if not self.untrusted or not (self.max_jobs_per_client or self.max_tokens_per_client_hour):
            return None
        return ClientQuota(max_jobs=self.max_jobs_per_client or None,
                           max_tokens=self.max_tokens_per_client_hour or None)

    def model_access(self, spec: str) -> bool:
        """``Policy.model_access`` of this app: ``allow_local_paths`` for resolve_model."""
        return self.policy.model_access(spec)
