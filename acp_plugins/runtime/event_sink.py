"""Where the runtime tells of what happens (activations, messages, commands): the event bus.

The runtime does not import :mod:`acp_plugins.events`; the host hands the driver and
the dispatcher its bus under this face. ``listening`` lets them skip building an
event nobody would receive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["EventFeed", "EventSink"]


class EventFeed(Protocol):
    """One subscription of the bus, as the runtime sees it."""

    pattern: str
    #: Events dropped because the subscriber's queue was full.
    dropped: int

    def matches(self, topic: str) -> bool: ...

    async def get(self) -> Any:
        """The next event (``.topic``, ``.data``, ``.publisher``, ``.sequence``); raises
        ``StopAsyncIteration`` once closed and empty."""
        ...

    def pending(self) -> list[Any]:
        """Take every queued event at once, without waiting."""
        ...

    def requeue(self, events: Sequence[Any]) -> None:
        """Put ``events`` back at the front of the queue, in their order."""
        ...

    def close(self) -> None: ...


class EventSink(Protocol):
    """The event bus, as the runtime sees it."""

    @property
    def listening(self) -> bool:
        """Whether anyone subscribed at all."""
        ...

    def publish(self, topic: str, data: Mapping[str, Any], publisher: str = "host") -> int: ...

    def subscribe(
        self, pattern: str, subscriber: str = "host", *, limit: int | None = None
    ) -> EventFeed: ...
