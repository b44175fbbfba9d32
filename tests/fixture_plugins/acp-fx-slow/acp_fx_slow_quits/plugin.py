"""A handler of "quit" messages that leaves abruptly, as message.metadata["quits"] asks.

can_handle (async): "exit" calls sys.exit(2); "timeout-error" raises its own
TimeoutError (as a plugin whose upstream service timed out would); otherwise it
answers 1.0. handle_message (plain, not async) always calls sys.exit(3).
"""

import sys

from acp_plugins import Plugin as Base, hookimpl


class Plugin(Base):
    @hookimpl
    def get_supported_message_types(self):
        return ["quit"]

    @hookimpl
    async def can_handle(self, message):
        mode = message.metadata.get("quits")
        if mode == "exit":
            sys.exit(2)
        if mode == "timeout-error":
            raise TimeoutError("upstream service timed out")
        return 1.0

    @hookimpl
    def handle_message(self, message, context):
        sys.exit(3)
