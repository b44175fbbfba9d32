"""Tests for acp_plugins.host: misbehaving plugins are kept out, everyone else goes on.

Every plugin of the ``acp-fx-faulty`` fixture project is installed beside the
echo sample; each fails at its own step and must stay in the state it reached,
with a reason a person can act on, while echo (and the well-behaved fixtures)
become active all the same.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from acp_plugins import (
    Message,
    PluginHost,
    PluginNotActive,
    PluginNotFound,
    PluginState,
)
from acp_plugins.loading.trust import TRUST_ALL
from conftest import fixture_plugin, sample

S = PluginState


@pytest.fixture(scope="module")
def plugins_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(sample("acp-echo"), fixture_plugin("acp-fx-faulty"))


@pytest.fixture()
def host(plugins_dir: Path, tmp_path: Path, run: Callable[..., Any]) -> PluginHost:
    started = PluginHost(
        isolation=TRUST_ALL, search_path=[plugins_dir], data_root=tmp_path / "data", timeout=0.5
    )
    run(started.start())
    return started


def test_every_plugin_is_discovered(host: PluginHost) -> None:
    assert sorted(host.records) == [
        "activate-refuses",
        "bad-signature",
        "blocking",
        "echo",
        "half-handler",
        "import-error",
        "init-raises",
        "lifecycle-log",
        "loud",
        "typo-hook",
    ]


def test_well_behaved_plugins_are_active_despite_the_others(host: PluginHost) -> None:
    assert [record.plugin_id for record in host.active()] == sorted(
        ["blocking", "echo", "lifecycle-log", "loud"],
        key=host.load_order.index,
    )
    for record in host.active():
        assert record.reason is None, record.plugin_id
        assert record.failures == [], record.plugin_id


def test_echo_answers_beside_the_faulty_plugins(host: PluginHost, run: Callable[..., Any]) -> None:
    routed = run(host.send(Message(type="echo", content="still here")))
    assert routed.plugin_id == "echo"
    assert routed.response.content == "echo: still here"


@pytest.mark.parametrize(
    ("plugin_id", "stage", "reason"),
    [
        (
            "import-error",
            "load",
            "importing 'acp_fx_import_error.plugin:Plugin' failed: ModuleNotFoundError: "
            "No module named 'acp_fx_this_module_does_not_exist'",
        ),
        (
            "bad-signature",
            "load",
            # pluggy's own reason, one line: the hookimpl takes an argument the spec lacks
            "'bad-signature' has an invalid hook implementation: "
            "Plugin 'bad-signature' for hook 'can_handle'; "
            "hookimpl definition: can_handle(message, urgency); "
            "Argument(s) {'urgency'} are declared in the hookimpl but can not be found "
            "in the hookspec",
        ),
        (
            "typo-hook",
            "load",
            "'typo-hook' implements unknown hooks: 'can_handel' (did you mean 'can_handle'?)",
        ),
        (
            "half-handler",
            "load",
            # both directions: declared but missing, and implemented but undeclared
            "'half-handler' declares IMessageHandler but does not implement "
            "get_supported_message_types, handle_message (handle_message exists but is not "
            "marked with @acp_plugins.hookimpl); implements get_commands of ICommandHandler "
            "but does not declare ICommandHandler in its manifest's interfaces",
        ),
    ],
)
def test_plugins_refused_at_load_stay_discovered(
    host: PluginHost, plugin_id: str, stage: str, reason: str
) -> None:
    record = host.record(plugin_id)
    assert record.state is S.DISCOVERED
    assert record.reason == reason
    assert [(f.stage, f.message) for f in record.failures] == [(stage, reason)]
    assert record.handle is None
    assert plugin_id not in {r.plugin_id for r in host.active()}


def test_a_raising_initialize_leaves_the_plugin_loaded(host: PluginHost) -> None:
    record = host.record("init-raises")
    assert record.state is S.LOADED
    assert record.reason == "'init-raises' failed in initialize: RuntimeError: database unreachable"
    assert [(f.stage, f.message) for f in record.failures] == [("initialize", record.reason)]
    assert record.metrics["initialize"].errors == 1


def test_a_refused_activation_leaves_the_plugin_initialized(host: PluginHost) -> None:
    record = host.record("activate-refuses")
    assert record.state is S.INITIALIZED
    assert record.reason == "'activate-refuses' refused: activate returned False"
    assert [(f.stage, f.message) for f in record.failures] == [("activate", record.reason)]


def test_a_failed_plugin_stays_out_of_routing(host: PluginHost, run: Callable[..., Any]) -> None:
    # bad-signature would claim every message with 1.0 if it had been let in
    routed = run(host.send(Message(type="chat", content="anyone?")))
    assert routed.plugin_id == "echo"
    assert "bad-signature" not in routed.scores
    assert "half-handler" not in routed.scores


def test_retrying_a_refused_load_gives_the_same_reason(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    first = host.record("bad-signature").reason
    assert run(host.load("bad-signature")) is False
    record = host.record("bad-signature")
    assert record.state is S.DISCOVERED
    assert record.reason == first  # nothing half-registered is left behind to collide with
    assert len(record.failures) == 2


def test_stop_unloads_everything_that_was_loaded(host: PluginHost, run: Callable[..., Any]) -> None:
    run(host.stop())
    states = {pid: record.state for pid, record in host.records.items()}
    assert states == {
        "activate-refuses": S.UNLOADED,
        "bad-signature": S.DISCOVERED,
        "blocking": S.UNLOADED,
        "echo": S.UNLOADED,
        "half-handler": S.DISCOVERED,
        "import-error": S.DISCOVERED,
        "init-raises": S.UNLOADED,
        "lifecycle-log": S.UNLOADED,
        "loud": S.UNLOADED,
        "typo-hook": S.DISCOVERED,
    }
    assert all(record.handle is None for record in host.records.values())
    routed = run(host.send(Message(type="echo", content="hello?")))
    assert not routed.handled
    assert routed.response.content.startswith(
        "no active plugin handles messages of type 'echo'; a message handler is installed but "
        "not active: "
    )
    assert "'echo' is unloaded" in routed.response.content


def test_an_unknown_plugin_id_names_the_installed_ones(host: PluginHost) -> None:
    with pytest.raises(PluginNotFound) as caught:
        host.record("ehco")
    assert caught.value.message.startswith(
        "no plugin 'ehco' is installed (installed: activate-refuses, bad-signature, blocking, echo"
    )


def test_a_plugin_data_directory_is_its_own_and_made_when_first_used(
    host: PluginHost, tmp_path: Path
) -> None:
    assert not (tmp_path / "data" / "plugins" / "echo").exists()  # echo never asked for it
    context = host.record("echo").context
    assert context is not None
    assert context.data_dir == tmp_path / "data" / "plugins" / "echo"
    assert (tmp_path / "data" / "plugins" / "echo").is_dir()
    other = host.record("lifecycle-log").context
    assert other is not None
    assert other.data_dir == tmp_path / "data" / "plugins" / "lifecycle-log"
    assert host.record("import-error").context is None  # never got that far


def test_settings_reach_the_plugin_context(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any]
) -> None:
    host = PluginHost(
        isolation=TRUST_ALL,
        search_path=[plugins_dir],
        data_root=tmp_path,
        timeout=0.5,
        settings={"echo": {"prefix": ">> "}},
    )
    run(host.start())
    routed = run(host.send(Message(type="echo", content="hi")))
    assert routed.response.content == ">> hi"
    context = host.record("echo").context
    assert context is not None
    with pytest.raises(TypeError):
        context.config["prefix"] = "changed by the plugin"  # type: ignore[index]
    assert host.record("echo").config.settings == {"prefix": ">> "}  # type: ignore[union-attr]


def test_only_a_loaded_plugin_has_a_settings_schema(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    assert run(host.config_schema("blocking")) == {}  # declares no settings
    assert run(host.config_schema("lifecycle-log"))["properties"]["valid"]["type"] == "boolean"
    with pytest.raises(PluginNotActive, match="'import-error' is discovered"):
        run(host.config_schema("import-error"))


def test_the_code_that_runs_is_the_code_whose_manifest_was_checked(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a stale copy of echo's package ahead on the path: Python would import it instead
    stale = tmp_path / "stale"
    shutil.copytree(plugins_dir / "acp_echo", stale / "acp_echo")
    monkeypatch.syspath_prepend(str(stale))
    for name in [m for m in sys.modules if m == "acp_echo" or m.startswith("acp_echo.")]:
        monkeypatch.delitem(sys.modules, name)
    host = PluginHost(isolation=TRUST_ALL, search_path=[plugins_dir], data_root=tmp_path / "d")
    run(host.start())
    try:
        reason = host.record("echo").reason or ""
        assert f"was validated from {(plugins_dir / 'acp_echo').resolve()}" in reason
        assert f"Python imported its code from {(stale / 'acp_echo').resolve()}" in reason
        assert host.record("lifecycle-log").state is PluginState.ACTIVE  # the others load
    finally:
        run(host.stop())
