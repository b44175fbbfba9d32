"""A plain (non-async) handler that blocks when asked to."""

import time

from acp_plugins import Plugin as Base, hookimpl


class Plugin(Base):
    @hookimpl
    def get_supported_message_types(self):
        return ["block"]

    @hookimpl
    def can_handle(self, message):
        return 0.5

    @hookimpl
    def handle_message(self, message, context):
        time.sleep(float(message.content or 0))
        return "woke up"
