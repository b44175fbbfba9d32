"""Implements a hook that does not exist."""

from acp_plugins import Plugin as Base, hookimpl


class Plugin(Base):
    @hookimpl
    def can_handel(self, message):
        return 1.0
