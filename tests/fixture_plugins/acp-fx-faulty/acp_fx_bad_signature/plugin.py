"""can_handle takes an argument the hook does not have."""

from acp_plugins import Plugin as Base, hookimpl


class Plugin(Base):
    @hookimpl
    def get_supported_message_types(self):
        return ["*"]

    @hookimpl
    def can_handle(self, message, urgency):
        return 1.0

    @hookimpl
    def handle_message(self, message):
        return "never"
