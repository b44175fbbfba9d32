"""Publishes what it is told to: `announce TOPIC TEXT [COUNT]`."""

from acp_plugins import AcpPluginsError, CommandDefinition, CommandResult, Plugin, hookimpl


class Herald(Plugin):
    @hookimpl
    def get_commands(self):
        arguments = [{"name": "topic"}, {"name": "text"}, {"name": "count", "required": False}]
        return {"announce": CommandDefinition(name="announce", arguments=arguments)}

    @hookimpl
    async def execute_command(self, command, args, context):
        topic, text = args[0], args[1]
        count = int(args[2]) if len(args) > 2 else 1
        reached = []
        try:
            for n in range(count):
                reached.append(await context.publish(topic, {"text": text, "n": n}))
        except AcpPluginsError as error:
            return CommandResult(success=False, output=f"refused: {error}")
        return CommandResult(output=",".join(map(str, reached)))
