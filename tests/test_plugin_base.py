"""Tests for acp_plugins.plugin: the optional ``Plugin`` base class.

Overriding a lifecycle method of ``Plugin`` keeps it a hook implementation
without ``@hookimpl``. The fixture plugins rely on it: ``lifecycle-log``
overrides ``on_discover``, ``validate_config``, ``initialize``, ``activate`` and
``deactivate`` unmarked, ``init-raises`` an unmarked ``async def initialize``,
``activate-refuses`` an unmarked ``activate``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy
import pytest

from acp_plugins import Plugin, PluginConfig, PluginHost, PluginState, hookimpl, parse_manifest
from acp_plugins.hookspecs import SPEC_MODULES
from acp_plugins.loading.trust import TRUST_ALL
from acp_plugins.markers import PROJECT_NAME
from conftest import fixture_plugin, sample

MARK = PROJECT_NAME + "_impl"

LIFECYCLE_OVERRIDABLE = (
    "on_discover",
    "initialize",
    "activate",
    "deactivate",
    "get_config_schema",
    "validate_config",
)


@pytest.fixture(scope="module")
def plugins_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(sample("acp-echo"), fixture_plugin("acp-fx-faulty"))


@pytest.fixture()
def host(
    plugins_dir: Path, tmp_path: Path, run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> PluginHost:
    monkeypatch.setenv("ACP_FIXTURE_LIFECYCLE_LOG", str(tmp_path / "lifecycle.log"))
    started = PluginHost(
        isolation=TRUST_ALL, search_path=[plugins_dir], data_root=tmp_path / "data", timeout=0.5
    )
    run(started.start())
    return started


# -- through the host: unmarked overrides are called ----------------------------------


def test_unmarked_overrides_are_called_by_the_host(host: PluginHost, tmp_path: Path) -> None:
    calls = (tmp_path / "lifecycle.log").read_text().splitlines()
    # on_discover, validate_config, initialize and activate carry no @hookimpl in lifecycle-log
    assert calls == [
        "on_discover:lifecycle-log",
        "on_load",
        "validate_config",
        "initialize",
        "on_initialize",
        "activate",
        "on_activate",
    ]


def test_unmarked_overrides_are_hooks_of_the_handle(host: PluginHost) -> None:
    handle = host.record("lifecycle-log").handle
    assert handle is not None
    assert handle.hooks == {
        "on_discover",
        "on_load",
        "get_settings_model",  # lifecycle-log declares a settings model
        "validate_config",
        "initialize",
        "on_initialize",
        "activate",
        "on_activate",
        "deactivate",
        "on_suspend",
        "on_unload",
    }  # get_config_schema, inherited from Plugin as a plain method, is not a hook of it


def test_an_unmarked_async_initialize_override_is_called(host: PluginHost) -> None:
    record = host.record("init-raises")
    assert record.state is PluginState.LOADED
    assert record.reason == "'init-raises' failed in initialize: RuntimeError: database unreachable"


def test_an_unmarked_activate_override_is_called(host: PluginHost) -> None:
    record = host.record("activate-refuses")
    assert record.state is PluginState.INITIALIZED
    assert record.reason == "'activate-refuses' refused: activate returned False"


def test_other_methods_are_not_marked(host: PluginHost) -> None:
    # half-handler defines handle_message without @hookimpl: it is not taken for a hook
    assert "(handle_message exists but is not marked with @acp_plugins.hookimpl)" in (
        host.record("half-handler").reason or ""
    )


# -- the class itself ---------------------------------------------------------------------


class Overrides(Plugin):
    def initialize(self, context: Any) -> bool:
        return super().initialize(context)

    async def activate(self) -> bool:
        return True

    def validate_config(self, config: PluginConfig) -> bool:
        return bool(config.settings.get("ok"))

    def helper(self) -> str:  # not a lifecycle method: left alone
        return "help"


class Grandchild(Overrides):
    def deactivate(self) -> bool:
        return True


class Explicit(Plugin):
    @hookimpl(tryfirst=True)
    def activate(self) -> bool:
        return True


def test_overrides_are_marked_as_hook_implementations() -> None:
    for name in ("initialize", "activate", "validate_config"):
        assert hasattr(Overrides.__dict__[name], MARK), name
    assert not hasattr(Overrides.helper, MARK)


def test_overrides_in_grandchildren_are_marked_too() -> None:
    assert hasattr(Grandchild.__dict__["deactivate"], MARK)
    assert "initialize" not in Grandchild.__dict__  # inherited, already marked


def test_an_explicit_marker_keeps_its_options() -> None:
    assert getattr(Explicit.__dict__["activate"], MARK)["tryfirst"] is True


def test_only_the_base_methods_that_keep_state_are_hooks() -> None:
    # on_discover keeps the manifest, initialize the context; the other defaults are
    # what the host does for a missing hook anyway, so registering them would only cost
    marked = {name for name in LIFECYCLE_OVERRIDABLE if hasattr(getattr(Plugin, name), MARK)}
    assert marked == {"on_discover", "initialize"}


def test_pluggy_registers_overrides_against_the_specs() -> None:
    manager = pluggy.PluginManager(PROJECT_NAME)
    for module in SPEC_MODULES:
        manager.add_hookspecs(module)
    plugin = Grandchild()
    manager.register(plugin, name="demo")
    registered = {
        caller.name: [impl.function for impl in caller.get_hookimpls()]
        for caller in manager.get_hookcallers(plugin) or []
    }
    assert set(registered) == {
        "on_discover",
        "initialize",
        "activate",
        "deactivate",
        "validate_config",
    }
    assert registered["validate_config"] == [plugin.validate_config]
    assert registered["deactivate"] == [plugin.deactivate]
    assert manager.hook.validate_config(config=_config({"ok": True})) == [True]
    assert manager.hook.validate_config(config=_config({})) == [False]


# -- what the base gives a plugin ---------------------------------------------------------

MANIFEST = {
    "manifest_version": "1.0",
    "plugin_id": "demo",
    "name": "Demo",
    "version": "1.2.3",
    "dependencies": {"core": ">=2.0.0"},
}


def test_identity_comes_from_the_manifest() -> None:
    plugin = Plugin()
    plugin.on_discover(parse_manifest(json.dumps(MANIFEST)))
    assert (plugin.plugin_id, plugin.version) == ("demo", "1.2.3")


def test_the_defaults_accept_everything() -> None:
    plugin = Plugin()
    context = object()
    assert plugin.initialize(context) is True  # type: ignore[arg-type]
    assert plugin.context is context
    assert plugin.activate() is True
    assert plugin.deactivate() is True
    assert plugin.get_config_schema() == {}
    assert plugin.validate_config(_config({"anything": 1})) is True


def _config(settings: dict[str, Any]) -> PluginConfig:
    return PluginConfig(plugin_id="demo", version="1.2.3", settings=settings)


def test_identity_properties_do_not_raise_before_discovery() -> None:
    # pluggy before 1.7 reads every attribute of a plugin object while registering it
    plugin = Grandchild()
    assert (plugin.plugin_id, plugin.version) == ("", "")
