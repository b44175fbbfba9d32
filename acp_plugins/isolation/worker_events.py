"""The worker's side of an isolated plugin's subscriptions: handlers, and events in order.

``context.subscribe`` in a worker keeps the handler here under a subscription id
and asks the host to subscribe (the host checks the permission and the policy,
and a refusal is logged, since a decorator cannot wait for the host's answer).
The host then sends each event as an ``event`` frame; the events of one
subscription are handled one at a time, in the order they came, like in-process.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from acp_plugins.events.bus import Event
from acp_plugins.isolation.protocol import decode_value

if TYPE_CHECKING:
    from acp_plugins.isolation.worker import Worker

__all__ = ["WorkerEvents"]


class WorkerEvents:
    """The handlers of one worker's subscriptions, by subscription id."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._handlers: dict[int, Callable[[Any], Any]] = {}
        self._queues: dict[int, asyncio.Queue[Event]] = {}
        self._next = 0

    def subscribe(self, pattern: str, handler: Callable[[Any], Any]) -> int:
        self._next += 1
        subscription = self._next
        self._handlers[subscription] = handler
        asking = self._worker.loop.create_task(
            self._worker.ask("subscribe", {"pattern": pattern, "subscription": subscription})
        )
        asking.add_done_callback(lambda task: self._answered(task, subscription, pattern))
        return subscription

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

    def deliver(self, subscription: int, frame: Mapping[str, Any]) -> None:
        """Queue one event the host sent for ``subscription`` (dropped if it was ended)."""
        if subscription not in self._handlers:
            return
        event = Event(
            topic=str(frame.get("topic")),
            data=decode_value(frame.get("data")) or {},
            publisher=str(frame.get("publisher")),
            sequence=int(frame.get("sequence") or 0),
            at=datetime.fromisoformat(str(frame.get("at"))),
        )
        queue = self._queues.get(subscription)
        if queue is None:
            queue = self._queues[subscription] = asyncio.Queue()
            self._worker.loop.create_task(self._handle(subscription, queue))
        queue.put_nowait(event)

    async def _handle(self, subscription: int, queue: asyncio.Queue[Event]) -> None:
        while subscription in self._handlers:
            event = await queue.get()
            handler = self._handlers.get(subscription)
            if handler is None:
                return
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception as error:  # the plugin's handler: logged, the next event goes on
                self._worker.context.logger.warning(
                    "handling event '%s' failed: %s: %s", event.topic, type(error).__name__, error
                )
