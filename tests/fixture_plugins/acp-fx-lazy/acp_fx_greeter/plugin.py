"""Declares exactly what it offers: started on first use; counts its activations."""

import asyncio

from acp_plugins import CommandDefinition, CommandResult, MessageResponse, Plugin, hookimpl


class Greeter(Plugin):
    activations = 0

    async def activate(self):
        await asyncio.sleep(0.05)  # a slow start: concurrent first uses overlap it
        Greeter.activations += 1
        return True

    @hookimpl
    def get_commands(self):
        return {"greet": CommandDefinition(name="greet")}

    @hookimpl
    def execute_command(self, command, args):
        return CommandResult(output=f"hello (activated {Greeter.activations} time(s))")

    @hookimpl
    def get_supported_message_types(self):
        return ["greeting"]

    @hookimpl
    def can_handle(self, message):
        return 1.0

    @hookimpl
    def handle_message(self, message, context):
        return MessageResponse(content=f"greetings (activated {Greeter.activations} time(s))")
