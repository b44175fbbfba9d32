"""Answers 'vault' messages with its settings; refuses changes while 'frozen' is in tags."""

from acp_fx_settings.config import VaultSettings
from acp_plugins import Plugin as Base, hookimpl


class Plugin(Base):
    settings_model = VaultSettings

    @hookimpl
    def get_supported_message_types(self):
        return ["vault"]

    @hookimpl
    def can_handle(self, message):
        return 1.0

    @hookimpl
    def handle_message(self, message, context):
        settings = context.settings
        return (
            f"url={settings.endpoint.url} retries={settings.endpoint.retries} "
            f"tags={','.join(settings.tags)} key-length={len(settings.api_key.get_secret_value())}"
        )

    def on_config_changed(self, config):
        # once started (or changed) with the tag "frozen", refuses every change
        if "frozen" in self.previous_tags:
            return False
        self.previous_tags = list(self.context.settings.tags)
        return True

    def on_initialize(self):
        self.previous_tags = list(self.context.settings.tags)
