"""Event topics and topic patterns: their grammar, matching, and whether two patterns meet.

A topic is a dotted name (``user.login``; the host's own are ``plugin:activated``:
``.`` and ``:`` both separate segments). A pattern is a topic in which a segment
may be ``*``, which matches exactly one segment: ``user.*`` matches ``user.login``,
not ``user.login.failed``.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["HOST_TOPIC_PREFIX", "check_pattern", "check_topic", "matcher", "overlap"]

#: Topics the host publishes its own events on (``plugin:activated``...); no plugin
#: publishes there, and subscribing needs ``read-system-info``: they tell of every plugin.
HOST_TOPIC_PREFIX = "plugin:"

_SEGMENT = r"[a-z0-9_-]+"
_TOPIC = re.compile(rf"^[a-z][a-z0-9_-]*(?:[.:]{_SEGMENT})*$")
_PATTERN = re.compile(rf"^(?:\*|[a-z][a-z0-9_-]*)(?:[.:](?:\*|{_SEGMENT}))*$")


def check_topic(topic: str) -> str:
    """``topic`` if it is a topic (no wildcards); else a ``ValueError`` that says why."""
    if not isinstance(topic, str) or not _TOPIC.match(topic):
        raise ValueError(
            f"{topic!r} is not a topic: dotted lowercase names (a-z, 0-9, '_', '-'), "
            "'.' or ':' between them, no wildcards"
        )
    return topic


def check_pattern(pattern: str) -> str:
    """``pattern`` if it is a topic pattern; else a ``ValueError`` that says why."""
    if not isinstance(pattern, str) or not _PATTERN.match(pattern):
        raise ValueError(
            f"{pattern!r} is not a topic pattern: dotted lowercase names "
            "(a-z, 0-9, '_', '-'), '.' or ':' between them, '*' for one whole segment"
        )
    return pattern


@lru_cache(maxsize=1024)
def matcher(pattern: str) -> re.Pattern[str]:
    """A regular expression matching exactly the topics ``pattern`` matches."""
    check_pattern(pattern)
    parts = re.split(r"([.:])", pattern)
    return re.compile(
        "".join(_SEGMENT if part == "*" else re.escape(part) for part in parts) + r"\Z"
    )


def overlap(first: str, second: str) -> bool:
    """Whether some topic matches both patterns."""
    a, b = re.split(r"([.:])", first), re.split(r"([.:])", second)
    return len(a) == len(b) and all(x == y or "*" in (x, y) for x, y in zip(a, b, strict=True))
