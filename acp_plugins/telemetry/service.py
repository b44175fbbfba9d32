"""The host's telemetry: what it measures, written to its database every interval.

Calls are counted by the call guard into each record's statistics (with latency
histograms when telemetry is on); the dispatcher counts what the host is asked;
plugins record their own figures. This service reads all of it: every
``interval`` seconds (and when the host stops) it writes what changed since the
last write to the SQLite database, with a reading of each worker's resources, and
it marks the totals that a plugin's health is judged against.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from acp_plugins.config.settings import TelemetrySettings
from acp_plugins.errors import PluginCallError
from acp_plugins.models import TimeRange
from acp_plugins.runtime.calls import CallGuard
from acp_plugins.runtime.catalog import PluginCatalog
from acp_plugins.runtime.figures import PluginFigures
from acp_plugins.runtime.lifecycle import PluginState
from acp_plugins.runtime.record import PluginRecord
from acp_plugins.runtime.usage import UsageCounts
from acp_plugins.telemetry.exposition import exposition
from acp_plugins.telemetry.health import (
    CallWindow,
    HealthStatus,
    HealthThresholds,
    PluginHealth,
    judge,
)
from acp_plugins.telemetry.report import TelemetryReport, summarize
from acp_plugins.telemetry.resources import WorkerReading, worker_readings
from acp_plugins.telemetry.store import (
    FigureRow,
    HookRow,
    TelemetryBatch,
    TelemetryStore,
    UsageRow,
    WorkerRow,
)

__all__ = ["PluginTelemetry"]

logger = logging.getLogger(__name__)

_N = TypeVar("_N", int, float)

_DAY = 86_400.0


class PluginTelemetry:
    """Stores the host's figures and judges its plugins' health."""

    def __init__(
        self,
        *,
        catalog: PluginCatalog,
        guard: CallGuard,
        settings: TelemetrySettings,
        data_root: Path,
    ) -> None:
        self.catalog = catalog
        self.guard = guard
        self.settings = settings
        self.enabled = settings.enabled
        #: What the host was asked (``None`` with telemetry off).
        self.usage: UsageCounts | None = UsageCounts() if self.enabled else None
        #: Plugins' own figures (``context.record_metric``).
        self.figures = PluginFigures()
        self.store = TelemetryStore(
            settings.database or data_root / "telemetry.sqlite", settings.retention_days * _DAY
        )
        self.thresholds = HealthThresholds(
            window=settings.error_window,
            degraded_error_rate=settings.degraded_error_rate,
            failing_error_rate=settings.failing_error_rate,
        )
        self.window = CallWindow()
        self._written_hooks: dict[
            tuple[str, str], tuple[int, int, int, float, tuple[int, ...]]
        ] = {}
        self._written_usage: dict[tuple[str, str], int] = {}
        self._written_figures: dict[tuple[str, str], tuple[int, float]] = {}
        self._written_workers: dict[str, tuple[int | None, WorkerReading]] = {}
        self._sampler: asyncio.Task[None] | None = None
        self._interval_began = time.time()
        self._writing = asyncio.Lock()

    # -- the sampler ---------------------------------------------------------------

    def start(self) -> None:
        """Mark the totals health starts from; with telemetry on, write every interval."""
        self.window.mark(time.monotonic(), self.catalog.records, self.thresholds.window)
        self._interval_began = time.time()
        if self.enabled and self._sampler is None:
            self._sampler = asyncio.ensure_future(self._sample())

    async def stop(self) -> None:
        """Stop writing every interval, and write what changed since the last write."""
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None
        if self.enabled:
            await self.flush()

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval)
            try:
                await self.flush()
            except (OSError, sqlite3.Error) as error:  # the next interval tries again
                logger.warning("telemetry: cannot write %s: %s", self.store.path, error)

    async def flush(self) -> None:
        """Write what changed since the last write (one transaction; nothing if nothing did).

        The rows carry the time the interval began: the last write, or the host's start.
        """
        async with self._writing:
            self.window.mark(time.monotonic(), self.catalog.records, self.thresholds.window)
            now = time.time()
            batch = self._batch(self._interval_began)
            self._interval_began = now
            if batch:
                await asyncio.to_thread(self.store.write, batch, now)

    def _batch(self, now: float) -> TelemetryBatch:
        batch = TelemetryBatch(at=now)
        for plugin_id, record in self.catalog.records.items():
            for hook, stats in list(record.metrics.items()):
                key = (plugin_id, hook)
                buckets = tuple(stats.buckets) if stats.buckets is not None else ()
                now_values = (
                    stats.calls,
                    stats.errors,
                    stats.timeouts,
                    stats.total_seconds,
                    buckets,
                )
                before = self._written_hooks.get(key)
                if before is None or before[0] > stats.calls:  # new, or a new record since
                    before = (0, 0, 0, 0.0, tuple(0 for _ in buckets))
                if stats.calls == before[0]:
                    continue
                self._written_hooks[key] = now_values
                batch.hooks.append(
                    HookRow(
                        plugin=plugin_id,
                        hook=hook,
                        calls=stats.calls - before[0],
                        errors=stats.errors - before[1],
                        timeouts=stats.timeouts - before[2],
                        seconds=stats.total_seconds - before[3],
                        max_seconds=stats.max_seconds,
                        buckets=tuple(a - b for a, b in zip(buckets, before[4], strict=False))
                        if stats.buckets is not None
                        else None,
                    )
                )
        self._usage_rows(batch)
        self._figure_rows(batch)
        self._worker_rows(batch)
        return batch

    def _usage_rows(self, batch: TelemetryBatch) -> None:
        if self.usage is None:
            return
        for kind, names in self.usage.counts.items():
            for name, count in names.items():
                before = self._written_usage.get((kind, name), 0)
                if count > before:
                    self._written_usage[(kind, name)] = count
                    batch.usage.append(UsageRow(kind=kind, name=name, count=count - before))

    def _figure_rows(self, batch: TelemetryBatch) -> None:
        for plugin_id, names in self.figures.figures.items():
            for name, figure in names.items():
                count, total = self._written_figures.get((plugin_id, name), (0, 0.0))
                if figure.count > count:
                    self._written_figures[(plugin_id, name)] = (figure.count, figure.total)
                    batch.figures.append(
                        FigureRow(
                            plugin=plugin_id,
                            name=name,
                            count=figure.count - count,
                            total=figure.total - total,
                            lowest=figure.lowest,
                            highest=figure.highest,
                            last=figure.last,
                        )
                    )

    def _worker_rows(self, batch: TelemetryBatch) -> None:
        for reading in worker_readings(self.catalog.records):
            before_pid, before = self._written_workers.get(reading.plugin_id, (None, None))
            # a process's own counts start again with a new process
            then = before.usage if before is not None and before_pid == reading.pid else None
            usage = reading.usage
            batch.workers.append(
                WorkerRow(
                    plugin=reading.plugin_id,
                    resident_bytes=usage.resident_bytes,
                    cpu_seconds=_grown(usage.cpu_seconds, then.cpu_seconds if then else None),
                    read_bytes=_grown(usage.read_bytes, then.read_bytes if then else None),
                    write_bytes=_grown(usage.write_bytes, then.write_bytes if then else None),
                    open_files=usage.open_files,
                    restarts=reading.restarts - (before.restarts if before else 0),
                    paused_seconds=reading.paused_seconds
                    - (before.paused_seconds if before else 0.0),
                )
            )
            self._written_workers[reading.plugin_id] = (reading.pid, reading)

    # -- reading it ----------------------------------------------------------------

    async def generate_telemetry_report(self, time_range: TimeRange) -> TelemetryReport:
        """The figures stored for ``time_range`` (this host's current ones written first).

        Each stored interval counts in the range it began in.
        """
        if self.enabled:
            await self.flush()
        start, end = time_range.start.timestamp(), time_range.end.timestamp()
        stored = await asyncio.to_thread(self.store.read, start, end)
        return summarize(stored, time_range, datetime.now(timezone.utc))

    def record_metric(self, plugin_id: str, metric: str, value: float) -> None:
        """Add ``value`` to ``plugin_id``'s figure ``metric`` (what ``context.record_metric``
        does); raises :class:`~acp_plugins.errors.AcpPluginsError` on a bad name or value."""
        self.figures.record(plugin_id, metric, value)

    def prometheus(self) -> bytes:
        """The host's figures now, in the Prometheus text format (see :mod:`.exposition`)."""
        return exposition(self)

    async def get_plugin_health(self, plugin_id: str) -> PluginHealth:
        """How ``plugin_id`` is doing, and why (see :mod:`.health`)."""
        return await self._health(plugin_id, set())

    async def _health(self, plugin_id: str, seen: set[str]) -> PluginHealth:
        record = self.catalog.record(plugin_id)
        seen.add(plugin_id)
        dependencies: dict[str, HealthStatus] = {}
        for dependency in record.manifest.dependencies if record.manifest else {}:
            if dependency in self.catalog.records and dependency not in seen:
                dependencies[dependency] = (await self._health(dependency, seen)).status
        recent = self.window.recent(record, time.monotonic(), self.thresholds.window)
        return judge(
            record,
            recent,
            self.thresholds,
            now=datetime.now(timezone.utc),
            dependencies=dependencies,
            check=await self._check(record),
        )

    async def _check(self, record: PluginRecord) -> str | None:
        handle = record.handle
        if handle is None or record.state is not PluginState.ACTIVE:
            return None
        if not handle.implements("health_check"):
            return None
        try:
            answer = await self.guard.call(record, "health_check", {})
        except PluginCallError as error:
            return f"its health_check failed: {error.message}"
        return "its health_check answered False" if answer is False else None


def _grown(now: _N | None, then: _N | None) -> _N | None:
    """How much a process's own count grew since ``then`` (all of it: a new process)."""
    if now is None:
        return None
    return now - then if then is not None else now
