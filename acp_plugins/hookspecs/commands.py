"""``ICommandHandler``: plugins that provide commands.

The host builds a registry from every active plugin's ``get_commands``. A name
offered by two plugins is a conflict: the plain name is refused with both
candidates named, while ``plugin_id:command`` always works. The command line
is parsed against the command's definition (its ``arguments`` and ``options``)
before ``execute_command`` is called; bad input never reaches the plugin.
"""

# mypy: disable-error-code="empty-body"
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from acp_plugins.markers import hookspec

if TYPE_CHECKING:
    from acp_plugins.models import CommandDefinition, CommandResult
    from acp_plugins.runtime.context import PluginContext


@hookspec
def get_commands() -> dict[str, CommandDefinition]:
    """Return command name -> definition; asked once when the plugin is activated."""


@hookspec
def execute_command(
    command: str, args: list[str], params: dict[str, Any], context: PluginContext
) -> CommandResult:
    """Run ``command``; its command line has been parsed against its definition.

    :param args: the positional arguments, as the strings given.
    :param params: every argument and option by name, converted to its declared type
        (``int``, ``float``, ``bool``, ``str``); an optional argument not given is
        ``None``, a variadic one a list, an option not given its default (a flag
        ``False``); option keys use ``_`` for ``-``. Take only what you need: an
        implementation may accept any subset of the arguments.
    """
