"""Plugin configuration as the host hands it to a plugin.

The layered configuration (defaults, global file, environment, user file,
runtime overrides) builds on this; for now the host passes the settings it was
given for each plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PluginConfig"]


@dataclass(frozen=True, slots=True)
class PluginConfig:
    """A plugin's effective configuration: its settings and environment."""

    plugin_id: str
    version: str
    enabled: bool = True
    settings: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
