"""What a worker sends on its own: how much of it the host takes, and where its reports go.

A worker may write as fast as its socket goes. The host takes frames up to a
budget (a token bucket: ``frames_per_second`` sustained, twice that in a burst);
a worker over it is killed and the event recorded, before its frames can stall
the host's loop or grow its memory. Log lines and sandbox reports are the
plugin's own words: they reach the host's log and the audit log made printable
(:func:`~acp_plugins.printable.printable`), and only with ``write-logs``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from acp_plugins.isolation.restarts import WorkerEvents
from acp_plugins.loading.permissions import Permission
from acp_plugins.printable import printable

__all__ = ["FrameBudget", "WorkerReports"]


class FrameBudget:
    """A token bucket of frames for one worker's channel."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, frames_per_second: int) -> None:
        self._rate = float(frames_per_second)
        self._burst = 2.0 * frames_per_second
        self._tokens = self._burst
        self._stamp = time.monotonic()

    def spend(self) -> str | None:
        """Take one frame; why the worker must be stopped if it is over its budget."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1.0:
            return f"flooded its channel (over {self._rate:g} frames per second)"
        self._tokens -= 1.0
        return None


class WorkerReports:
    """Forwards a worker's log lines and sandbox refusals, made printable."""

    __slots__ = ("events", "granted", "logger", "plugin_id")

    def __init__(
        self, plugin_id: str, granted: frozenset[Permission], events: WorkerEvents
    ) -> None:
        self.plugin_id = plugin_id
        self.granted = granted
        self.events = events
        self.logger = logging.getLogger(f"acp_plugins.plugin.{plugin_id}")

    def take(self, frame: Mapping[str, Any]) -> None:
        """Handle a ``log`` or ``violation`` frame."""
        if frame["op"] == "log":
            if Permission.WRITE_LOGS in self.granted:
                level = frame.get("level")
                self.logger.log(
                    level if isinstance(level, int) and 0 <= level <= 50 else logging.INFO,
                    "%s",
                    printable(frame.get("message", ""), limit=2000),
                )
            return
        self.events.sandbox_refused(
            self.plugin_id,
            printable(frame.get("event", "?"), limit=100),
            printable(frame.get("message", ""), limit=500),
        )
