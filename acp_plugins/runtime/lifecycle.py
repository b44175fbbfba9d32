"""The plugin lifecycle: its states and the legal transitions between them.

The states and transitions are those of the specification's state diagram, plus
two that let a plugin which never became active be removed (Loaded -> Unloaded
and Initialized -> Unloaded). A plugin that fails a step stays in the state it
had, with the reason recorded on its record.
"""

from __future__ import annotations

from enum import Enum

from acp_plugins.errors import IllegalTransition

__all__ = ["TRANSITIONS", "PluginState", "check_transition"]


class PluginState(str, Enum):
    """Where a plugin is in its lifecycle."""

    DISCOVERED = "discovered"
    LOADED = "loaded"
    INITIALIZED = "initialized"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    UNLOADED = "unloaded"

    def __str__(self) -> str:
        return self.value


#: state -> the states it may move to.
TRANSITIONS: dict[PluginState, frozenset[PluginState]] = {
    PluginState.DISCOVERED: frozenset({PluginState.LOADED}),
    PluginState.LOADED: frozenset({PluginState.INITIALIZED, PluginState.UNLOADED}),
    PluginState.INITIALIZED: frozenset({PluginState.ACTIVE, PluginState.UNLOADED}),
    PluginState.ACTIVE: frozenset({PluginState.SUSPENDED, PluginState.UNLOADED}),
    PluginState.SUSPENDED: frozenset({PluginState.ACTIVE, PluginState.UNLOADED}),
    PluginState.UNLOADED: frozenset(),
}


def check_transition(plugin_id: str, current: PluginState, target: PluginState) -> None:
    """Raise :class:`IllegalTransition` unless ``current -> target`` is allowed."""
    if target in TRANSITIONS[current]:
        return
    allowed = ", ".join(sorted(state.value for state in TRANSITIONS[current])) or "none"
    raise IllegalTransition(
        f"'{plugin_id}' cannot go from {current.value} to {target.value}; "
        f"from {current.value} it can go to: {allowed}",
        plugin_id=plugin_id,
    )
