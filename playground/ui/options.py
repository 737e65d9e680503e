"""Launch options and the trust policy derived from them (who may pick which model)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from playground.models.catalog import CATALOG
from playground.models.resolve import HUB_ID, ModelNotFoundError, needs_download
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

    def model_access(self, spec: str) -> bool:
        """Check ``spec`` against the policy; returns ``allow_local_paths`` for resolve_model."""
        spec = (spec or DEMO_MODEL_ID).strip()
        if not self.untrusted or spec in ("", *CATALOG, *self.launch_models):
            return True  # named models are no paths: any page may pick them
        if HUB_ID.match(spec) and not self.allow_downloads and needs_download(spec):
            raise ModelNotFoundError(
                f"{spec!r} is not on this machine, and downloading models from a shared page is "
                "turned off: whoever started the app can allow it with `--allow-downloads`, or "
                "start it with `--model` instead."
            )
        return False
