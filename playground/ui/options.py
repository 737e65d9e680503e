"""Launch options; the trust policy derived from them lives in ``engine.policy``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from playground.engine.policy import Policy
from playground.paths import DEMO_MODEL_ID

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
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

    @property
    def untrusted(self) -> bool:
        """Strangers can reach the page: shared link or a non-loopback address."""
        return self.share or not is_loopback(self.host)

    @property
    def policy(self) -> Policy:
        """What this app's page and API may do (``engine.policy``)."""
        return Policy(untrusted=self.untrusted, allow_downloads=self.allow_downloads,
                      launch_models=self.launch_models)

    def model_access(self, spec: str) -> bool:
        """``Policy.model_access`` of this app: ``allow_local_paths`` for resolve_model."""
        return self.policy.model_access(spec)
