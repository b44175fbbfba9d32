"""The worker's side of an isolated plugin's subscriptions: handlers, and events in order.

``context.subscribe`` in a worker keeps the handler here under a subscription id
and asks the host to subscribe (the host checks the permission and the policy,
and a refusal is logged, since a decorator cannot wait for the host's answer).
The host then calls the worker with each event (``$event``) and waits for the
handler to return before it sends the next one of that subscription: the events
are handled one at a time, in order, and the host's bounded queue, timeout and
record of failures are the same as in-process.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from acp_plugins.events.bus import Event

if TYPE_CHECKING:
    from acp_plugins.isolation.worker import Worker

__all__ = ["WorkerEvents"]


class WorkerEvents:
    """The handlers of one worker's subscriptions, by subscription id."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._handlers: dict[int, Callable[[Any], Any]] = {}
        #: Subscriptions asked of the host and not answered yet.
        self.asking: set[asyncio.Task[Any]] = set()
        self._next = 0

    def subscribe(self, pattern: str, handler: Callable[[Any], Any]) -> int:
        self._next += 1
        subscription = self._next
        self._handlers[subscription] = handler
        asking = self._worker.loop.create_task(
            self._worker.ask("subscribe", {"pattern": pattern, "subscription": subscription})
        )
        self.asking.add(asking)
        asking.add_done_callback(self.asking.discard)
        asking.add_done_callback(lambda task: self._answered(task, subscription, pattern))
        return subscription

    async def settled(self) -> None:
        """Wait until the host answered every subscription asked so far.

        A call's answer waits for this: a plugin that subscribed in ``initialize`` is
        subscribed, in the host, once its ``initialize`` returned (as in-process).
        """
        while self.asking:
            await asyncio.wait(list(self.asking))

    def _answered(self, task: asyncio.Task[Any], subscription: int, pattern: str) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._handlers.pop(subscription, None)
            self._worker.context.logger.warning(
                "subscribing to '%s' was refused: %s", pattern, error
            )

    def unsubscribe(self, subscription: int) -> None:
        if self._handlers.pop(subscription, None) is not None:
            self._worker.loop.create_task(
                self._worker.ask("unsubscribe", {"subscription": subscription})
            )

    async def handle(self, subscription: int, frame: Mapping[str, Any]) -> None:
        """Run the handler of ``subscription`` on one event the host sent; what it raises
        goes back to the host (an ended subscription's events are ignored)."""
        handler = self._handlers.get(subscription)
        if handler is None:
            return
        event = Event(
            topic=str(frame.get("topic")),
            data=frame.get("data") or {},
            publisher=str(frame.get("publisher")),
            sequence=int(frame.get("sequence") or 0),
            at=datetime.fromisoformat(str(frame.get("at"))),
        )
        result = handler(event)
        if inspect.isawaitable(result):
            await result
