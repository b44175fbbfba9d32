"""The kit's fixtures and MockPluginContext, as a plugin's own tests use them.

Here pytest's root is this repository, which declares no plugin: ``acp_host`` sees
only what ``tmp_plugin`` installs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from acp_plugins import Message
from acp_plugins.errors import AcpPluginsError, PermissionDenied
from acp_plugins.testing import MockPluginContext, PluginHarness

CALLER = """
from acp_plugins import Plugin, hookimpl


class CallerPlugin(Plugin):
    @hookimpl
    def get_supported_message_types(self):
        return ["call"]

    @hookimpl
    def can_handle(self, message):
        return 1.0

    @hookimpl
    async def handle_message(self, message, context):
        if message.content == "command":
            result = await context.run_command("add", ["1", "2"])
            return result.output
        await context.publish("caller.called", {"n": 1})
        context.record_metric("calls", 1)
        return "published"
"""

MANIFEST = {"plugin_id": "caller", "interfaces": ["IMessageHandler"],
            "permissions": ["read-messaging", "write-messaging"]}  # fmt: skip


@pytest.mark.acp_both_modes
def test_acp_host_runs_a_tmp_plugin_and_keeps_its_events_and_audit(
    acp_host: PluginHarness, tmp_plugin: Callable[..., str], acp_mode: str
) -> None:
    assert tmp_plugin(MANIFEST, CALLER) == "caller"
    routed = acp_host.send("call", "publish")
    assert (routed.plugin_id, routed.response.content) == ("caller", "published")
    assert acp_host.host.record("caller").isolation()["mode"] == (  # type: ignore[index]
        "in-process" if acp_mode == "trusted" else "isolated"
    )
    published = [e for e in acp_host.events if e.topic == "caller.called"]
    assert [(e.publisher, dict(e.data)) for e in published] == [("caller", {"n": 1})]
    assert "plugin:activated" in acp_host.topics()
    # granted exactly what it asked for: running a command is refused, and audited
    refused = acp_host.send("call", "command")
    assert "permission 'execute-commands' was not granted" in refused.errors["caller"]
    denials = acp_host.refusals("caller")
    assert [(e.action, e.permission) for e in denials] == [("deny", "execute-commands")]


def test_tmp_plugin_after_the_host_started_is_picked_up(
    acp_host: PluginHarness, tmp_plugin: Callable[..., str]
) -> None:
    acp_host.start()
    assert acp_host.host.records == {}
    tmp_plugin(MANIFEST, CALLER)
    assert acp_host.state("caller") == "active"


def test_the_mock_refuses_with_the_text_a_host_refuses_with(
    acp_host: PluginHarness, tmp_plugin: Callable[..., str]
) -> None:
    tmp_plugin(MANIFEST, CALLER)
    from_host = acp_host.send("call", "command").errors["caller"]
    full = {**MANIFEST, "manifest_version": "1.0", "name": "Caller", "version": "1.0.0",
            "dependencies": {"core": ">=2.0.0"}}  # fmt: skip
    context = MockPluginContext(full)
    with pytest.raises(PermissionDenied) as refused:
        asyncio.run(context.run_command("add", ["1", "2"]))
    assert str(refused.value) in from_host
    assert context.denied == [{"permission": "execute-commands", "operation": "run command 'add'"}]


def _mock(**options: Any) -> MockPluginContext:
    permissions = ["read-messaging", "write-messaging", "execute-commands"]
    manifest = {**MANIFEST, "manifest_version": "1.0", "name": "Caller", "version": "1.0.0",
                "dependencies": {"core": ">=2.0.0"}, "permissions": permissions}  # fmt: skip
    return MockPluginContext(manifest, **options)


def test_the_mock_records_calls_and_answers_from_what_the_test_set() -> None:
    from acp_plugins.testing.pytest_plugin import __all__ as fixtures  # noqa: F401

    context = _mock()
    with pytest.raises(AcpPluginsError, match=r"no answer for command 'add'.*answer_command"):
        asyncio.run(context.run_command("add", ["1"]))
    context.answer_command("add", lambda args: str(sum(int(a) for a in args)))
    assert asyncio.run(context.run_command("add", ["1", "2"])).output == "3"
    context.answer_message("sure")
    assert asyncio.run(context.send_message(Message(type="x", content="?"))).content == "sure"
    context.record_metric("calls", 2)
    with pytest.raises(AcpPluginsError, match="a value is a finite number"):
        context.record_metric("calls", float("nan"))  # as the host refuses it
    assert context.metrics == {"calls": [2.0]}
    assert [c.kind for c in context.calls] == ["command", "command", "message", "metric"]


def test_the_mock_delivers_events_to_subscriptions_and_checks_topics() -> None:
    context = _mock()
    seen: list[tuple[str, Any]] = []
    context.subscribe("user.*")(lambda event: seen.append((event.topic, event.data["who"])))
    assert asyncio.run(context.deliver("user.login", {"who": "ada"})) == 1
    assert asyncio.run(context.deliver("other.thing", {"who": "x"})) == 0
    assert seen == [("user.login", "ada")]
    with pytest.raises(PermissionDenied, match="read-system-info"):
        context.subscribe("plugin:*")(lambda event: None)
    with pytest.raises(AcpPluginsError, match="is not a topic"):
        asyncio.run(context.publish("Not A Topic"))
    assert context.denied[-1]["permission"] == "read-system-info"


def test_a_project_s_manifests_are_found_wherever_the_project_sits(tmp_path: Path) -> None:
    from acp_plugins.testing import project_manifests

    # the project itself sits under folders named like environments and builds
    project = tmp_path / ".nox" / "build" / "acp-demo"
    (project / "acp_demo").mkdir(parents=True)
    (project / "acp_demo" / "manifest.json").write_text("{}")
    for copy in ("build/lib/acp_demo", ".nox/tests/lib/acp_demo", "acp_demo.egg-info", ".venv"):
        (project / copy).mkdir(parents=True)
        (project / copy / "manifest.json").write_text("{}")  # what was built or installed
    assert project_manifests(project) == [project / "acp_demo" / "manifest.json"]
