"""The telemetry report: the stored intervals of a time range, added up.

``host.telemetry_report(time_range)`` (``acp-plugins telemetry``, ``GET
/api/v1/report``). Per plugin and hook: calls, errors, timeouts, the error rate,
throughput over the range, latency quantiles from the summed histograms; per
worker: its highest and last memory, CPU seconds, bytes read and written, open
files, restarts and time paused; what the host was asked; what plugins recorded.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from acp_plugins.models import TimeRange
from acp_plugins.runtime.latency import empty_buckets, quantile
from acp_plugins.telemetry.store import StoredTelemetry, WorkerRow

__all__ = ["HookFigures", "PluginMetricFigures", "TelemetryReport", "WorkerFigures", "summarize"]


class _Figures(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HookFigures(_Figures):
    """One hook of one plugin over the report's range."""

    plugin_id: str
    hook: str
    calls: int
    errors: int = Field(description="Calls that raised, timed out or answered wrongly.")
    timeouts: int
    error_rate: float = Field(description="errors / calls (0 with no calls).")
    calls_per_second: float = Field(description="calls over the length of the range.")
    mean_ms: float
    p50_ms: float | None = Field(description="None: stored with telemetry off.")
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float


class WorkerFigures(_Figures):
    """One isolated plugin's worker processes over the report's range."""

    plugin_id: str
    samples: int
    resident_bytes_max: int | None
    resident_bytes_last: int | None
    cpu_seconds: float
    read_bytes: int
    write_bytes: int
    open_files_max: int | None
    restarts: int
    paused_seconds: float


class PluginMetricFigures(_Figures):
    """What one plugin recorded under one name (``context.record_metric``)."""

    plugin_id: str
    metric: str
    count: int
    sum: float
    min: float
    max: float
    mean: float
    last: float


class TelemetryReport(_Figures):
    """Everything stored for ``time_range``, added up."""

    time_range: TimeRange
    generated_at: datetime
    hooks: list[HookFigures] = []
    workers: list[WorkerFigures] = []
    metrics: list[PluginMetricFigures] = []
    usage: dict[str, dict[str, int]] = Field(
        default={}, description="messages by type, commands and queries by plugin:name."
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _hooks(stored: StoredTelemetry, seconds: float) -> list[HookFigures]:
    sums: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0, 0.0, 0.0])
    buckets: dict[tuple[str, str], list[int] | None] = {}
    for _, row in stored.hooks:
        key = (row.plugin, row.hook)
        total = sums[key]
        total[0] += row.calls
        total[1] += row.errors
        total[2] += row.timeouts
        total[3] += row.seconds
        total[4] = max(total[4], row.max_seconds)
        held = buckets.get(key, empty_buckets())
        if held is None or row.buckets is None:  # one interval without a histogram spoils it
            buckets[key] = None
        else:
            buckets[key] = [a + b for a, b in zip(held, row.buckets, strict=True)]
    figures = []
    for (plugin_id, hook), (calls, errors, timeouts, spent, highest) in sorted(sums.items()):
        counts = buckets[(plugin_id, hook)]

        def q(
            fraction: float, counts: list[int] | None = counts, top: float = highest
        ) -> float | None:
            return None if counts is None else _ms(quantile(counts, fraction, top))

        figures.append(
            HookFigures(
                plugin_id=plugin_id,
                hook=hook,
                calls=int(calls),
                errors=int(errors),
                timeouts=int(timeouts),
                error_rate=round(errors / calls, 6) if calls else 0.0,
                calls_per_second=round(calls / seconds, 6) if seconds > 0 else 0.0,
                mean_ms=_ms(spent / calls) if calls else 0.0,
                p50_ms=q(0.5),
                p95_ms=q(0.95),
                p99_ms=q(0.99),
                max_ms=_ms(highest),
            )
        )
    return figures


def _workers(stored: StoredTelemetry) -> list[WorkerFigures]:
    rows: dict[str, list[WorkerRow]] = defaultdict(list)
    for _, row in stored.workers:
        rows[row.plugin].append(row)
    figures = []
    for plugin_id, samples in sorted(rows.items()):
        resident = [r.resident_bytes for r in samples if r.resident_bytes is not None]
        files = [r.open_files for r in samples if r.open_files is not None]
        last = samples[-1]
        figures.append(
            WorkerFigures(
                plugin_id=plugin_id,
                samples=len(samples),
                resident_bytes_max=max(resident, default=None),
                resident_bytes_last=last.resident_bytes,
                cpu_seconds=round(sum(r.cpu_seconds or 0.0 for r in samples), 6),
                read_bytes=sum(r.read_bytes or 0 for r in samples),
                write_bytes=sum(r.write_bytes or 0 for r in samples),
                open_files_max=max(files, default=None),
                restarts=sum(r.restarts for r in samples),
                paused_seconds=round(sum(r.paused_seconds for r in samples), 6),
            )
        )
    return figures


def _metrics(stored: StoredTelemetry) -> list[PluginMetricFigures]:
    sums: dict[tuple[str, str], list[float]] = {}
    for _, row in stored.figures:
        held = sums.get((row.plugin, row.name))
        if held is None:
            sums[(row.plugin, row.name)] = [row.count, row.total, row.lowest, row.highest, row.last]
        else:
            held[0] += row.count
            held[1] += row.total
            held[2] = min(held[2], row.lowest)
            held[3] = max(held[3], row.highest)
            held[4] = row.last
    return [
        PluginMetricFigures(
            plugin_id=plugin_id,
            metric=name,
            count=int(count),
            sum=total,
            min=lowest if math.isfinite(lowest) else 0.0,
            max=highest if math.isfinite(highest) else 0.0,
            mean=total / count if count else 0.0,
            last=last,
        )
        for (plugin_id, name), (count, total, lowest, highest, last) in sorted(sums.items())
    ]


def summarize(stored: StoredTelemetry, time_range: TimeRange, now: datetime) -> TelemetryReport:
    """The report of ``stored`` (the rows of ``time_range``)."""
    seconds = (time_range.end - time_range.start).total_seconds()
    usage: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for _, row in stored.usage:
        usage[row.kind][row.name] += row.count
    return TelemetryReport(
        time_range=time_range,
        generated_at=now,
        hooks=_hooks(stored, seconds),
        workers=_workers(stored),
        metrics=_metrics(stored),
        usage={kind: dict(sorted(names.items())) for kind, names in sorted(usage.items())},
    )
