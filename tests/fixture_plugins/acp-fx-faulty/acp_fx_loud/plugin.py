"""A message handler whose scores and answers go wrong in every way the tests ask for."""

import asyncio

from acp_plugins import Plugin as Base, hookimpl


class Plugin(Base):
    @hookimpl
    async def get_supported_message_types(self):
        return ["*"]

    @hookimpl
    async def can_handle(self, message):
        mode = message.metadata.get("loud")
        if mode == "raise":
            raise ValueError("cannot score this")
        if mode == "too-sure":
            return 7.5
        if mode == "nan":
            return float("nan")
        if mode == "text":
            return "very"
        if mode == "hang-score":
            await asyncio.sleep(3600)
        if mode in ("hang", "crash", "garbage", "stubborn"):
            return 1.0
        return 0.0

    @hookimpl
    async def handle_message(self, message, context):
        mode = message.metadata.get("loud")
        if mode == "hang":
            await asyncio.sleep(3600)
        if mode == "stubborn":  # ignores cancellation for 2 s, then answers
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 2
            while loop.time() < deadline:
                try:
                    await asyncio.sleep(deadline - loop.time())
                except asyncio.CancelledError:
                    continue
            return "too late"
        if mode == "crash":
            raise RuntimeError("handler crashed")
        return 42
