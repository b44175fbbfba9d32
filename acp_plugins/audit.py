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
``isolation``     the kernel layers a plugin's worker started with (``detail``: which)
``circuit``       a plugin's worker failed too often and the plugin was suspended
``suspend``       a plugin was suspended (by hand, with a dependency, or by its circuit)
``resume``        a suspended plugin was made active again
``reload``        a reload or upgrade of a plugin (``outcome``: ok, refused, rolled back...)
``install``       an install from a package index (``outcome``: ok, refused, failed)
``uninstall``     a plugin's distribution was removed, or found gone by a rescan
``audit``         the log itself could not be written for a while (``detail``: how many lost)
================  =============================================================

Lines are appended with one ``write`` each on a file opened in append mode, so
several processes can share one log without interleaving lines. A write that
fails or comes up short (a full disk) never takes a later line with it: the next
line written starts on a line of its own, the records that could not be written
are counted (:attr:`AuditLog.dropped`), and once writing works again an entry of
action ``audit`` says how many were lost.
"""

from __future__ import annotations

import json
import logging
import os
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, get_args

from acp_plugins.errors import AcpPluginsError
from acp_plugins.printable import printable

__all__ = [
    "AUDIT_ACTIONS",
    "AuditAction",
    "AuditEntry",
    "AuditLog",
    "AuditLogError",
    "read_audit_log",
]

#: What an audit entry records (the table above); the type checker holds every call to it.
AuditAction = Literal[
    "grant", "refuse", "load", "deny", "sandbox", "config", "worker", "isolation", "circuit",
    "suspend", "resume", "reload", "install", "uninstall", "audit",
]  # fmt: skip
AUDIT_ACTIONS: tuple[str, ...] = get_args(AuditAction)

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


class AuditLogError(AcpPluginsError):
    """The audit log file cannot be read."""


class AuditLog:
    """Appends entries to a JSON-lines file (if given) and keeps the recent ones in memory."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.recent: deque[AuditEntry] = deque(maxlen=RECENT)
        #: Records that could not be written to the file (they are still in ``recent``).
        self.dropped = 0
        #: Why the last record could not be written, while writing fails.
        self.failure: str | None = None
        self._lost = 0  # dropped since writing last worked
        self._torn = False  # the last write may have left a partial line
        #: Kept open between records (opening per record was two syscalls and a mkdir
        #: for every entry); closed on a failure, by :meth:`close`, or with the log.
        self._descriptor: int | None = None
        self._closer: weakref.finalize[Any, Any] | None = None

    def record(
        self,
        plugin_id: str,
        action: AuditAction,
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
            self._append(json.dumps(entry.to_dict(), separators=(",", ":")) + "\n")
        return entry

    def _append(self, line: str) -> None:
        assert self.path is not None
        data = ("\n" if self._torn else "") + line  # a torn line must not swallow this one
        try:
            written = os.write(self._open(), data.encode())
            if written != len(data.encode()):
                self._torn = written > 0 or self._torn
                raise OSError(f"short write: {written} of {len(data.encode())} bytes (disk full?)")
        except OSError as error:
            self.close()  # the next record opens the file again
            self.dropped += 1
            self._lost += 1
            if self.failure is None:
                logger.error("cannot write the audit log %s: %s", self.path, error)
            self.failure = str(error.strerror or error)
            return
        self._torn = False
        if self._lost:
            lost, self._lost, self.failure = self._lost, 0, None
            logger.warning(
                "the audit log %s is written again; %d records were lost", self.path, lost
            )
            self.record(
                "host",
                "audit",
                "recovered",
                detail=f"{lost} records could not be written while the log failed; they are lost",
            )

    def _open(self) -> int:
        """The open log file; opened again if the file was removed since."""
        assert self.path is not None
        if self._descriptor is not None and os.fstat(self._descriptor).st_nlink == 0:
            self.close()
        if self._descriptor is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._closer = weakref.finalize(self, os.close, self._descriptor)
        return self._descriptor

    def close(self) -> None:
        """Close the file (the next record opens it again)."""
        if self._closer is not None:
            self._closer()
        self._descriptor = self._closer = None

    @property
    def problem(self) -> str | None:
        """What went wrong writing the file, for people; ``None`` while nothing was lost."""
        if not self.dropped:
            return None
        text = f"{self.dropped} audit records could not be written to {self.path}"
        return text + (f" ({self.failure})" if self.failure else "; it is written again now")

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
    except OSError as error:
        raise AuditLogError(
            f"cannot read the audit log {path}: {error.strerror or error}; check the host "
            "setting audit_log (or --data-dir)"
        ) from None
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
