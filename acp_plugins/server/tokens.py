"""The server's bearer tokens: an ``admin`` one and a ``read`` one.

Each comes from the environment (``ACP_SERVER_TOKEN``, ``ACP_SERVER_READ_TOKEN``) or,
if not set there, from a file in the data directory (``server.token``,
``server.read-token``), generated with :func:`secrets.token_urlsafe` at the first
start and written with mode 0600. A request's token is compared with each in
constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["ADMIN", "READ", "Scope", "ServerTokens"]

Scope = Literal["read", "admin"]
READ: Scope = "read"
ADMIN: Scope = "admin"

_SOURCES: dict[Scope, tuple[str, str]] = {
    ADMIN: ("ACP_SERVER_TOKEN", "server.token"),
    READ: ("ACP_SERVER_READ_TOKEN", "server.read-token"),
}


def _from_file(path: Path) -> str:
    """The token in ``path``, made (0600, atomically) if there is none yet."""
    try:
        existing = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    # mkstemp: a new file (O_EXCL, 0600), never one left there before or a link
    descriptor, spare = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    os.replace(spare, path)
    return token


@dataclass(frozen=True, slots=True)
class ServerTokens:
    """The tokens the server accepts, and where each came from."""

    admin: str
    read: str
    #: Where each token was found: ``ACP_SERVER_TOKEN`` or a file's path.
    origins: Mapping[Scope, str]

    @classmethod
    def load(cls, data_root: Path, environ: Mapping[str, str] = os.environ) -> ServerTokens:
        """The tokens from the environment, else from (new) files under ``data_root``."""
        found: dict[Scope, str] = {}
        origins: dict[Scope, str] = {}
        for scope, (variable, name) in _SOURCES.items():
            if environ.get(variable, "").strip():
                found[scope], origins[scope] = environ[variable].strip(), variable
            else:
                path = data_root / name
                found[scope], origins[scope] = _from_file(path), str(path)
        return cls(admin=found[ADMIN], read=found[READ], origins=origins)

    def scope_of(self, token: str | None) -> Scope | None:
        """The scope ``token`` grants (``None``: none), compared in constant time."""
        if not token:
            return None
        given = token.encode()
        is_admin = hmac.compare_digest(given, self.admin.encode())
        is_read = hmac.compare_digest(given, self.read.encode())
        return ADMIN if is_admin else READ if is_read else None
