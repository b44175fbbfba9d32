"""The echo plugin's settings."""

from __future__ import annotations

from acp_plugins import PluginSettings


class EchoSettings(PluginSettings):
    """Settings of ``echo``: ``[plugins.echo]`` in a config file, ``ACP_PLUGIN_ECHO__*``."""

    prefix: str = "echo: "
