"""Sends another plugin a message: `ask TARGET TEXT` answers with the target's answer as JSON."""

import json

from acp_plugins import CommandDefinition, CommandResult, Plugin, hookimpl


class Caller(Plugin):
    @hookimpl
    def get_commands(self):
        variadic = [{"name": "args", "required": False, "variadic": True}]
        return {
            "ask": CommandDefinition(name="ask", arguments=variadic),
            "ask-bad": CommandDefinition(name="ask-bad", arguments=variadic),
        }

    @hookimpl
    async def execute_command(self, command, args, context):
        if command == "ask-bad":  # a payload that is not JSON data
            await context.send_to_plugin(args[0], {"when": object()})
        answer = await context.send_to_plugin(args[0], {"text": " ".join(args[1:])})
        return CommandResult(output=json.dumps(answer, sort_keys=True))
