"""Does what a message of type ``gauge`` says, to be measured.

``ok``; ``fail`` (raises); ``stall SECONDS`` (sleeps); ``spin SECONDS`` (uses the CPU); ``metric NAME VALUE``
(``context.record_metric``); ``write BYTES`` (into its data directory);
``sick`` / ``well`` (what its ``health_check`` answers from then on). Its command
``tick`` answers ``tock``.
"""

import asyncio
import time

from acp_plugins import AcpPluginsError, CommandDefinition, CommandResult, Plugin, hookimpl


class Gauge(Plugin):
    sick = False

    @hookimpl
    def get_supported_message_types(self):
        return ["gauge"]

    @hookimpl
    def can_handle(self, message):
        return 1.0

    @hookimpl
    async def handle_message(self, message, context):
        word, _, rest = message.content.partition(" ")
        if word == "fail":
            raise RuntimeError("told to fail")
        if word == "stall":
            await asyncio.sleep(float(rest))
        elif word == "metric":
            name, value = rest.split(" ")
            try:
                context.record_metric(name, float(value) if value != "text" else value)
            except AcpPluginsError as error:
                return f"refused: {error}"
        elif word == "spin":
            until = time.process_time() + float(rest)
            while time.process_time() < until:
                pass
        elif word == "write":
            (context.data_dir / "written.bin").write_bytes(b"x" * int(rest))
        elif word in ("sick", "well"):
            self.sick = word == "sick"
        return "done"

    @hookimpl
    def health_check(self):
        return not self.sick

    @hookimpl
    def get_commands(self):
        return {"tick": CommandDefinition(name="tick")}

    @hookimpl
    def execute_command(self, command, args, context):
        return CommandResult(output="tock")
