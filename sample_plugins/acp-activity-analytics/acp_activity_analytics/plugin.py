"""The activity-analytics plugin: metrics over the agent events of sqlite-store.

It owns no data. Its manifest depends on the ``sqlite-store`` plugin, so the
host starts that plugin first, and every event it counts comes through
``context.query_data("agent-events", ...)`` (which needs ``read-data``). It also
subscribes to the bus's ``echo.answered`` events (``read-messaging``) and counts
the echo plugin's answers.

Settings (optional): ``title``, the title of generated reports.
"""

from __future__ import annotations

from collections import Counter, deque
from datetime import datetime
from typing import Any

from acp_activity_analytics.config import AnalyticsSettings
from acp_plugins import (
    DataQuery,
    Event,
    MetricDefinition,
    MetricPoint,
    MetricsData,
    Plugin,
    Report,
    TimeRange,
    hookimpl,
    render_report,
)

SOURCE = "agent-events"

METRICS: tuple[MetricDefinition, ...] = (
    MetricDefinition(
        name="events_total",
        description="Agent events in the time range.",
        unit="events",
        kind="counter",
    ),
    MetricDefinition(
        name="events_per_agent",
        description="Agent events in the time range, per agent (label 'agent').",
        unit="events",
        kind="counter",
    ),
    MetricDefinition(
        name="events_per_kind",
        description="Agent events in the time range, per kind of event (label 'kind').",
        unit="events",
        kind="counter",
    ),
    MetricDefinition(
        name="echo_answers",
        description="Answers the echo plugin gave in the time range, heard on the event bus "
        "('echo.answered', since this plugin started; absent when there are none).",
        unit="answers",
        kind="counter",
    ),
    MetricDefinition(
        name="mean_value",
        description="Mean value of the events in the time range (absent when there are none).",
        kind="gauge",
    ),
)


def metric_points(rows: list[dict[str, Any]]) -> list[MetricPoint]:
    """The metrics of a set of ``agent-events`` rows."""
    per_agent = Counter(str(row["agent"]) for row in rows)
    per_kind = Counter(str(row["kind"]) for row in rows)
    points = [MetricPoint(name="events_total", value=len(rows))]
    points += [
        MetricPoint(name="events_per_agent", value=count, labels={"agent": agent})
        for agent, count in sorted(per_agent.items())
    ]
    points += [
        MetricPoint(name="events_per_kind", value=count, labels={"kind": kind})
        for kind, count in sorted(per_kind.items())
    ]
    if rows:
        mean = sum(float(row["value"]) for row in rows) / len(rows)
        points.append(MetricPoint(name="mean_value", value=mean))
    return points


class ActivityAnalyticsPlugin(Plugin):
    """Collects ``events_total``, ``events_per_agent``, ``events_per_kind``, ``mean_value``."""

    settings_model = AnalyticsSettings

    @hookimpl
    def on_initialize(self) -> None:
        self.echo_answers: deque[datetime] = deque(maxlen=100_000)

        @self.context.subscribe("echo.answered")
        def heard(event: Event) -> None:
            self.echo_answers.append(event.at)

    @hookimpl
    async def on_activate(self) -> None:
        offered = {source.source_id for source in self.context.data_sources()}
        if SOURCE not in offered:
            raise RuntimeError(
                f"data source '{SOURCE}' is not offered by any active plugin "
                "(it comes from the sqlite-store plugin)"
            )

    @hookimpl
    async def get_metrics(self) -> list[MetricDefinition]:
        return list(METRICS)

    @hookimpl
    async def collect_metrics(self, time_range: TimeRange) -> MetricsData:
        query = DataQuery(time_range=time_range, fields=["agent", "kind", "value"])
        result = await self.context.query_data(SOURCE, query)
        points = metric_points(result.rows)
        heard = sum(1 for at in self.echo_answers if time_range.start <= at < time_range.end)
        if heard:
            points.append(MetricPoint(name="echo_answers", value=heard))
        return MetricsData(time_range=time_range, points=points, source=self.plugin_id)

    @hookimpl
    async def generate_report(self, metrics: MetricsData, format: str) -> Report:
        settings: AnalyticsSettings = self.context.settings
        return render_report(metrics, format, title=settings.title)
