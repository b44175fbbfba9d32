"""The event bus (topics, wildcards, bounded queues) and the host's lifecycle events on it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from acp_plugins import TRUST_ALL, Event, EventBus, Message, PluginHost

Run = Callable[..., Any]


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("user.*", "user.login", True),
        ("user.*", "user.login.failed", False),
        ("user.*", "user", False),
        ("user.*.failed", "user.login.failed", True),
        ("plugin:*", "plugin:activated", True),
        ("plugin:*", "plugin.activated", False),
        ("*", "anything", True),
        ("user.login", "user.login", True),
        ("user.login", "user.logout", False),
    ],
)
def test_a_star_matches_exactly_one_segment(pattern: str, topic: str, matches: bool) -> None:
    bus = EventBus()
    subscription = bus.subscribe(pattern)
    assert bus.publish(topic, {}) == int(matches)
    assert [e.topic for e in subscription.pending()] == ([topic] if matches else [])


@pytest.mark.parametrize("pattern", ["User.*", "user..x", "user.*x", "", "user.", "a b"])
def test_a_bad_pattern_or_topic_is_refused_with_what_is_allowed(pattern: str) -> None:
    bus = EventBus()
    with pytest.raises(ValueError, match="is not a topic pattern"):
        bus.subscribe(pattern)
    bus.subscribe("x")  # someone listens: topics are checked
    with pytest.raises(ValueError, match="is not a topic"):
        bus.publish(pattern or "*", {})


def test_events_come_once_in_order_and_only_after_subscribing() -> None:
    bus = EventBus()
    bus.publish("a.b", {"n": 0})  # nobody yet: not kept for later subscribers
    first, second = bus.subscribe("a.*"), bus.subscribe("a.*")
    for n in range(1, 4):
        bus.publish("a.b", {"n": n}, publisher="p")
    events = first.pending()
    assert [e.data["n"] for e in events] == [1, 2, 3] and first.pending() == []
    assert [e.sequence for e in events] == sorted(e.sequence for e in events)
    assert {e.publisher for e in events} == {"p"}
    assert [e.data["n"] for e in second.pending()] == [1, 2, 3]  # each subscriber its own copy


def test_a_full_queue_drops_its_oldest_and_counts_them() -> None:
    bus = EventBus(queue_limit=3)
    slow = bus.subscribe("t")
    for n in range(5):
        bus.publish("t", {"n": n})
    assert [e.data["n"] for e in slow.pending()] == [2, 3, 4] and slow.dropped == 2


def test_a_subscription_is_an_async_iterator_that_ends_when_closed() -> None:
    bus = EventBus()
    subscription = bus.subscribe("t")

    async def scenario() -> list[Any]:
        got: list[Any] = []

        async def reader() -> None:
            async for event in subscription:
                got.append(event.data["n"])

        task = asyncio.ensure_future(reader())
        await asyncio.sleep(0)
        bus.publish("t", {"n": 1})
        bus.publish("t", {"n": 2})
        await asyncio.sleep(0)
        subscription.close()
        await asyncio.wait_for(task, 1)
        return got

    assert asyncio.run(scenario()) == [1, 2]
    assert bus.publish("t", {"n": 3}) == 0  # closed: unsubscribed


def test_the_host_publishes_its_lifecycle_messages_and_commands(
    samples_dir: Path, tmp_path: Path, run: Run
) -> None:
    host = PluginHost(search_path=[samples_dir], data_root=tmp_path / "data", isolation=TRUST_ALL)
    lifecycle = host.events.subscribe("plugin:*")
    run(host.start())
    activated = {e.data["plugin_id"]: e.data for e in lifecycle.pending()}
    assert set(activated) == {"echo", "tools", "sqlite-store", "activity-analytics"}
    assert activated["echo"]["capabilities"]["message_types"] == ["chat", "echo"]
    assert activated["tools"]["capabilities"]["commands"] == ["add", "time", "upper", "wordcount"]
    assert activated["sqlite-store"]["capabilities"]["data_sources"] == ["agent-events", "agents"]
    run(host.send(Message(type="echo", content="hi", sender="alice")))
    run(host.run_command("add", ["2", "3"]))
    message, command = lifecycle.pending()
    assert (message.topic, message.data) == (
        "plugin:message",
        {"from": "alice", "to": "echo", "type": "echo", "content": "hi"},
    )
    assert command.topic == "plugin:command" and command.data["plugin_id"] == "tools"
    assert command.data["args"] == ["2", "3"] and command.data["result"]["output"] == "5"
    run(host.suspend("activity-analytics"))
    run(host.stop())
    topics = [(e.topic, e.data["plugin_id"]) for e in lifecycle.pending()]
    assert topics[0] == ("plugin:deactivated", "activity-analytics")
    assert sorted(pid for topic, pid in topics if topic == "plugin:unloaded") == sorted(activated)
    assert all(isinstance(e, Event) for e in [message, command])


def test_a_handover_gives_the_new_instance_what_the_old_had_not_started(tmp_path: Path) -> None:
    """The old instance keeps the event in its hands; what was queued for it moves on."""
    from packaging.version import Version

    from acp_plugins import AuditLog, PermissionPolicy, PluginRecord, PluginState
    from acp_plugins.runtime.calls import CallGuard
    from acp_plugins.runtime.catalog import PluginCatalog
    from acp_plugins.runtime.subscriptions import PluginFeeds

    async def scenario() -> tuple[list[int], list[int]]:
        audit = AuditLog(tmp_path / "audit.jsonl")
        catalog = PluginCatalog(
            policy=PermissionPolicy(), audit=audit, core_version=Version("2.0.0"),
            python=(3, 11), search_path=[tmp_path],
        )  # fmt: skip
        record = PluginRecord("p", "p", "p", "1.0.0", None, None, state=PluginState.ACTIVE)
        catalog.records["p"] = record
        bus = EventBus()
        feeds = PluginFeeds(catalog, CallGuard(5.0), bus, audit)
        old_owner, new_owner = object(), object()
        record.context = old_owner  # type: ignore[assignment]
        release = asyncio.Event()
        old_got: list[int] = []
        new_got: list[int] = []

        async def old_handler(event: Event) -> None:
            old_got.append(event.data["n"])
            await release.wait()  # holds the first event while the rest queue up

        feeds.subscribe("p", old_owner, "t.*", old_handler)
        for n in range(5):
            bus.publish("t.n", {"n": n})
        await asyncio.sleep(0.05)
        feeds.subscribe("p", new_owner, "t.*", lambda e: new_got.append(e.data["n"]))
        for n in range(5, 10):
            bus.publish("t.n", {"n": n})
        await asyncio.sleep(0.05)
        record.context = new_owner  # type: ignore[assignment]  # the switch
        feeds.handover("p", old_owner, new_owner)
        bus.publish("t.n", {"n": 10})
        await asyncio.sleep(0.05)
        release.set()
        await feeds.drained("p", 5.0)
        return old_got, new_got

    old_got, new_got = asyncio.run(scenario())
    assert old_got == [0]  # the one it had in hand
    assert new_got == list(range(1, 11))  # the queued ones, the held ones, the new one: once each
