"""Answers plugin messages with who sent them; `tell TARGET` tries to send one itself."""

from acp_plugins import CommandDefinition, CommandResult, Plugin, hookimpl


class Listener(Plugin):
    @hookimpl
    def on_plugin_message(self, sender, payload):
        if payload.get("text") == "raise":
            raise RuntimeError("listener refuses")
        if payload.get("text") == "bad answer":
            return float("nan")
        return {"from": sender, "heard": payload.get("text"), "as": ["list", "of", "words"]}

    @hookimpl
    def get_commands(self):
        return {"tell": CommandDefinition(name="tell", arguments=[{"name": "target"}])}

    @hookimpl
    async def execute_command(self, command, args, context):
        return CommandResult(output=str(await context.send_to_plugin(args[0], {"text": "hi"})))
