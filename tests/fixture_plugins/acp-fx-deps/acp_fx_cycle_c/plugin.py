"""A plugin with nothing to do but load."""

from acp_plugins import Plugin as Base


class Plugin(Base):
    """Loads, initializes and activates."""
