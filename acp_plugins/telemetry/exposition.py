"""The host's figures in the Prometheus text format (``prometheus-client``).

Read when scraped, from the same records the CLI shows: nothing is added to the
calls themselves. Base units (seconds, bytes), ``_total`` counters, and labels
bounded by what is installed: plugin ids, hook names, the message types, commands
and sources plugins declare (see :mod:`acp_plugins.runtime.usage`), and at most 100
metric names per plugin.

======================================================  ==========================================
``acp_plugin_info{plugin,version,state,isolation}``      1 per installed plugin
``acp_plugin_up{plugin}``                                1 if active, else 0
``acp_plugin_hook_calls_total{plugin,hook,outcome}``     outcome ``ok``, ``error``, ``timeout``
``acp_plugin_hook_duration_seconds{plugin,hook}``        histogram (with telemetry on)
``acp_worker_resident_bytes{plugin}``                    an isolated plugin's worker's memory
``acp_worker_cpu_seconds_total{plugin}``                 its CPU time (since the process started)
``acp_worker_read_bytes_total{plugin}``                  bytes it read (``/proc/PID/io`` rchar)
``acp_worker_write_bytes_total{plugin}``                 bytes it wrote (wchar)
``acp_worker_open_files{plugin}``                        its open file descriptors
``acp_worker_restarts_total{plugin}``                    restarts of its worker
``acp_worker_paused_seconds_total{plugin}``              time paused by its CPU share
``acp_messages_total{type}``                             messages by declared type, else ``(other)``
``acp_commands_total{command}``                          commands run, ``plugin:command``
``acp_queries_total{source}``                            data queries, ``plugin:source``
``acp_plugin_metric{plugin,metric}``                     last value of ``context.record_metric``
``acp_plugin_metric_observations_total{plugin,metric}``  values recorded
======================================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from acp_plugins.runtime.latency import LATENCY_BOUNDS
from acp_plugins.runtime.lifecycle import PluginState
from acp_plugins.telemetry.resources import worker_readings

if TYPE_CHECKING:
    from acp_plugins.telemetry.service import PluginTelemetry

__all__ = ["CONTENT_TYPE", "TelemetryCollector", "exposition"]

#: The media type of the text format this writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_USAGE = (
    ("messages", "acp_messages", "type", "Messages sent through the host, by type."),
    ("commands", "acp_commands", "command", "Commands run, by plugin:command."),
    ("queries", "acp_queries", "source", "Data queries, by plugin:source."),
)
_WORKER_GAUGES = (
    ("resident_bytes", "acp_worker_resident_bytes", "Resident memory of the plugin's worker."),
    ("open_files", "acp_worker_open_files", "Open file descriptors of the plugin's worker."),
)
_WORKER_COUNTERS = (
    ("cpu_seconds", "acp_worker_cpu_seconds", "CPU time of the worker process."),
    ("read_bytes", "acp_worker_read_bytes", "Bytes the worker read through system calls."),
    ("write_bytes", "acp_worker_write_bytes", "Bytes the worker wrote through system calls."),
)


class TelemetryCollector(Collector):
    """Yields the host's figures each time the registry it is in is collected."""

    def __init__(self, telemetry: PluginTelemetry) -> None:
        self.telemetry = telemetry

    def collect(self) -> Iterator[Metric]:
        yield from self._plugins()
        yield from self._hooks()
        yield from self._workers()
        yield from self._usage()
        yield from self._figures()

    def _plugins(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "acp_plugin_info", "An installed plugin.",
            labels=["plugin", "version", "state", "isolation"],
        )  # fmt: skip
        up = GaugeMetricFamily("acp_plugin_up", "1 if the plugin is active.", labels=["plugin"])
        for plugin_id, record in sorted(self.telemetry.catalog.records.items()):
            mode = (record.isolation() or {}).get("mode", "none")
            info.add_metric([plugin_id, record.version, record.state.value, str(mode)], 1)
            up.add_metric([plugin_id], 1 if record.state is PluginState.ACTIVE else 0)
        yield info
        yield up

    def _hooks(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "acp_plugin_hook_calls", "Calls into a plugin's hook, by outcome.",
            labels=["plugin", "hook", "outcome"],
        )  # fmt: skip
        duration = HistogramMetricFamily(
            "acp_plugin_hook_duration_seconds", "How long calls into a plugin's hook took.",
            labels=["plugin", "hook"], unit="",
        )  # fmt: skip
        for plugin_id, record in sorted(self.telemetry.catalog.records.items()):
            for hook, stats in sorted(record.metrics.items()):
                failed = stats.errors - stats.timeouts
                calls.add_metric([plugin_id, hook, "ok"], stats.calls - stats.errors)
                calls.add_metric([plugin_id, hook, "error"], failed)
                calls.add_metric([plugin_id, hook, "timeout"], stats.timeouts)
                if stats.buckets is None:
                    continue
                running, cumulative = 0, []
                for bound, count in zip(
                    (*LATENCY_BOUNDS, float("inf")), stats.buckets, strict=True
                ):
                    running += count
                    cumulative.append((_bound(bound), running))
                duration.add_metric([plugin_id, hook], cumulative, stats.total_seconds)
        yield calls
        yield duration

    def _workers(self) -> Iterator[Metric]:
        readings = worker_readings(self.telemetry.catalog.records)
        kinds: list[tuple[type[GaugeMetricFamily | CounterMetricFamily], tuple[str, str, str]]]
        kinds = [(GaugeMetricFamily, spec) for spec in _WORKER_GAUGES]
        kinds += [(CounterMetricFamily, spec) for spec in _WORKER_COUNTERS]
        for family, (field, name, text) in kinds:
            metric = family(name, text, labels=["plugin"])
            for reading in readings:
                value = getattr(reading.usage, field)
                if value is not None:
                    metric.add_metric([reading.plugin_id], value)
            yield metric
        restarts = CounterMetricFamily(
            "acp_worker_restarts", "Restarts of the plugin's worker.", labels=["plugin"]
        )
        paused = CounterMetricFamily(
            "acp_worker_paused_seconds", "Time the worker was paused for its CPU share.",
            labels=["plugin"],
        )  # fmt: skip
        for reading in readings:
            restarts.add_metric([reading.plugin_id], reading.restarts)
            paused.add_metric([reading.plugin_id], reading.paused_seconds)
        yield restarts
        yield paused

    def _usage(self) -> Iterator[Metric]:
        usage = self.telemetry.usage
        for kind, name, label, text in _USAGE:
            counter = CounterMetricFamily(name, text, labels=[label])
            if usage is not None:
                for value, count in sorted(usage.counts[kind].items()):
                    counter.add_metric([value], count)
            yield counter

    def _figures(self) -> Iterator[Metric]:
        last = GaugeMetricFamily(
            "acp_plugin_metric", "The last value a plugin recorded under a metric name.",
            labels=["plugin", "metric"],
        )  # fmt: skip
        seen = CounterMetricFamily(
            "acp_plugin_metric_observations", "Values a plugin recorded under a metric name.",
            labels=["plugin", "metric"],
        )  # fmt: skip
        for plugin_id, names in sorted(self.telemetry.figures.figures.items()):
            for metric, figure in sorted(names.items()):
                last.add_metric([plugin_id, metric], figure.last)
                seen.add_metric([plugin_id, metric], figure.count)
        yield last
        yield seen


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def exposition(telemetry: PluginTelemetry) -> bytes:
    """The host's figures now, in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TelemetryCollector(telemetry))
    return generate_latest(registry)
