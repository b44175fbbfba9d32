"""Hook specifications: the contract between the host and its plugins.

One module per interface (:mod:`.messages`, :mod:`.commands`, :mod:`.data`,
:mod:`.analytics`) plus :mod:`.lifecycle` for the hooks every plugin may
implement and :mod:`.plugins` for messages from other plugins. Each hook may
be written as a plain function or as ``async def``; the host awaits whatever is
awaitable. Implementations may accept any subset
of a hook's arguments, as pluggy allows.
"""

from __future__ import annotations

from types import ModuleType

from acp_plugins.hookspecs import analytics, commands, data, lifecycle, messages, plugins

__all__ = ["SPEC_MODULES", "analytics", "commands", "data", "lifecycle", "messages", "plugins"]

#: Every module of hook specifications, in the order the host registers them.
SPEC_MODULES: tuple[ModuleType, ...] = (lifecycle, messages, commands, data, analytics, plugins)
