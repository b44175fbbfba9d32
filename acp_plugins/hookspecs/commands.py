"""``ICommandHandler``: plugins that provide commands.

The host builds a registry from every active plugin's ``get_commands``. A name
offered by two plugins is a conflict: the plain name is refused with both
candidates named, while ``plugin_id:command`` always works. Arguments are
checked against the command's definition before ``execute_command`` is called.
"""

# mypy: disable-error-code="empty-body"
from __future__ import annotations

from typing import TYPE_CHECKING

from acp_plugins.markers import hookspec

if TYPE_CHECKING:
    from acp_plugins.models import CommandDefinition, CommandResult
    from acp_plugins.runtime.context import PluginContext


@hookspec
def get_commands() -> dict[str, CommandDefinition]:
    """Return command name -> definition; asked once when the plugin is activated."""


@hookspec
def execute_command(command: str, args: list[str], context: PluginContext) -> CommandResult:
    """Run ``command`` with ``args`` (already checked against its definition)."""
