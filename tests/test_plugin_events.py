"""Plugins on the event bus: ``context.publish`` and ``@context.subscribe``, both modes.

The bus fixture (tests/fixture_plugins/acp-fx-bus) holds a herald that publishes
what it is told, a watcher subscribed to ``user.*`` and to the host's
``plugin:command`` (it holds read-system-info), and a snoop that tries to subscribe
to whatever it is told. The host's policy keeps ``user.*`` to the watcher. Every
test runs with the plugins in-process and isolated in workers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from acp_plugins import (
    TRUST_ALL,
    IsolationPolicy,
    Permission,
    PermissionPolicy,
    PluginHost,
    WorkerLimits,
)
from acp_plugins.cli import main
from conftest import close_loop, fixture_plugin

Run = Callable[..., Any]


@pytest.fixture(scope="module", params=["in-process", "isolated"])
def bus(
    request: pytest.FixtureRequest,
    install_plugins: Callable[..., Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PluginHost, Run, str]]:
    directory = install_plugins(fixture_plugin("acp-fx-bus"))
    isolation = (
        TRUST_ALL
        if request.param == "in-process"
        else IsolationPolicy(limits=WorkerLimits(cpu_share=None))
    )
    policy = PermissionPolicy(
        grants={"watcher": frozenset({Permission.READ_SYSTEM_INFO})},
        subscribe_topics={"user.*": frozenset({"watcher"})},
    )
    host = PluginHost(
        search_path=[directory],
        data_root=tmp_path_factory.mktemp("bus") / "data",
        isolation=isolation,
        policy=policy,
    )
    loop = asyncio.new_event_loop()
    loop.run_until_complete(host.start())
    assert {r.plugin_id for r in host.active()} == {"herald", "watcher", "snoop"}
    yield host, loop.run_until_complete, request.param
    loop.run_until_complete(host.stop())
    close_loop(loop)


def seen(host: PluginHost, run: Run, expected: int) -> list[list[Any]]:
    """What the watcher received, once it has ``expected`` events (or 10 s passed)."""
    deadline = time.monotonic() + 10
    while True:
        found: list[list[Any]] = json.loads(run(host.run_command("watcher:seen")).output)
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        run(asyncio.sleep(0.02))


@pytest.fixture()
def fresh(bus: tuple[PluginHost, Run, str]) -> tuple[PluginHost, Run, str]:
    host, run, _ = bus
    run(host.run_command("watcher:forget"))
    return bus


def test_a_published_event_reaches_the_subscriber_with_the_publisher_set_by_the_host(
    fresh: tuple[PluginHost, Run, str],
) -> None:
    host, run, _ = fresh
    assert run(host.run_command("herald:announce", ["user.login", "ada"])).output == "1"
    events = [e for e in seen(host, run, 2) if e[0] == "user.login"]
    assert events == [["user.login", "ada", "herald", 0]]


def test_events_arrive_once_each_in_the_order_they_were_published(
    fresh: tuple[PluginHost, Run, str],
) -> None:
    host, run, _ = fresh
    run(host.run_command("herald:announce", ["user.click", "x", "50"]))
    events = [e for e in seen(host, run, 51) if e[0] == "user.click"]
    assert [e[3] for e in events] == list(range(50))


def test_a_topic_nobody_subscribed_to_reaches_nobody(fresh: tuple[PluginHost, Run, str]) -> None:
    host, run, _ = fresh
    assert run(host.run_command("herald:announce", ["weather.rain", "wet"])).output == "0"
    # one segment per '*': user.* does not match user.login.failed
    assert run(host.run_command("herald:announce", ["user.login.failed", "x"])).output == "0"


def test_a_failing_handler_is_recorded_and_the_next_event_still_arrives(
    fresh: tuple[PluginHost, Run, str],
) -> None:
    host, run, _ = fresh
    run(host.run_command("herald:announce", ["user.boom", "x"]))
    run(host.run_command("herald:announce", ["user.after", "y"]))
    # three arrive: both commands (plugin:command) and user.after; user.boom failed
    assert [e[0] for e in seen(host, run, 3) if e[0].startswith("user.")] == ["user.after"]
    # in a worker too: the handler's failure comes back to the host with its event
    errors = [f.message for f in host.record("watcher").call_errors]
    assert any("failed on event 'user.boom'" in e and "on purpose" in e for e in errors)
    assert host.record("watcher").metrics["event_handler"].errors >= 1


def test_the_host_publishes_its_own_events_to_a_plugin_that_may_read_them(
    fresh: tuple[PluginHost, Run, str],
) -> None:
    host, run, _ = fresh
    run(host.run_command("herald:announce", ["user.login", "bob"]))
    commands = [e for e in seen(host, run, 2) if e[0] == "plugin:command"]
    assert commands and commands[0][1:3] == ["announce", "host"]


@pytest.mark.parametrize(
    "pattern, why",
    [
        ("user.*", "only 'watcher' may subscribe on topics matching 'user.*'"),
        ("user.login", "only 'watcher' may subscribe on topics matching 'user.*'"),
        ("plugin:*", "permission 'read-system-info' was not granted"),
        ("*:activated", "permission 'read-system-info' was not granted"),
        ("User.Login", "is not a topic pattern"),
    ],
)
def test_a_subscription_the_policy_does_not_allow_is_refused_and_audited(
    bus: tuple[PluginHost, Run, str], pattern: str, why: str
) -> None:
    host, run, _ = bus
    result = run(host.run_command("snoop:try", [pattern]))
    assert not result.success and result.output.startswith("refused: ")
    assert why in result.output
    if "pattern" not in why:
        denials = [e for e in host.audit.entries("snoop") if e.action == "deny"]
        assert any(pattern in (e.detail or "") for e in denials)


def test_a_subscription_the_policy_leaves_open_is_made(bus: tuple[PluginHost, Run, str]) -> None:
    host, run, _ = bus
    assert run(host.run_command("snoop:try", ["news.*"])).output == "subscribed"
    assert run(host.run_command("herald:announce", ["news.today", "n"])).output == "1"


def test_no_plugin_publishes_on_the_hosts_topics(bus: tuple[PluginHost, Run, str]) -> None:
    host, run, _ = bus
    result = run(host.run_command("herald:announce", ["plugin:activated", "forged"]))
    assert not result.success
    assert "may not use topic 'plugin:activated'" in result.output
    assert "the host's own" in result.output


def test_host_code_subscribes_to_what_plugins_publish(bus: tuple[PluginHost, Run, str]) -> None:
    host, run, _ = bus
    subscription = host.events.subscribe("user.*")
    try:
        run(host.run_command("herald:announce", ["user.logout", "eve"]))
        event = run(asyncio.wait_for(subscription.get(), 5))
        assert (event.topic, event.publisher, event.data["text"]) == (
            "user.logout",
            "herald",
            "eve",
        )
    finally:
        subscription.close()


def test_a_full_queue_drops_the_subscribers_oldest_events_and_counts_them(
    fresh: tuple[PluginHost, Run, str],
) -> None:
    """Bounded in a worker too: the host waits for each event's handler, so its queue fills."""
    host, run, _ = fresh

    def dropped() -> int:
        (feed,) = [s for s in host.feeds.subscriptions("watcher") if s["pattern"] == "user.*"]
        return int(feed["dropped"])

    async def flood() -> None:  # faster than any handler, yielding now and then
        for n in range(1500):
            host.events.publish("user.flood", {"text": "f", "n": n})
            if n % 100 == 99:
                await asyncio.sleep(0)

    before = dropped()
    run(flood())
    deadline = time.monotonic() + 20
    while True:
        events = [e[3] for e in seen(host, run, 1) if e[0] == "user.flood"]
        if (events and events[-1] == 1499) or time.monotonic() > deadline:
            break
        run(asyncio.sleep(0.05))
    lost = dropped() - before
    assert len(events) + lost == 1500  # every event was handled or counted as dropped
    assert 400 <= lost <= 500 and len(events) >= 1000  # the queue holds 1000
    assert events == sorted(events) and events[-1] == 1499  # the oldest went, in order


def test_info_lists_a_plugins_subscriptions(
    install_plugins: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = install_plugins(fixture_plugin("acp-fx-bus"))
    common = ["--plugin-path", str(directory), "--data-dir", str(tmp_path / "data"),
              "--trust", "watcher", "--grant", "watcher=read-system-info"]  # fmt: skip
    assert main(["info", "watcher", *common]) == 0
    assert "subscriptions  user.*, plugin:command\n" in capsys.readouterr().out
    assert main(["info", "watcher", "--json", *common]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["subscriptions"] == [
        {"pattern": "user.*", "dropped": 0},
        {"pattern": "plugin:command", "dropped": 0},
    ]
    assert info["missed_events"] == 0


def test_events_while_suspended_are_dropped_and_counted_and_resume_brings_them_back(
    fresh: tuple[PluginHost, Run, str],
) -> None:
    host, run, _ = fresh
    record = host.record("watcher")
    assert run(host.suspend("watcher"))
    try:
        run(asyncio.sleep(0.3))  # what earlier tests published has landed (or been missed)
        before = record.missed_events
        host.events.publish("user.away", {"text": "gone", "n": 0})
        deadline = time.monotonic() + 5
        while record.missed_events == before and time.monotonic() < deadline:
            run(asyncio.sleep(0.02))
        assert record.missed_events == before + 1
    finally:
        assert run(host.resume("watcher"))
    host.events.publish("user.back", {"text": "here", "n": 1})
    events = [e[0] for e in seen(host, run, 1) if e[0].startswith("user.")]
    assert events == ["user.back"]  # the one published while suspended never arrives
