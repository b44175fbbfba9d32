"""Plugins' subscriptions to the event bus: each delivered to its handler, guarded, in order.

A plugin instance subscribes through its context (``@context.subscribe("user.*")``).
Each subscription is a bus subscription of its own with a bounded queue (full:
its oldest event is dropped and counted), and one task hands its events to the
handler one at a time, in the order they were published, within the call
timeout; a handler that raises or is late is recorded on the plugin's record
like any call, and the next event goes on.

Events reach the instance that serves. One that arrives while the plugin is
suspended is dropped (counted on the record as ``missed_events``); while a new
instance of the plugin comes up beside the serving one (a reload), the new
instance's events are held, and at the switch (:meth:`PluginFeeds.handover`) the
old instance stops receiving, finishes what it had queued, and the new one gets
the held events that the old one was not subscribed to: no event goes to both
and none is lost.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from acp_plugins.audit import AuditLog
from acp_plugins.printable import printable
from acp_plugins.runtime.calls import CallGuard
from acp_plugins.runtime.catalog import PluginCatalog
from acp_plugins.runtime.context import topic_syntax_error
from acp_plugins.runtime.event_sink import EventFeed, EventSink
from acp_plugins.runtime.lifecycle import PluginState
from acp_plugins.runtime.record import PluginFailure

__all__ = ["FeedToken", "PluginFeeds"]

logger = logging.getLogger(__name__)

#: The name an event handler's calls are counted under on the record.
HANDLER_STATS = "event_handler"


@dataclass(eq=False)
class FeedToken:
    """One plugin subscription: what to call, and where its events come from."""

    plugin_id: str
    #: The host-side context of the instance that subscribed.
    owner: object
    subscription: EventFeed
    handler: Callable[[Any], Any]
    task: asyncio.Task[None] | None = None
    held: deque[Any] = field(default_factory=deque)
    #: Set at a handover: deliver what is queued, then end.
    retiring: bool = False

    def close(self) -> None:
        """Stop at once (an unload): nothing more is delivered."""
        self.subscription.close()
        if self.task is not None:
            self.task.cancel()


class PluginFeeds:
    """Every plugin subscription, by plugin id."""

    def __init__(
        self, catalog: PluginCatalog, guard: CallGuard, bus: EventSink, audit: AuditLog
    ) -> None:
        self.catalog = catalog
        self.guard = guard
        self.bus = bus
        self.audit = audit
        self._tokens: dict[str, list[FeedToken]] = {}
        #: plugin id -> the old instance's subscriptions at a reload, until they are drained.
        self._retiring: dict[str, list[FeedToken]] = {}

    # -- what a plugin's context asks for (permission-checked) -------------------------

    def checked_subscribe(
        self, caller: str, owner: object, pattern: str, handler: Callable[[Any], Any]
    ) -> FeedToken:
        """:meth:`subscribe`, once the pattern and the host's policy allow it."""
        self._refuse(caller, pattern, "subscribe")
        return self.subscribe(caller, owner, pattern, handler)

    def publish(self, caller: str, topic: str, data: Any) -> int:
        """Publish ``data`` on ``topic`` for ``caller``, once the topic and policy allow it."""
        self._refuse(caller, topic, "publish")
        payload = data if isinstance(data, dict) else {"value": data}
        return self.bus.publish(topic, payload, publisher=caller)

    def check(self, caller: str, pattern: str, action: str) -> None:
        """Raise (and audit) the refusal of ``caller`` to ``action`` on ``pattern``, if any."""
        record = self.catalog.records.get(caller)
        granted = record.granted if record is not None else frozenset()
        denial = self.catalog.policy.topic_denial(caller, granted, pattern, action)
        if denial is not None:
            self.audit.record(
                caller, "deny", "denied", permission=denial.permission, detail=denial.message
            )
            raise denial

    def _refuse(self, caller: str, name: str, action: str) -> None:
        syntax = topic_syntax_error(caller, name, action)
        if syntax is not None:
            raise syntax
        self.check(caller, name, action)

    def topic_rules(self) -> dict[str, dict[str, list[str]]]:
        """The host's per-topic grants (a worker checks against them for early refusals)."""
        return self.catalog.policy.topic_rules()

    def subscribe(
        self, plugin_id: str, owner: object, pattern: str, handler: Callable[[Any], Any]
    ) -> FeedToken:
        """Deliver the events matching ``pattern`` published from now on to ``handler``."""
        token = FeedToken(plugin_id, owner, self.bus.subscribe(pattern, plugin_id), handler)
        token.task = asyncio.get_running_loop().create_task(self._deliver(token))
        self._tokens.setdefault(plugin_id, []).append(token)
        return token

    def close_owner(self, owner: object) -> None:
        """End every subscription of one instance (it is unloaded or discarded)."""
        for tokens in self._tokens.values():
            for token in [t for t in tokens if t.owner is owner]:
                token.close()
                tokens.remove(token)

    def close(self, token: FeedToken) -> None:
        token.close()
        tokens = self._tokens.get(token.plugin_id, [])
        if token in tokens:
            tokens.remove(token)

    def handover(self, plugin_id: str, old: object, new: object) -> None:
        """At a reload's switch: the old instance's subscriptions end, the new one's start.

        The old instance keeps only the event it is handling now; what was queued for it
        and not yet handed to it goes to the new instance, in order of publication, with
        what the new one held since it subscribed (each event once).
        """
        tokens = self._tokens.get(plugin_id, [])
        retiring = [t for t in tokens if t.owner is old]
        undelivered: list[Any] = []
        for token in retiring:
            token.retiring = True
            token.subscription.close()  # nothing new; the event in hand still goes to the old
            undelivered.extend(token.subscription.pending())
            tokens.remove(token)
        self._retiring.setdefault(plugin_id, []).extend(retiring)
        for token in (t for t in tokens if t.owner is new):
            taken = {id(event) for event in undelivered}
            fresh = [
                event
                for event in token.held
                if id(event) in taken
                or not any(r.subscription.matches(event.topic) for r in retiring)
            ]
            mine = [e for e in undelivered if token.subscription.matches(e.topic)]
            merged = {id(event): event for event in (*mine, *fresh)}
            token.held.clear()
            token.subscription.requeue(sorted(merged.values(), key=lambda e: e.sequence))

    async def drained(self, plugin_id: str, seconds: float) -> None:
        """Wait up to ``seconds`` for the old instance to finish the events in its hands."""
        tasks = [t.task for t in self._retiring.pop(plugin_id, []) if t.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=seconds)

    def subscriptions(self, plugin_id: str) -> list[dict[str, Any]]:
        """The plugin's subscriptions, for listings."""
        return [
            {"pattern": t.subscription.pattern, "dropped": t.subscription.dropped}
            for t in self._tokens.get(plugin_id, [])
        ]

    async def _deliver(self, token: FeedToken) -> None:
        while True:
            try:
                event = await token.subscription.get()
            except StopAsyncIteration:
                return
            record = self.catalog.records.get(token.plugin_id)
            if record is None:
                return
            if token.retiring or record.context is token.owner:
                if record.state is PluginState.ACTIVE or token.retiring:
                    await self._run(token, event)
                else:
                    record.missed_events += 1
            else:  # a new instance, not serving yet: held until the switch
                token.held.append(event)
                if len(token.held) > 1000:
                    token.held.popleft()
                    token.subscription.dropped += 1

    async def _run(self, token: FeedToken, event: Any) -> None:
        record = self.catalog.records[token.plugin_id]
        stats = record.stats(HANDLER_STATS)
        started = perf_counter()
        try:
            result = token.handler(event)
            if inspect.isawaitable(result):
                await asyncio.wait_for(result, self.guard.timeout)
        except asyncio.CancelledError:
            raise
        except (Exception, SystemExit) as error:
            late = isinstance(error, asyncio.TimeoutError)
            stats.add(perf_counter() - started, error=True, timeout=late)
            why = (
                f"did not handle it within {self.guard.timeout:g} s"
                if late
                else f"{type(error).__name__}: {printable(error, limit=500)}"
            )
            message = f"'{token.plugin_id}' failed on event '{event.topic}': {why}"
            record.call_errors.append(PluginFailure(HANDLER_STATS, message))
            logger.warning("%s", message)
            return
        stats.add(perf_counter() - started)
