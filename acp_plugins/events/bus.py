"""The event bus: topics, subscriptions with bounded queues, at-most-once delivery.

Topics are dotted names (``user.login``, and the host's own ``plugin:activated``:
``.`` and ``:`` both separate segments). A pattern is a topic in which a segment
may be ``*``, which matches exactly one segment (``user.*`` matches ``user.login``,
not ``user.login.failed``; ``plugin:*`` matches every lifecycle event). A
subscriber gets the events published after it subscribed, each at most once, in
the order they were published; its queue holds at most ``limit`` events, and when
it is full the **oldest** is dropped and counted (:attr:`Subscription.dropped`), so
a slow subscriber never holds up a publisher.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from acp_plugins.topics import check_topic, matcher

__all__ = ["DEFAULT_QUEUE_LIMIT", "Event", "EventBus", "Subscription"]

#: Events a subscription holds before it drops its oldest.
DEFAULT_QUEUE_LIMIT = 1000


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class Event:
    """One published event: its topic, its data, who published it and when."""

    topic: str
    data: Mapping[str, Any]
    #: ``"host"`` for the host's own events, else the publishing plugin's id.
    publisher: str
    #: Increasing over the bus's life: the order of publication.
    sequence: int
    at: datetime = field(default_factory=_now)


class Subscription:
    """What one subscriber receives: an async iterator over its events, oldest first."""

    def __init__(self, bus: EventBus, pattern: str, subscriber: str, limit: int) -> None:
        self.pattern = pattern
        self.subscriber = subscriber
        self.limit = limit
        #: Events dropped because the queue was full (the oldest go first).
        self.dropped = 0
        self._matcher = matcher(pattern)
        self._bus = bus
        self._queue: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def matches(self, topic: str) -> bool:
        return self._matcher.match(topic) is not None

    def offer(self, event: Event) -> None:
        """Queue ``event`` (called by the bus); a full queue drops its oldest."""
        if len(self._queue) >= self.limit:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._wake()

    def requeue(self, events: Sequence[Event]) -> None:
        """Put ``events`` back at the front of the queue, in their order (a handover)."""
        self._queue.extendleft(reversed(events))
        while len(self._queue) > self.limit:
            self._queue.pop()
            self.dropped += 1
        if events:
            self._wake()

    def pending(self) -> list[Event]:
        """Take every queued event at once, without waiting."""
        taken = list(self._queue)
        self._queue.clear()
        return taken

    async def get(self) -> Event:
        """The next event, waiting for one; raises ``StopAsyncIteration`` once closed."""
        while not self._queue:
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def close(self) -> None:
        """Stop receiving; an iteration in progress ends after the queued events."""
        self.closed = True
        self._bus.unsubscribe(self)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class EventBus:
    """Publishes events to every subscription whose pattern matches their topic."""

    def __init__(self, queue_limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self.queue_limit = queue_limit
        self._subscriptions: list[Subscription] = []
        self._sequence = 0

    @property
    def listening(self) -> bool:
        """Whether anyone subscribed (publishers may skip building an event otherwise)."""
        return bool(self._subscriptions)

    def subscribe(
        self, pattern: str, subscriber: str = "host", *, limit: int | None = None
    ) -> Subscription:
        """Receive the events published from now on whose topic matches ``pattern``."""
        subscription = Subscription(self, pattern, subscriber, limit or self.queue_limit)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def publish(self, topic: str, data: Mapping[str, Any], publisher: str = "host") -> int:
        """Deliver an event to every matching subscription; how many it reached."""
        if not self._subscriptions:  # nobody listens: nothing to build
            return 0
        check_topic(topic)
        self._sequence += 1
        event = Event(topic, dict(data), publisher, self._sequence)
        reached = 0
        for subscription in list(self._subscriptions):
            if subscription.matches(topic):
                subscription.offer(event)
                reached += 1
        return reached
