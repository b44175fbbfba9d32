"""Declares no contributions (it starts with the host) and depends on the tools sample."""

from acp_plugins import Plugin


class Fan(Plugin):
    pass
