"""An async handler of "slow" messages that thinks before it scores.

can_handle sleeps message.metadata["delays"]["slow-b"] seconds (default 0.3),
then answers 0.6.
"""

import asyncio

from acp_plugins import Plugin as Base, hookimpl


class Plugin(Base):
    @hookimpl
    async def get_supported_message_types(self):
        return ["slow"]

    @hookimpl
    async def can_handle(self, message):
        await asyncio.sleep(message.metadata.get("delays", {}).get("slow-b", 0.3))
        return 0.6

    @hookimpl
    async def handle_message(self, message, context):
        if message.metadata.get("fail-b"):
            raise RuntimeError(f"slow-b gave up on attempt {message.attempt}")
        return "slow-b answered"
