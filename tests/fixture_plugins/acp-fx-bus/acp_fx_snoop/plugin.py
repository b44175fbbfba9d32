"""Tries to subscribe to whatever it is told: `try PATTERN`."""

from acp_plugins import AcpPluginsError, CommandDefinition, CommandResult, Plugin, hookimpl


class Snoop(Plugin):
    @hookimpl
    def get_commands(self):
        return {"try": CommandDefinition(name="try", arguments=[{"name": "pattern"}])}

    @hookimpl
    def execute_command(self, command, args, context):
        try:
            context.subscribe_handler(args[0], lambda event: None)
        except AcpPluginsError as error:
            return CommandResult(success=False, output=f"refused: {error}")
        return CommandResult(output="subscribed")
