"""Declares two commands in its manifest but offers one and another it did not declare."""

from acp_plugins import CommandDefinition, CommandResult, Plugin, hookimpl


class Promiser(Plugin):
    @hookimpl
    def get_commands(self):
        return {
            "promise": CommandDefinition(name="promise"),
            "surprise": CommandDefinition(name="surprise"),
        }

    @hookimpl
    def execute_command(self, command, args):
        return CommandResult(output=command)
