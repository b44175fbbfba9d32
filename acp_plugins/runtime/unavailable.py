"""Why nothing answered: the installed plugins that would offer something, and why they do not.

A command, a data source or a message type that no active plugin offers is
often offered by an installed plugin that failed to load, is disabled or is
suspended. The error then names that plugin and its reason instead of
leaving the user to guess.
"""

from __future__ import annotations

from acp_plugins.loading.interfaces import Interface
from acp_plugins.runtime.catalog import PluginCatalog
from acp_plugins.runtime.lifecycle import PluginState

__all__ = ["why_unavailable"]

_NOUN = {
    Interface.MESSAGE_HANDLER: "a message handler",
    Interface.COMMAND_HANDLER: "a command handler",
    Interface.DATA_PROVIDER: "a data provider",
    Interface.ANALYTICS_PROVIDER: "an analytics provider",
}


def why_unavailable(
    catalog: PluginCatalog, interface: Interface, plugin_id: str | None = None
) -> str:
    """A sentence naming the inactive plugins declaring ``interface`` and why; or ``""``.

    With ``plugin_id`` (a ``plugin:name`` request), only that plugin is considered,
    and a plugin that is not installed at all is said to be so.
    """
    if plugin_id is not None:
        record = catalog.records.get(plugin_id)
        if record is None:
            return f"; no plugin '{plugin_id}' is installed"
        if record.state is PluginState.ACTIVE:
            return ""
        return f"; '{plugin_id}' is {_state(record.state, record.reason)}"
    idle = [
        record
        for record in sorted(catalog.records.values(), key=lambda r: r.plugin_id)
        if record.state is not PluginState.ACTIVE
        and record.manifest is not None
        and interface in record.manifest.interfaces
    ]
    if not idle:
        return ""
    listed = "; ".join(f"'{r.plugin_id}' is {_state(r.state, r.reason)}" for r in idle[:3])
    more = f" (and {len(idle) - 3} more)" if len(idle) > 3 else ""
    return f"; {_NOUN[interface]} is installed but not active: {listed}{more}"


_WHERE = {
    PluginState.DISCOVERED: "not loaded",
    PluginState.LOADED: "loaded, not initialized",
    PluginState.INITIALIZED: "initialized, not active",
    PluginState.SUSPENDED: "suspended",
    PluginState.UNLOADED: "unloaded",
}


def _state(state: PluginState, reason: str | None) -> str:
    return _WHERE.get(state, state.value) + (f": {reason}" if reason else "")
