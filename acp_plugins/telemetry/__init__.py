"""Telemetry and health: what the host measures, stores, exposes and judges.

:class:`PluginTelemetry` (``host.telemetry``) writes the figures to a SQLite
database every interval, reports on any time range of it, judges each plugin's
health and exposes everything to Prometheus.
"""

from acp_plugins.telemetry.health import HealthStatus, PluginHealth
from acp_plugins.telemetry.report import (
    HookFigures,
    PluginMetricFigures,
    TelemetryReport,
    WorkerFigures,
)
from acp_plugins.telemetry.service import PluginTelemetry

__all__ = [
    "HealthStatus",
    "HookFigures",
    "PluginHealth",
    "PluginMetricFigures",
    "PluginTelemetry",
    "TelemetryReport",
    "WorkerFigures",
]
