"""The one record the host keeps per plugin: the single place its state lives.

The CLI, the tests and (later) the management server all read these records.
Only the host changes them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acp_plugins.loading.permissions import Permission
from acp_plugins.runtime.latency import bucket_of, empty_buckets, quantile
from acp_plugins.runtime.lifecycle import PluginState

if TYPE_CHECKING:
    from acp_plugins.config.layers import PluginConfig, ResolvedConfig
    from acp_plugins.loading.manifest import Manifest
    from acp_plugins.models import CommandDefinition, DataSourceDefinition
    from acp_plugins.runtime.context import PluginContext
    from acp_plugins.runtime.handle import PluginHandle

__all__ = ["CallStats", "PluginFailure", "PluginRecord"]

#: How many recent call errors a record keeps.
CALL_ERROR_HISTORY = 50


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """Something that went wrong with a plugin: at which stage, what, and when."""

    stage: str
    message: str
    at: datetime = field(default_factory=_now)

    def to_dict(self) -> dict[str, str]:
        return {"stage": self.stage, "message": self.message, "at": self.at.isoformat()}


@dataclass(slots=True)
class CallStats:
    """Counts and latency of the calls to one hook of one plugin."""

    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    total_seconds: float = 0.0
    max_seconds: float = 0.0
    #: Calls per latency bucket (:mod:`.latency`), every outcome counted; ``None``
    #: when the host's telemetry is off.
    buckets: list[int] | None = None

    def add(self, seconds: float, *, error: bool = False, timeout: bool = False) -> None:
        self.calls += 1
        self.errors += error
        self.timeouts += timeout
        self.total_seconds += seconds
        if seconds > self.max_seconds:
            self.max_seconds = seconds
        if self.buckets is not None:
            self.buckets[bucket_of(seconds)] += 1

    def merge(self, other: CallStats) -> None:
        """Add ``other``'s calls to these (a reloaded instance's to the plugin's)."""
        self.calls += other.calls
        self.errors += other.errors
        self.timeouts += other.timeouts
        self.total_seconds += other.total_seconds
        self.max_seconds = max(self.max_seconds, other.max_seconds)
        if self.buckets is not None and other.buckets is not None:
            self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]

    @property
    def mean_seconds(self) -> float:
        return self.total_seconds / self.calls if self.calls else 0.0

    def quantile(self, fraction: float) -> float | None:
        """The estimated ``fraction`` quantile of the latency, in seconds (``None``: off)."""
        if self.buckets is None:
            return None
        return quantile(self.buckets, fraction, self.max_seconds)

    def to_dict(self) -> dict[str, float | int]:
        shown: dict[str, float | int] = {
            "calls": self.calls,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "mean_ms": round(self.mean_seconds * 1000, 3),
            "max_ms": round(self.max_seconds * 1000, 3),
        }
        if self.buckets is not None:
            for name, fraction in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
                shown[name] = round(quantile(self.buckets, fraction, self.max_seconds) * 1000, 3)
        return shown


@dataclass(slots=True, eq=False)
class PluginRecord:
    """Everything the host knows about one plugin."""

    plugin_id: str
    entry_point: str
    distribution: str
    distribution_version: str
    manifest_path: Path | None
    manifest: Manifest | None
    state: PluginState = PluginState.DISCOVERED
    granted: frozenset[Permission] = frozenset()
    config: PluginConfig | None = None
    #: The configuration in force and where each value came from (once initialized).
    resolved_config: ResolvedConfig | None = None
    #: Why the plugin is not where it was asked to go (``None`` once it gets there).
    reason: str | None = None
    failures: list[PluginFailure] = field(default_factory=list)
    call_errors: deque[PluginFailure] = field(
        default_factory=lambda: deque(maxlen=CALL_ERROR_HISTORY)
    )
    metrics: dict[str, CallStats] = field(default_factory=dict)
    handle: PluginHandle | None = None
    #: What the plugin reaches the host through (from initialize until unload).
    context: PluginContext | None = None
    message_types: frozenset[str] = frozenset()
    commands: dict[str, CommandDefinition] = field(default_factory=dict)
    data_sources: list[DataSourceDefinition] = field(default_factory=list)
    #: Declared its contributions and waits for its first use (not started yet).
    waiting: bool = False
    #: How many times the plugin was reloaded (0: the instance started with the host).
    generation: int = 0
    #: A new instance is being brought up beside the one serving (see :mod:`.reload`).
    reloading: bool = False
    #: Events of its subscriptions that arrived while it was suspended (not delivered).
    missed_events: int = 0
    #: Calls are counted into latency histograms (the host's telemetry is on).
    histograms: bool = True

    #: What a reloaded instance brings with it (the rest stays: history, metrics, state).
    INSTANCE_FIELDS = (
        "entry_point", "distribution", "distribution_version", "manifest_path", "manifest",
        "granted", "config", "resolved_config", "handle", "context", "message_types",
        "commands", "data_sources", "generation",
    )  # fmt: skip

    def instance(self) -> PluginRecord:
        """A record of this plugin's serving instance alone, to call it after a switch."""
        copy = PluginRecord(
            plugin_id=self.plugin_id,
            entry_point=self.entry_point,
            distribution=self.distribution,
            distribution_version=self.distribution_version,
            manifest_path=self.manifest_path,
            manifest=self.manifest,
            state=self.state,
        )
        for name in self.INSTANCE_FIELDS:
            setattr(copy, name, getattr(self, name))
        copy.failures, copy.call_errors, copy.metrics = (
            self.failures,
            self.call_errors,
            self.metrics,
        )  # what the old instance still does is the plugin's history
        return copy

    def adopt(self, instance: PluginRecord) -> None:
        """Serve from ``instance`` (a new version, brought up beside this one) from now on."""
        for name in self.INSTANCE_FIELDS:
            setattr(self, name, getattr(instance, name))
        for hook, stats in instance.metrics.items():
            self.stats(hook).merge(stats)
        self.call_errors.extend(instance.call_errors)
        self.reason = None

    @property
    def version(self) -> str:
        """The plugin's version (the manifest's, else the distribution's)."""
        return self.manifest.version if self.manifest else self.distribution_version

    @property
    def interfaces(self) -> list[str]:
        return [i.value for i in self.manifest.interfaces] if self.manifest else []

    def fail(self, stage: str, message: str) -> None:
        """Record that ``stage`` failed; the plugin keeps its current state."""
        self.reason = message
        self.failures.append(PluginFailure(stage, message))

    def stats(self, hook: str) -> CallStats:
        stats = self.metrics.get(hook)
        if stats is None:
            stats = self.metrics[hook] = CallStats(
                buckets=empty_buckets() if self.histograms else None
            )
        return stats

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of the record (what ``--json`` listings print)."""
        manifest = self.manifest
        return {
            "plugin_id": self.plugin_id,
            "name": manifest.name if manifest else None,
            "version": self.version,
            "state": self.state.value,
            "waiting": self.waiting,
            "generation": self.generation,
            "reloading": self.reloading,
            "missed_events": self.missed_events,
            "reason": self.reason,
            "distribution": self.distribution,
            "entry_point": self.entry_point,
            "manifest_path": str(self.manifest_path) if self.manifest_path else None,
            "description": manifest.description if manifest else None,
            "interfaces": self.interfaces,
            "permissions": [p.value for p in manifest.permissions] if manifest else [],
            "granted": sorted(p.value for p in self.granted),
            "dependencies": dict(manifest.dependencies) if manifest else {},
            "tags": list(manifest.tags) if manifest else [],
            "message_types": sorted(self.message_types),
            "commands": sorted(self.commands),
            "data_sources": [source.source_id for source in self.data_sources],
            "config": self.resolved_config.masked() if self.resolved_config else None,
            "failures": [failure.to_dict() for failure in self.failures],
            "call_errors": [failure.to_dict() for failure in self.call_errors],
            "metrics": {hook: stats.to_dict() for hook, stats in sorted(self.metrics.items())},
            "isolation": self.isolation(),
        }

    def isolation(self) -> dict[str, Any] | None:
        """How the plugin runs: in-process, or in a worker (its pid, limits, restarts)."""
        if self.handle is None:
            return None
        describe = getattr(self.handle, "describe", None)
        return describe() if callable(describe) else {"mode": "in-process"}
