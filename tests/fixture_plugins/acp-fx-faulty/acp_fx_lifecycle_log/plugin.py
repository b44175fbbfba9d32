"""Records every lifecycle call it receives in the file named by ACP_FIXTURE_LIFECYCLE_LOG."""

import os
from pathlib import Path

from acp_plugins import Plugin as Base, PluginSettings, hookimpl


class Settings(PluginSettings):
    valid: bool = True


def _log(event):
    target = os.environ.get("ACP_FIXTURE_LIFECYCLE_LOG")
    if target:
        with Path(target).open("a") as stream:
            stream.write(event + "\n")


class Plugin(Base):
    settings_model = Settings

    def on_discover(self, manifest):
        super().on_discover(manifest)
        _log("on_discover:" + manifest.plugin_id)

    @hookimpl
    def on_load(self):
        _log("on_load")

    def validate_config(self, config):
        _log("validate_config")
        return config.settings.get("valid", True)

    def initialize(self, context):
        super().initialize(context)
        _log("initialize")
        return True

    @hookimpl
    def on_initialize(self):
        _log("on_initialize")

    def activate(self):
        _log("activate")
        return True

    @hookimpl
    def on_activate(self):
        _log("on_activate")

    def deactivate(self):
        _log("deactivate")
        return True

    @hookimpl
    def on_suspend(self):
        _log("on_suspend")

    @hookimpl
    def on_unload(self):
        _log("on_unload")
