"""activate returns False."""

from acp_plugins import Plugin as Base


class Plugin(Base):
    def activate(self) -> bool:
        return False
