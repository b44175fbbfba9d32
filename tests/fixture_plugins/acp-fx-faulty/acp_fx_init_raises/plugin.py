"""initialize raises."""

from acp_plugins import Plugin as Base, PluginContext


class Plugin(Base):
    async def initialize(self, context: PluginContext) -> bool:
        raise RuntimeError("database unreachable")
