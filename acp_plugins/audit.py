"""The audit log: one JSON line per security-relevant event.

Every line has ``at`` (UTC, ISO 8601), ``plugin_id``, ``action``, ``outcome`` and,
where one is involved, ``permission``, plus a human ``detail``. Actions:

================  =============================================================
action            when
================  =============================================================
``grant``         a plugin passed the permission check at load (``permission``: all granted)
``refuse``        a plugin asked for a permission it is not granted; it is not loaded
``load``          a plugin was loaded (``detail``: in-process or isolated)
``deny``          a context operation was refused at run time (``permission`` named)
``sandbox``       a worker's sandbox refused an operation (``detail``: which)
``config``        a runtime configuration change was applied or refused
``worker``        a worker started, exited, was killed, restarted or throttled
``circuit``       a plugin's worker failed too often and the plugin was suspended
================  =============================================================

Lines are appended with one ``write`` each on a file opened in append mode, so
several processes can share one log without interleaving lines.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from acp_plugins.printable import printable

__all__ = ["AuditEntry", "AuditLog", "read_audit_log"]

logger = logging.getLogger(__name__)

#: How many entries an :class:`AuditLog` keeps in memory as well.
RECENT = 1000


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited event."""

    plugin_id: str
    action: str
    outcome: str
    permission: str | None = None
    detail: str = ""
    at: datetime = field(default_factory=_now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "plugin_id": self.plugin_id,
            "action": self.action,
            "outcome": self.outcome,
            "permission": self.permission,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditEntry:
        return cls(
            plugin_id=str(data["plugin_id"]),
            action=str(data["action"]),
            outcome=str(data["outcome"]),
            permission=data.get("permission"),
            detail=str(data.get("detail", "")),
            at=datetime.fromisoformat(str(data["at"])),
        )


class AuditLog:
    """Appends entries to a JSON-lines file (if given) and keeps the recent ones in memory."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.recent: deque[AuditEntry] = deque(maxlen=RECENT)
        self._warned = False

    def record(
        self,
        plugin_id: str,
        action: str,
        outcome: str,
        *,
        permission: str | None = None,
        detail: str = "",
    ) -> AuditEntry:
        """Record one event (a failure to write the file is logged, never raised)."""
        # plugins supply much of the detail: one line, no control characters, bounded
        detail = printable(detail, limit=2000)
        entry = AuditEntry(plugin_id, action, outcome, permission, detail)
        self.recent.append(entry)
        logger.info("audit: %s %s %s %s", plugin_id, action, outcome, detail)
        if self.path is not None:
            line = json.dumps(entry.to_dict(), separators=(",", ":")) + "\n"
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(descriptor, line.encode())
                finally:
                    os.close(descriptor)
            except OSError as error:
                if not self._warned:
                    logger.error("cannot write the audit log %s: %s", self.path, error)
                    self._warned = True
        return entry

    def entries(self, plugin_id: str | None = None) -> list[AuditEntry]:
        """The recent entries kept in memory, optionally of one plugin."""
        return [e for e in self.recent if plugin_id is None or e.plugin_id == plugin_id]


def read_audit_log(
    path: str | Path,
    *,
    plugin_id: str | None = None,
    actions: Iterable[str] = (),
) -> tuple[list[AuditEntry], int]:
    """The entries of an audit log file, filtered, and how many lines were unreadable.

    A missing file has no entries. Unreadable lines (a torn last line, garbage) are
    counted, not raised, so that one bad line never hides the rest.
    """
    wanted = set(actions)
    entries, bad = [], 0
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = AuditEntry.from_dict(json.loads(line))
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        if plugin_id is not None and entry.plugin_id != plugin_id:
            continue
        if wanted and entry.action not in wanted:
            continue
        entries.append(entry)
    return entries, bad
