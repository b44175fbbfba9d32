"""Plugin-to-plugin messages: ``context.send_to_plugin`` to ``on_plugin_message``, both modes.

The talk fixture (tests/fixture_plugins/acp-fx-talk) holds a caller (write-messaging),
a listener (read-messaging, answers with who sent), and a deaf plugin (read-messaging,
no hook). Every test runs with the plugins in-process and isolated in workers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from acp_plugins import (
    TRUST_ALL,
    IsolationPolicy,
    Permission,
    PermissionPolicy,
    PluginCallError,
    PluginHost,
    WorkerLimits,
)
from conftest import close_loop, fixture_plugin

Run = Callable[..., Any]


@pytest.fixture(scope="module", params=["in-process", "isolated"])
def host(
    request: pytest.FixtureRequest,
    install_plugins: Callable[..., Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PluginHost, Run]]:
    directory = install_plugins(fixture_plugin("acp-fx-talk"))
    isolation = (
        TRUST_ALL if request.param == "in-process" else IsolationPolicy(limits=WorkerLimits())
    )
    # nothing by default: each plugin holds exactly the messaging permission it requests
    policy = PermissionPolicy(
        defaults=frozenset(),
        grants={
            "caller": frozenset({Permission.WRITE_MESSAGING}),
            "listener": frozenset({Permission.READ_MESSAGING}),
            "deaf": frozenset({Permission.READ_MESSAGING}),
        },
    )
    started = PluginHost(
        search_path=[directory],
        data_root=tmp_path_factory.mktemp("talk") / "data",
        isolation=isolation,
        policy=policy,
    )
    loop = asyncio.new_event_loop()
    loop.run_until_complete(started.start())
    assert {r.plugin_id for r in started.active()} == {"caller", "listener", "deaf"}
    yield started, loop.run_until_complete
    loop.run_until_complete(started.stop())
    close_loop(loop)


def _ask(host: tuple[PluginHost, Run], *args: str, command: str = "caller:ask") -> str:
    plugins, run = host
    try:
        return str(run(plugins.run_command(command, list(args))).output)
    except PluginCallError as error:
        return "error: " + error.message


def test_the_target_answers_and_learns_the_sender_from_the_host(host: Any) -> None:
    answer = json.loads(_ask(host, "listener", "hello", "there"))
    assert answer == {"from": "caller", "heard": "hello there", "as": ["list", "of", "words"]}


def test_sending_needs_write_messaging(host: Any) -> None:
    plugins, _ = host
    answer = _ask(host, "caller", command="listener:tell")
    assert answer.startswith("error: 'listener' failed in execute_command: ")
    assert answer.endswith(
        "'listener' may not send a message to plugin 'caller': "
        "permission 'write-messaging' was not granted"
    )
    denials = [e for e in plugins.audit.entries("listener") if e.action == "deny"]
    assert denials and denials[-1].permission == "write-messaging"


def test_receiving_needs_read_messaging(host: Any) -> None:
    plugins, _ = host
    answer = _ask(host, "caller", "hi")
    assert answer.startswith("error: 'caller' failed in execute_command: ")
    assert answer.endswith(
        "'caller' may not receive a message from plugin 'caller': "
        "permission 'read-messaging' was not granted"
    )
    denials = [e for e in plugins.audit.entries("caller") if e.action == "deny"]
    assert denials[-1].detail == "receive a message from plugin 'caller'"


@pytest.mark.parametrize(
    ("target", "text", "expected"),
    [
        ("nobody", "hi", "'caller' sent a message to plugin 'nobody', which is not installed"),
        (
            "deaf",
            "hi",
            "'caller' sent a message to plugin 'deaf', which takes none (it implements no "
            "on_plugin_message hook)",
        ),
        ("listener", "raise", "'listener' failed in on_plugin_message: RuntimeError: listener"),
        ("listener", "bad answer", "'listener' returned an answer that is not JSON data from"),
    ],
)  # fmt: skip
def test_a_message_that_cannot_be_delivered_says_why(
    host: Any, target: str, text: str, expected: str
) -> None:
    answer = _ask(host, target, text)
    assert answer.startswith("error: 'caller' failed in execute_command: "), answer
    assert expected in answer
    assert json.loads(_ask(host, "listener", "still"))["heard"] == "still"  # nothing broke


def test_a_payload_that_is_not_json_data_is_refused(host: Any) -> None:
    answer = _ask(host, "listener", command="caller:ask-bad")
    assert "that is not JSON data" in answer and answer.startswith("error: 'caller' failed")


def test_a_suspended_target_is_not_active(host: Any) -> None:
    plugins, run = host
    run(plugins.suspend("listener"))
    try:
        answer = _ask(host, "listener", "hi")
        assert "'caller' sent a message to plugin 'listener', which is suspended, not active" in (
            answer
        )
    finally:
        run(plugins.resume("listener"))
    assert json.loads(_ask(host, "listener", "back"))["heard"] == "back"
