"""The four plugin interfaces and the hooks that make up each.

A manifest declares interfaces by these names; the host checks, after import,
that the plugin implements exactly the hooks of the interfaces it declares.
"""

from __future__ import annotations

from enum import Enum

from acp_plugins.hookspecs.lifecycle import LIFECYCLE_HOOKS
from acp_plugins.loading.permissions import Permission

__all__ = [
    "INTERFACE_HOOKS",
    "INTERFACE_PERMISSIONS",
    "LIFECYCLE_HOOKS",
    "Interface",
    "interface_of_hook",
]


class Interface(str, Enum):
    """An interface a plugin can implement, by its manifest name."""

    MESSAGE_HANDLER = "IMessageHandler"
    COMMAND_HANDLER = "ICommandHandler"
    DATA_PROVIDER = "IDataProvider"
    ANALYTICS_PROVIDER = "IAnalyticsProvider"

    def __str__(self) -> str:
        return self.value


#: The hooks each interface consists of; a plugin declaring the interface implements all.
INTERFACE_HOOKS: dict[Interface, frozenset[str]] = {
    Interface.MESSAGE_HANDLER: frozenset(
        {"can_handle", "handle_message", "get_supported_message_types"}
    ),
    Interface.COMMAND_HANDLER: frozenset({"get_commands", "execute_command"}),
    Interface.DATA_PROVIDER: frozenset({"get_data_sources", "query_data"}),
    Interface.ANALYTICS_PROVIDER: frozenset({"get_metrics", "collect_metrics", "generate_report"}),
}

#: The permission each interface needs: handling messages means reading them, and an
#: analytics provider reads the data it reports on. A manifest declaring the
#: interface must request the permission.
INTERFACE_PERMISSIONS: dict[Interface, Permission] = {
    Interface.MESSAGE_HANDLER: Permission.READ_MESSAGING,
    Interface.ANALYTICS_PROVIDER: Permission.READ_DATA,
}

_HOOK_TO_INTERFACE = {hook: iface for iface, hooks in INTERFACE_HOOKS.items() for hook in hooks}


def interface_of_hook(hook: str) -> Interface | None:
    """The interface ``hook`` belongs to, or ``None`` for lifecycle and unknown hooks."""
    return _HOOK_TO_INTERFACE.get(hook)
