"""Where the runtime tells of what happens (activations, messages, commands): the event bus.

The runtime does not import :mod:`acp_plugins.events`; the host hands the driver and
the dispatcher its bus under this face. ``listening`` lets them skip building an
event nobody would receive.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["EventSink"]


class EventSink(Protocol):
    """The event bus, as the runtime sees it."""

    @property
    def listening(self) -> bool:
        """Whether anyone subscribed at all."""
        ...

    def publish(self, topic: str, data: Mapping[str, Any], publisher: str = "host") -> int: ...
