"""A plugin's health: ``healthy``, ``degraded``, ``failing``, ``suspended`` or ``stopped``.

``await host.health(plugin_id)`` (``acp-plugins health``, ``GET
/api/v1/plugins/{id}/health``) judges, in this order:

- the lifecycle: a suspended plugin is ``suspended`` (the reason: by hand, or its
  worker's circuit opened after repeated crashes); one that is not active is
  ``failing`` if a step failed (its manifest, a permission, a dependency, a hook:
  the reason says which) and ``stopped`` if not (unloaded, or never started); a
  plugin waiting for its first use is judged as an active one;
- its worker: an isolated plugin whose worker is not running is ``failing``;
- its calls over the last ``error_window`` seconds, hook by hook: an error rate
  at or over ``failing_error_rate`` is ``failing``, at or over
  ``degraded_error_rate`` ``degraded``, as is any timeout (with fewer than
  :data:`MIN_CALLS` calls of a hook in the window, errors are ``degraded`` and no
  more);
- its dependencies: one that is not healthy makes it ``degraded``;
- its own ``health_check`` hook, if it has one: ``False``, an error or a timeout is
  ``failing``.

The worst verdict wins, and every reason found is listed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from acp_plugins.runtime.lifecycle import PluginState
from acp_plugins.runtime.record import PluginRecord

__all__ = ["MIN_CALLS", "CallWindow", "HealthStatus", "HealthThresholds", "PluginHealth", "judge"]

HealthStatus = Literal["healthy", "degraded", "failing", "suspended", "stopped"]

#: Calls in the window below which the error rate says too little to call a plugin failing.
MIN_CALLS = 5

_SEVERITY = {"healthy": 0, "degraded": 1, "failing": 2}
_FIELDS = ("calls", "errors", "timeouts")


class PluginHealth(BaseModel):
    """How one plugin is doing, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plugin_id: str
    status: HealthStatus
    reasons: list[str] = Field(description="Everything that made the status less than healthy.")
    checked_at: datetime
    window_seconds: float = Field(description="How far back the calls counted go.")
    calls: int = Field(description="Calls into the plugin in the window.")
    errors: int
    timeouts: int
    error_rate: float


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """Where degraded and failing begin (the host's telemetry settings)."""

    window: float = 300.0
    degraded_error_rate: float = 0.05
    failing_error_rate: float = 0.5


@dataclass(frozen=True, slots=True)
class Counts:
    """Calls, errors and timeouts of one hook."""

    calls: int = 0
    errors: int = 0
    timeouts: int = 0

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.calls - other.calls, self.errors - other.errors, self.timeouts - other.timeouts
        )


#: A plugin's counts, by hook.
HookCounts = dict[str, Counts]


def counts_of(record: PluginRecord) -> HookCounts:
    """The plugin's counts now, by hook."""
    return {
        hook: Counts(stats.calls, stats.errors, stats.timeouts)
        for hook, stats in record.metrics.items()
    }


class CallWindow:
    """Totals of every plugin's calls taken now and then, to count those of the last W s."""

    __slots__ = ("_marks",)

    def __init__(self) -> None:
        #: (monotonic time, counts by plugin id), oldest first.
        self._marks: deque[tuple[float, dict[str, HookCounts]]] = deque()

    def mark(self, now: float, records: Mapping[str, PluginRecord], window: float) -> None:
        """Take the totals at ``now``; forget marks no window of ``window`` s needs."""
        self._marks.append((now, {pid: counts_of(r) for pid, r in records.items()}))
        while len(self._marks) > 1 and self._marks[1][0] <= now - window:
            self._marks.popleft()

    def recent(self, record: PluginRecord, now: float, window: float) -> HookCounts:
        """The plugin's counts by hook since the latest mark at least ``window`` s old
        (with none that old: since the host started)."""
        baseline: HookCounts = {}
        for at, totals in self._marks:
            if at > now - window:
                break
            baseline = totals.get(record.plugin_id, {})
        return {
            hook: counts - baseline.get(hook, Counts())
            for hook, counts in counts_of(record).items()
        }


def _worst(found: list[tuple[str, str]]) -> str:
    return max((status for status, _ in found), key=_SEVERITY.__getitem__, default="healthy")


def judge(
    record: PluginRecord,
    recent: HookCounts,
    thresholds: HealthThresholds,
    *,
    now: datetime,
    dependencies: Mapping[str, HealthStatus],
    check: str | None,
) -> PluginHealth:
    """The health of ``record`` from its state, ``recent`` calls, its dependencies' status
    and what its ``health_check`` said (``check``: why it failed, ``None``: fine or none)."""
    found: list[tuple[str, str]] = []
    status: HealthStatus
    if record.state is PluginState.SUSPENDED:
        status, found = "suspended", [("suspended", record.reason or "suspended")]
    elif record.state is not PluginState.ACTIVE and not record.waiting and record.reason:
        status, found = "failing", [("failing", record.reason)]
    elif record.state is not PluginState.ACTIVE and not record.waiting:
        status, found = "stopped", [("stopped", f"not active (state {record.state.value})")]
    else:
        found = _active_reasons(record, recent, thresholds, dependencies, check)
        status = _worst(found)  # type: ignore[assignment]
    total = Counts(*(sum(getattr(c, f) for c in recent.values()) for f in _FIELDS))
    rate = total.errors / total.calls if total.calls else 0.0
    return PluginHealth(
        plugin_id=record.plugin_id,
        status=status,
        reasons=[reason for _, reason in found],
        checked_at=now,
        window_seconds=thresholds.window,
        calls=total.calls,
        errors=total.errors,
        timeouts=total.timeouts,
        error_rate=round(rate, 6),
    )


def _active_reasons(
    record: PluginRecord,
    recent: HookCounts,
    thresholds: HealthThresholds,
    dependencies: Mapping[str, HealthStatus],
    check: str | None,
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    isolation = record.isolation() or {}
    if isolation.get("mode") == "isolated" and not isolation.get("alive"):
        last = isolation.get("last_failure")
        found.append(("failing", "its worker is not running" + (f" ({last})" if last else "")))
    window = f"{thresholds.window:g} s"
    for hook, counts in sorted(recent.items()):
        if counts.errors:
            rate = counts.errors / counts.calls if counts.calls else 1.0
            said = (
                f"{counts.errors} of {counts.calls} {hook} calls failed in the last {window} "
                f"({rate:.0%})"
            )
            if counts.calls >= MIN_CALLS and rate >= thresholds.failing_error_rate:
                found.append(("failing", said))
            elif rate >= thresholds.degraded_error_rate or counts.calls < MIN_CALLS:
                found.append(("degraded", said))
        if counts.timeouts:
            found.append(
                ("degraded", f"{counts.timeouts} {hook} calls timed out in the last {window}")
            )
    for dependency, status in sorted(dependencies.items()):
        if status != "healthy":
            found.append(("degraded", f"depends on '{dependency}', which is {status}"))
    if check is not None:
        found.append(("failing", check))
    return found
