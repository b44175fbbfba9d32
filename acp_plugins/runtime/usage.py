"""What the host was asked to do: messages by type, commands by name, queries by source.

The dispatcher counts here; telemetry stores and exposes the counts. Names are
bounded by what the installed plugins declare (a message type no handler names is
counted as :data:`OTHER`; a command or source counts only once it resolved to a
plugin's), so a caller sending made-up names cannot grow the counts or the labels
of the metrics without bound.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["OTHER", "USAGE_KINDS", "UsageCounts"]

#: The name counted for a message type that no installed handler declares.
OTHER = "(other)"

#: What is counted: messages by type, commands by ``plugin:command``, queries by
#: ``plugin:source``.
USAGE_KINDS = ("messages", "commands", "queries")


class UsageCounts:
    """Counts of what the host was asked, by kind and name, since the host started."""

    __slots__ = ("counts", "messages")

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {kind: Counter() for kind in USAGE_KINDS}
        #: ``counts["messages"]``, for the dispatcher's every message.
        self.messages = self.counts["messages"]

    def count(self, kind: str, name: str) -> None:
        """One more ``kind`` (one of :data:`USAGE_KINDS`) called ``name``."""
        counter = self.counts[kind]
        counter[name] = counter.get(name, 0) + 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        """A copy of every count, by kind then name."""
        return {kind: dict(counter) for kind, counter in self.counts.items()}
