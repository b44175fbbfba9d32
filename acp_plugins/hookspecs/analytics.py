"""``IAnalyticsProvider``: plugins that collect metrics and write reports.

Reports come at least in the formats ``json``, ``markdown`` and ``csv``;
:func:`acp_plugins.render_report` renders any :class:`~acp_plugins.MetricsData`
in each of them for plugins that have no reason to do otherwise.
"""

# mypy: disable-error-code="empty-body"
from __future__ import annotations

from typing import TYPE_CHECKING

from acp_plugins.markers import hookspec

if TYPE_CHECKING:
    from acp_plugins.models import MetricDefinition, MetricsData, Report, TimeRange


@hookspec
def get_metrics() -> list[MetricDefinition]:
    """Return the metrics this plugin can collect."""


@hookspec
def collect_metrics(time_range: TimeRange) -> MetricsData:
    """Collect every metric over ``time_range``."""


@hookspec
def generate_report(metrics: MetricsData, format: str) -> Report:
    """Render ``metrics`` as a report in ``format`` (json, markdown, csv at least)."""
