"""Reload and upgrade by overlap: the new instance comes up beside the old one, then takes over.

``reload(plugin_id)`` reads what is installed now (the same version with changed
code, or a new version), checks it like any plugin at discovery (manifest,
permissions against the policy, core and Python versions, its dependencies, and
that every running dependent's range still accepts it) before any of its code
runs, then brings it up beside the instance that serves: an isolated plugin in a
new worker, a trusted one by importing its modules afresh (see
:mod:`.fresh_code`). The new instance loads, receives the plugin's configuration
(runtime overrides included), initializes, activates and, if it implements
``health_check``, answers it. Only then does routing switch to it, in one step
in which nothing else runs: calls started after the switch reach the new
instance; calls already running on the old one finish there, within the drain
deadline, after which the old instance is deactivated and unloaded.

A new instance that fails any step is discarded and the old one goes on serving
(a rollback): the failure is on the record, in the audit log and on the bus
(``plugin:failed``), and :class:`ReloadFailed` is raised. The record's state
stays ``active`` throughout; ``record.reloading`` is set while the new instance
comes up and ``record.generation`` counts the switches. Dependents keep running
and reach the new instance through the host from the switch on.

``rescan()`` is discovery made incremental: plugins installed since are admitted
and started, plugins removed are unloaded, plugins whose installed version
changed are reloaded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, NoReturn

from acp_plugins.audit import AuditLog
from acp_plugins.errors import AcpPluginsError
from acp_plugins.loading.discovery import Discovery
from acp_plugins.runtime.calls import CallGuard, call_lifecycle_hook
from acp_plugins.runtime.catalog import LOADED_STATES, PluginCatalog
from acp_plugins.runtime.driver import LifecycleDriver
from acp_plugins.runtime.event_sink import EventSink
from acp_plugins.runtime.fresh_code import FreshImport, plugin_packages, restart_needed
from acp_plugins.runtime.handle import InProcessHandle
from acp_plugins.runtime.lifecycle import PluginState
from acp_plugins.runtime.on_demand import OnDemand, declares_contributions, still_discovered
from acp_plugins.runtime.record import PluginRecord
from acp_plugins.runtime.subscriptions import PluginFeeds

__all__ = ["DEFAULT_DRAIN_TIMEOUT", "ReloadFailed", "ReloadResult", "Reloader", "RescanResult"]

logger = logging.getLogger(__name__)

#: Seconds the calls running on a replaced instance may take to finish there.
DEFAULT_DRAIN_TIMEOUT = 10.0


@dataclass
class ReloadResult:
    """What one reload did."""

    plugin_id: str
    #: ``reloaded`` (same version), ``upgraded``, ``started`` (it was not running),
    #: ``refused`` (nothing of it ran), ``rolled-back`` (the new instance failed, the
    #: old one serves), ``requires-restart``.
    outcome: str
    from_version: str | None
    to_version: str | None
    detail: str = ""
    #: ``isolated`` or ``in-process`` (the new instance's), ``None`` when none started.
    mode: str | None = None
    #: Calls running on the old instance at the switch, and those still running at the
    #: drain deadline (abandoned).
    draining: int = 0
    abandoned: int = 0
    #: Dependents suspended because the new version breaks their range (on request).
    suspended: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome in ("reloaded", "upgraded", "started")

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin_id": self.plugin_id,
            "outcome": self.outcome,
            "ok": self.ok,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "mode": self.mode,
            "detail": self.detail,
            "draining": self.draining,
            "abandoned": self.abandoned,
            "suspended": self.suspended,
            "seconds": round(self.seconds, 3),
        }


class ReloadFailed(AcpPluginsError):
    """A reload was refused, rolled back or needs a restart; the old instance still serves."""

    def __init__(self, result: ReloadResult) -> None:
        super().__init__(result.detail, plugin_id=result.plugin_id)
        self.result = result


@dataclass
class RescanResult:
    """What a rescan found and did."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    reloads: list[ReloadResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "reloads": [r.to_dict() for r in self.reloads],
        }


class Reloader:
    """Replaces plugins' running instances with what is installed now, losing no call."""

    def __init__(
        self,
        *,
        catalog: PluginCatalog,
        driver: LifecycleDriver,
        guard: CallGuard,
        audit: AuditLog,
        events: EventSink | None,
        on_demand: OnDemand | None,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        scan: Callable[[], dict[str, Discovery]] | None = None,
        feeds: PluginFeeds | None = None,
    ) -> None:
        self.feeds = feeds
        self.catalog = catalog
        self.driver = driver
        self.guard = guard
        self.audit = audit
        self.events = events
        self.on_demand = on_demand
        self.drain_timeout = drain_timeout
        self._scan = scan or catalog.scan
        self._locks: dict[str, asyncio.Lock] = {}

    async def reload(self, plugin_id: str, *, suspend_dependents: bool = False) -> ReloadResult:
        """Replace ``plugin_id``'s instance with what is installed now (see the module)."""
        lock = self._locks.setdefault(plugin_id, asyncio.Lock())
        async with lock:  # one reload of a plugin at a time; the next sees this one's result
            return await self._reload(plugin_id, self._scan().get(plugin_id), suspend_dependents)

    async def rescan(self, *, upgrade: bool = True) -> RescanResult:
        """Take in what was installed, removed or (with ``upgrade``) upgraded since discovery."""
        found = self._scan()
        records = self.catalog.records
        result = RescanResult(
            added=sorted(pid for pid in found if pid not in records),
            removed=sorted(pid for pid in records if pid not in found),
        )
        for plugin_id in result.removed:
            record = records[plugin_id]
            if record.state in LOADED_STATES:
                await self.driver.unload(plugin_id)
            self.catalog.forget(plugin_id)
            if self.on_demand is not None:
                self.on_demand.forget(plugin_id)
            self.audit.record(plugin_id, "uninstall", "ok", detail="no longer installed")
        waiting_before = {pid for pid, r in records.items() if r.reason is not None}
        for plugin_id in result.added:
            self.catalog.put(self.catalog.admission(found[plugin_id]))
        # the new ones, and those that waited for one of them (a dependency now installed)
        newly = [
            pid
            for pid in self.catalog.order
            if pid in result.added or (pid in waiting_before and records[pid].reason is None)
        ]
        await self._start(newly)
        for plugin_id in result.added:
            record = records[plugin_id]
            status = "waiting" if record.waiting else record.state.value
            self._publish(
                "plugin:installed",
                {"plugin_id": plugin_id, "version": record.version, "status": status},
            )
        if upgrade:
            for plugin_id, item in sorted(found.items()):
                known = records.get(plugin_id)
                if known is None or plugin_id in result.added or not _changed(known, item):
                    continue
                lock = self._locks.setdefault(plugin_id, asyncio.Lock())
                async with lock:
                    try:
                        result.reloads.append(await self._reload(plugin_id, item, False))
                    except ReloadFailed as failed:
                        result.reloads.append(failed.result)
        return result

    # -- one reload -----------------------------------------------------------------

    async def _reload(
        self, plugin_id: str, item: Discovery | None, suspend_dependents: bool
    ) -> ReloadResult:
        started = perf_counter()
        live = self.catalog.record(plugin_id)
        result = ReloadResult(plugin_id, "refused", live.version, None)
        if item is None:
            return self._refuse(
                result, started,
                f"'{plugin_id}' is no longer installed; rescan to unload it "
                "(host.rescan(), acp-plugins reload --rescan)",
            )  # fmt: skip
        candidate = self.catalog.admission(item)
        result.to_version = candidate.version
        if candidate.reason is not None:
            return self._refuse(
                result, started, f"the installed version was refused: {candidate.reason}"
            )
        problems = self.catalog.resolution_with({plugin_id: candidate})
        own = problems.pop(plugin_id, None)
        if own is not None:
            return self._refuse(result, started, f"the installed version cannot load: {own}")
        broken = [
            pid
            for pid in problems
            if self.catalog.records[pid].state in LOADED_STATES and pid in self.catalog.position
        ]
        if broken and not suspend_dependents:
            return self._refuse(
                result, started,
                f"version {candidate.version} would break {len(broken)} running dependent(s): "
                + "; ".join(problems[pid] for pid in sorted(broken))
                + "; upgrade them too, or reload with suspend_dependents "
                "(--suspend-dependents) to suspend them",
            )  # fmt: skip
        if live.state not in LOADED_STATES:  # not running: start what is installed now
            return await self._start_anew(result, candidate, started)
        if live.state is not PluginState.ACTIVE:
            return self._refuse(
                result, started,
                f"'{plugin_id}' is {live.state.value}; only an active plugin is reloaded "
                "beside itself (resume it first)",
            )  # fmt: skip
        return await self._overlap(result, live, candidate, broken, started)

    async def _overlap(
        self,
        result: ReloadResult,
        live: PluginRecord,
        candidate: PluginRecord,
        broken: list[str],
        started: float,
    ) -> ReloadResult:
        plugin_id = live.plugin_id
        fresh: FreshImport | None = None
        old_handle = live.handle
        if isinstance(old_handle, InProcessHandle):
            packages = plugin_packages(candidate.entry_point, candidate.distribution)
            why = restart_needed(packages, candidate.distribution, old_handle.loaded_at)
            if why is not None:
                result.outcome, result.mode = "requires-restart", "in-process"
                return self._failed(result, live, started, f"'{plugin_id}' cannot be reloaded "
                                    f"in the host's process: {why}")  # fmt: skip
            fresh = FreshImport(packages)
            fresh.begin()
        candidate.generation = live.generation + 1
        live.reloading = True
        try:
            up = await self._bring_up(candidate)
        finally:
            live.reloading = False
            if fresh is not None and candidate.handle is None:
                fresh.undo()
        result.mode = "in-process" if fresh is not None else "isolated"  # as the policy says
        if up:
            for dependent in broken:
                if self.catalog.records[dependent].state is PluginState.ACTIVE:
                    await self.driver.suspend(dependent)
                self.catalog.records[
                    dependent
                ].reason = f"suspended: '{plugin_id}' {candidate.version} is outside its range"
                result.suspended.append(dependent)
        if not up or live.state is not PluginState.ACTIVE:
            why = candidate.reason or (
                f"'{plugin_id}' became {live.state.value} while its new version started"
            )
            await self._discard(candidate)
            if fresh is not None and fresh.saved:
                fresh.undo()
            result.outcome = "rolled-back"
            return self._failed(
                result, live, started,
                f"the new instance of '{plugin_id}' failed, the old one ({live.version}) "
                f"goes on serving: {why}",
            )  # fmt: skip
        # the switch: no await from here until routing points at the new instance
        old = live.instance()
        live.adopt(candidate)
        self.driver.rebuild_registries()
        if self.feeds is not None:
            self.feeds.handover(plugin_id, old.context, live.context)
        result.outcome = "reloaded" if result.from_version == result.to_version else "upgraded"
        result.draining = self.guard.running(old.handle)
        self.audit.record(
            plugin_id, "reload", "ok",
            detail=f"{result.from_version} -> {result.to_version} ({result.mode})",
        )  # fmt: skip
        self._publish(
            "plugin:reloaded",
            {
                "plugin_id": plugin_id,
                "from_version": result.from_version,
                "to_version": result.to_version,
                "generation": live.generation,
                "mode": result.mode,
            },
        )
        result.abandoned = await self.guard.drained(old.handle, self.drain_timeout)
        if self.feeds is not None:  # and the events the old one has in hand
            await self.feeds.drained(plugin_id, self.drain_timeout)
        await self._retire(old)
        result.detail = (
            f"'{plugin_id}' {result.from_version} -> {result.to_version}: the new instance "
            f"serves; {result.draining} call(s) finished on the old one"
            + (f", {result.abandoned} abandoned at the drain deadline" if result.abandoned else "")
        )
        result.seconds = perf_counter() - started
        logger.info("%s", result.detail)
        return result

    async def _bring_up(self, candidate: PluginRecord) -> bool:
        driver = self.driver
        if not (
            await driver.load_record(candidate)
            and await driver.initialize_record(candidate)
            and await driver.activate_record(candidate)
        ):
            return False
        return await call_lifecycle_hook(self.guard, candidate, "health_check", {}, "health")

    async def _discard(self, instance: PluginRecord) -> None:
        """Shut down an instance that never served (its failures stay on it)."""
        reason = instance.reason
        if instance.state is PluginState.ACTIVE:
            await call_lifecycle_hook(self.guard, instance, "deactivate", {}, "reload")
        if instance.handle is not None:
            await call_lifecycle_hook(self.guard, instance, "on_unload", {}, "reload")
            instance.handle.close()
            instance.handle = None
        if instance.context is not None:
            instance.context.close()
        instance.reason = reason

    async def _retire(self, old: PluginRecord) -> None:
        """Deactivate and unload the instance that was replaced (its calls have drained)."""
        await call_lifecycle_hook(self.guard, old, "deactivate", {}, "reload")
        await call_lifecycle_hook(self.guard, old, "on_unload", {}, "reload")
        if old.handle is not None:
            old.handle.close()
            old.handle = None
        if old.context is not None:
            old.context.close()

    async def _start_anew(
        self, result: ReloadResult, candidate: PluginRecord, started: float
    ) -> ReloadResult:
        plugin_id = candidate.plugin_id
        self.catalog.put(candidate)
        await self.driver.start_plugins(still_discovered(self.catalog, [plugin_id]))
        result.seconds = perf_counter() - started
        if candidate.state is not PluginState.ACTIVE:
            result.outcome = "rolled-back"
            return self._failed(
                result, candidate, started, candidate.reason or f"'{plugin_id}' did not start"
            )
        result.outcome, result.detail = "started", f"'{plugin_id}' {candidate.version} started"
        result.mode = "isolated" if candidate.handle and candidate.handle.isolated else "in-process"
        self.audit.record(plugin_id, "reload", "ok", detail=result.detail)
        return result

    async def _start(self, plugin_ids: list[str]) -> None:
        records = self.catalog.records
        eager = [
            pid
            for pid in plugin_ids
            if self.on_demand is None or not declares_contributions(records[pid])
        ]
        if self.on_demand is not None:
            self.on_demand.wait(pid for pid in plugin_ids if pid not in eager)
        await self.driver.start_plugins(still_discovered(self.catalog, eager))

    # -- outcomes -------------------------------------------------------------------

    def _refuse(self, result: ReloadResult, started: float, detail: str) -> NoReturn:
        record = self.catalog.records[result.plugin_id]
        result.outcome = "refused"
        self._failed(result, record, started, detail)

    def _failed(
        self, result: ReloadResult, record: PluginRecord, started: float, detail: str
    ) -> NoReturn:
        result.detail, result.seconds = detail, perf_counter() - started
        record.fail("reload", detail)
        if record.state is PluginState.ACTIVE:
            record.reason = None  # it serves: the failure is history, not its state
        self.audit.record(result.plugin_id, "reload", result.outcome, detail=detail)
        self._publish(
            "plugin:failed",
            {"plugin_id": result.plugin_id, "stage": "reload", "reason": detail},
        )
        logger.warning("%s", detail)
        raise ReloadFailed(result)

    def _publish(self, topic: str, data: dict[str, Any]) -> None:
        if self.events is not None and self.events.listening:
            self.events.publish(topic, data)


def _changed(record: PluginRecord, item: Discovery) -> bool:
    """Whether what is installed differs from the instance the record describes."""
    installed = item.manifest.version if item.manifest else item.distribution_version
    return (
        item.distribution_version != record.distribution_version
        or installed != record.version
        or item.entry_point != record.entry_point
    )
