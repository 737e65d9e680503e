"""Who owns a comparison: the key every history query is scoped to.

- ``user:<name>``: the authenticated user of a page with a login (gradio's ``request.username``);
- ``browser:<digest>``: a page without login. The browser keeps a random token of its own
  (``gr.BrowserState``, so it survives reloads and restarts); the store only ever sees a digest of
  it, so the database and the logs never hold the secret that reads the history;
- ``local``: the benchmark CLI and the machine's owner.

A token is a bearer secret: 32 random bytes, never derived from gradio's session hash (which other
requests carry). A missing or malformed token is replaced by a new one, never trusted.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets

from playground.history.location import data_root

LOCAL = "local"
SECRET_FILE = "browser-state.key"
USER_PREFIX = "user:"
BROWSER_PREFIX = "browser:"
MAX_OWNER_CHARS = 256
TOKEN_BYTES = 32
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32)


def user_owner(username: str) -> str:
    """The owner key of an authenticated user."""
    if not isinstance(username, str) or not username.strip():
        raise ValueError("A user name is needed to own history.")
    return check_owner(USER_PREFIX + username)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def valid_token(token: object) -> bool:
    return isinstance(token, str) and _TOKEN.fullmatch(token) is not None


def browser_owner(token: object) -> tuple[str, str]:
    """``(owner key, token)`` for a browser: its token when well formed, else a fresh one to keep."""
    if not valid_token(token):
        token = new_token()
    digest = hashlib.sha256(str(token).encode("ascii")).hexdigest()[:32]
    return BROWSER_PREFIX + digest, str(token)


def page_owner(username: str | None, token: object, trusted: bool = False) -> tuple[str, str]:
    """The owner of a page's request: its login when there is one; on a trusted (loopback, not
    shared) page the machine's owner, ``local``, who sees the CLI's history too; else the digest
    of its browser's token. Returns the token to keep in the browser (unchanged when valid)."""
    if username:
        return user_owner(username), token if valid_token(token) else new_token()
    if trusted:
        return LOCAL, token if valid_token(token) else new_token()
    return browser_owner(token)


def check_owner(owner: object) -> str:
    """An owner key as the store accepts it: a non-empty printable string of bounded length."""
    if not isinstance(owner, str) or not owner:
        raise ValueError("History needs an owner (a user, a browser, or 'local').")
    if len(owner) > MAX_OWNER_CHARS:
        raise ValueError(f"An owner key is at most {MAX_OWNER_CHARS} characters.")
    if not owner.isprintable():
        raise ValueError("An owner key cannot hold control characters.")
    return owner


def browser_state_secret() -> str:
    """The key ``gr.BrowserState(secret=...)`` encrypts the browser's token with, made once and kept
    in the data folder (this user's alone): gradio's default is a new key per start, which would
    make every browser's token unreadable, and so its history unreachable, after a restart."""
    path = data_root() / SECRET_FILE
    if path.exists():
        secret = path.read_text(encoding="ascii", errors="replace").strip()
        if valid_token(secret):
            return secret
        path.unlink(missing_ok=True)  # damaged: browsers get new tokens, their old history expires
    # Written whole under another name, then linked into place: a process starting at the same
    # time reads either no file or the whole key, and the first link wins.
    staging = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(staging, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(new_token())
    try:
        os.link(staging, path)
    except FileExistsError:
        pass
    finally:
        staging.unlink()
    secret = path.read_text(encoding="ascii", errors="replace").strip()
    if not valid_token(secret):
        raise OSError(f"{path} holds no usable key; delete it to make a new one")
    return secret
