"""Declares IMessageHandler, implements only part of it, and an undeclared command hook."""

from acp_plugins import Plugin as Base, hookimpl


class Plugin(Base):
    @hookimpl
    def can_handle(self, message):
        return 1.0

    def handle_message(self, message, context):  # not marked: not a hook
        return "never"

    @hookimpl
    def get_commands(self):
        return {}
