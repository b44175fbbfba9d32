"""The pluggy markers of acp-plugins.

Plugins decorate their hook implementations with :data:`hookimpl`; the host's
hook specifications use :data:`hookspec`. The project name ``"acp"`` keeps them
apart from any other pluggy-based system in the same process.
"""

from __future__ import annotations

import pluggy

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "acp"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
