"""Plugins' own figures: ``context.record_metric(name, value)``.

Each plugin's figures live under its own id, so two plugins' ``latency`` never
mix. A name is a lowercase identifier (``[a-z][a-z0-9_]*``, at most 64 characters)
and a value a finite number; a plugin may use at most
:data:`MAX_FIGURES_PER_PLUGIN` names, which bounds what the host keeps and the labels
of the metrics it exposes. Each name keeps its count, sum, lowest, highest and last
value since the host started; telemetry stores them per interval.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from acp_plugins.errors import AcpPluginsError

__all__ = ["MAX_FIGURES_PER_PLUGIN", "Figure", "PluginFigures", "check_figure"]

#: How many metric names one plugin may record.
MAX_FIGURES_PER_PLUGIN = 100

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def check_figure(plugin_id: str, name: object, value: object, known: int | None = None) -> float:
    """``value`` as a float, or an :class:`AcpPluginsError` saying what is wrong.

    ``known`` is how many names the plugin has recorded (``None``: ``name`` is one of them).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise AcpPluginsError(
            f"'{plugin_id}' recorded a metric named {name!r}: a name is a lowercase "
            "identifier ([a-z][a-z0-9_]*, at most 64 characters)",
            plugin_id=plugin_id,
        )
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AcpPluginsError(
            f"'{plugin_id}' recorded {value!r} as metric '{name}': a value is a finite number",
            plugin_id=plugin_id,
        )
    if known is not None and known >= MAX_FIGURES_PER_PLUGIN:
        raise AcpPluginsError(
            f"'{plugin_id}' recorded a new metric '{name}' but already has "
            f"{MAX_FIGURES_PER_PLUGIN} names, the most a plugin may; reuse a name",
            plugin_id=plugin_id,
        )
    return float(value)


@dataclass(slots=True)
class Figure:
    """What one plugin recorded under one name."""

    count: int = 0
    total: float = 0.0
    lowest: float = math.inf
    highest: float = -math.inf
    last: float = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.lowest = min(self.lowest, value)
        self.highest = max(self.highest, value)
        self.last = value

    def to_dict(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "sum": self.total,
            "min": self.lowest,
            "max": self.highest,
            "last": self.last,
            "mean": self.total / self.count if self.count else 0.0,
        }


class PluginFigures:
    """Every plugin's figures, by plugin id then name."""

    __slots__ = ("figures",)

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Figure]] = {}

    def record(self, plugin_id: str, name: str, value: object) -> None:
        """Add ``value`` under ``name`` for ``plugin_id``, checked by :func:`check_figure`."""
        mine = self.figures.setdefault(plugin_id, {})
        figure = mine.get(name)
        number = check_figure(plugin_id, name, value, None if figure else len(mine))
        if figure is None:
            figure = mine[name] = Figure()
        figure.add(number)

    def of(self, plugin_id: str) -> dict[str, Figure]:
        """The figures ``plugin_id`` recorded (empty if none)."""
        return self.figures.get(plugin_id, {})
