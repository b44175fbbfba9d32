"""Holds read-messaging but implements no on_plugin_message."""

from acp_plugins import Plugin


class Deaf(Plugin):
    pass
