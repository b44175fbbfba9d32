"""The tools plugin: a handful of small commands.

The host parses every command line against the command's definition before
``execute_command`` runs: the handlers below get ``params``, every argument and
option by name, already converted to its declared type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from acp_plugins import (
    ArgumentDefinition,
    CommandDefinition,
    CommandResult,
    OptionDefinition,
    Plugin,
    PluginContext,
    hookimpl,
)

COMMANDS: dict[str, CommandDefinition] = {
    definition.name: definition
    for definition in (
        CommandDefinition(
            name="add",
            description="Add two numbers.",
            arguments=[
                ArgumentDefinition(name="a", type="float", help="The first number."),
                ArgumentDefinition(name="b", type="float", help="The second number."),
            ],
            options=[
                OptionDefinition(name="digits", type="int", help="Round to this many digits."),
            ],
        ),
        CommandDefinition(
            name="upper",
            description="Print the text in upper case.",
            arguments=[ArgumentDefinition(name="text", variadic=True, help="Words to shout.")],
            options=[OptionDefinition(name="reverse", type="bool", help="Reverse it too.")],
        ),
        CommandDefinition(
            name="wordcount",
            description="Count the words of the text.",
            arguments=[ArgumentDefinition(name="text", variadic=True, help="Text to count.")],
        ),
        CommandDefinition(name="time", description="Print the current UTC time (ISO 8601)."),
    )
}


def _number(value: float) -> str:
    """``3`` rather than ``3.0`` for whole numbers; every digit otherwise."""
    return str(int(value)) if value.is_integer() else repr(value)


class ToolsPlugin(Plugin):
    """Offers ``add``, ``upper``, ``wordcount`` and ``time``."""

    def __init__(self) -> None:
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[CommandResult]]] = {
            "add": self._add,
            "upper": self._upper,
            "wordcount": self._wordcount,
            "time": self._time,
        }

    @hookimpl
    async def get_commands(self) -> dict[str, CommandDefinition]:
        return dict(COMMANDS)

    @hookimpl
    async def execute_command(
        self, command: str, params: dict[str, Any], context: PluginContext
    ) -> CommandResult:
        handler = self._handlers.get(command)
        if handler is None:  # the host only routes commands from get_commands
            raise ValueError(f"'tools' has no command {command!r}")
        context.logger.debug("running %s with %s", command, sorted(params))
        return await handler(params)

    async def _add(self, params: dict[str, Any]) -> CommandResult:
        total: float = params["a"] + params["b"]  # floats already: the host converted them
        if params["digits"] is not None:
            total = round(total, params["digits"])
        return CommandResult(output=_number(total), data={"sum": total})

    async def _upper(self, params: dict[str, Any]) -> CommandResult:
        text = " ".join(params["text"]).upper()
        if params["reverse"]:
            text = text[::-1]
        return CommandResult(output=text, data={"text": text})

    async def _wordcount(self, params: dict[str, Any]) -> CommandResult:
        # Each argument may hold several words ("hello world" quoted by a shell).
        words = sum(len(arg.split()) for arg in params["text"])
        return CommandResult(output=str(words), data={"words": words})

    async def _time(self, params: dict[str, Any]) -> CommandResult:
        del params  # takes none; the host has refused any
        now = datetime.now(timezone.utc).isoformat()
        return CommandResult(output=now, data={"time": now})
