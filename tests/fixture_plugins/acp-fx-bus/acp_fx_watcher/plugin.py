"""Subscribes to user.* and plugin:command; `seen` says what it received, in order."""

import asyncio
import json

from acp_plugins import CommandDefinition, CommandResult, Plugin, hookimpl


class Watcher(Plugin):
    @hookimpl
    def initialize(self, context):
        self.seen = []

        @context.subscribe("user.*")
        async def on_user(event):
            if event.topic == "user.boom":
                raise RuntimeError("the watcher's handler fails on purpose")
            await asyncio.sleep(0)  # async handlers too, one event at a time
            self.seen.append(
                [event.topic, event.data.get("text"), event.publisher, event.data.get("n")]
            )

        @context.subscribe("plugin:command")
        def on_command(event):
            if event.data.get("plugin_id") == "herald":
                self.seen.append([event.topic, event.data.get("command"), event.publisher, None])

    @hookimpl
    def get_commands(self):
        return {"seen": CommandDefinition(name="seen"), "forget": CommandDefinition(name="forget")}

    @hookimpl
    def execute_command(self, command, args, context):
        if command == "forget":
            self.seen.clear()
            return CommandResult(output="[]")
        return CommandResult(output=json.dumps(self.seen))
