"""Depends on gauge; answers messages of type ``gauge-user``."""

from acp_plugins import Plugin, hookimpl


class GaugeUser(Plugin):
    @hookimpl
    def get_supported_message_types(self):
        return ["gauge-user"]

    @hookimpl
    def can_handle(self, message):
        return 1.0

    @hookimpl
    def handle_message(self, message, context):
        return "used"
