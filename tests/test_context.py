"""The PluginContext: a plugin reaches the host only through it, within its grants.

The ``relay`` fixture plugin answers a message by calling the context operation its
metadata names; the samples are installed next to it to be called.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from acp_plugins import Message, PermissionPolicy, PluginHost, RoutedMessage
from acp_plugins.loading.trust import TRUST_ALL
from conftest import SAMPLE_PROJECTS, fixture_plugin, sample


@pytest.fixture(scope="module")
def plugins_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(
        fixture_plugin("acp-fx-relay"), *(sample(name) for name in SAMPLE_PROJECTS)
    )


def _relay(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any], action: str, **host: Any
) -> RoutedMessage:
    started = PluginHost(isolation=TRUST_ALL, search_path=[plugins_dir], data_root=tmp_path, **host)
    run(started.start())
    routed: RoutedMessage = run(
        started.send(Message(type="relay", content="ping", metadata={"action": action}))
    )
    return routed


@pytest.mark.parametrize(
    ("action", "answer"),
    [
        ("send", "echo said: echo: ping"),  # write-messaging: a default grant
        ("sources", "agent-events,agents"),  # read-data: a default grant
        ("query", "60 rows"),
        ("may-run", "False"),
    ],
)
def test_granted_operations_reach_the_host(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any], action: str, answer: str
) -> None:
    routed = _relay(plugins_dir, tmp_path, run, action)
    assert routed.plugin_id == "relay"
    assert routed.response.content == answer


def test_an_operation_without_its_permission_is_denied_and_named(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any]
) -> None:
    routed = _relay(plugins_dir, tmp_path, run, "run")  # execute-commands is not a default
    assert not routed.handled
    assert routed.errors == {
        "relay": "'relay' failed in handle_message: PermissionDenied: 'relay' may not run "
        "command 'add': permission 'execute-commands' was not granted"
    }


def test_a_granted_permission_opens_the_operation(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any]
) -> None:
    policy = PermissionPolicy.from_names({"relay": ["execute-commands"]})
    routed = _relay(plugins_dir, tmp_path, run, "run", policy=policy)
    assert routed.response.content == "add said: 3"
    assert _relay(plugins_dir, tmp_path, run, "may-run", policy=policy).response.content == "True"


def test_narrowed_defaults_take_an_operation_away(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any]
) -> None:
    # relay asks for read-data in its manifest, so taking it away refuses relay at load
    policy = PermissionPolicy.from_names(defaults=["read-messaging", "write-messaging"])
    host = PluginHost(
        isolation=TRUST_ALL, search_path=[plugins_dir], data_root=tmp_path, policy=policy
    )
    host.discover()
    assert "'read-data' requested by 'relay' is not granted" in (host.record("relay").reason or "")
