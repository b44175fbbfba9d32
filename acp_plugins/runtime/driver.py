"""The lifecycle driver: moves plugins through their states, one legal transition at a time.

Load (import or start a worker), initialize (configuration and context),
activate (collect what the plugin offers and put it in the routing tables),
suspend, resume and unload, with dependencies before dependents on the way up
and dependents before dependencies on the way down. Every failure is recorded
on the plugin's record; nothing a plugin does escapes as an exception.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from acp_plugins.audit import AuditLog
from acp_plugins.config.settings import plugin_data_dir
from acp_plugins.errors import AcpPluginsError, InterfaceMismatch
from acp_plugins.models import CommandDefinition, DataSourceDefinition
from acp_plugins.runtime.calls import CallGuard, call_lifecycle_hook
from acp_plugins.runtime.catalog import LOADED_STATES, PluginCatalog
from acp_plugins.runtime.commands import CommandRegistry
from acp_plugins.runtime.configuration import ConfigurationService
from acp_plugins.runtime.context import HostServices, PluginContext
from acp_plugins.runtime.data_sources import DataSourceRegistry
from acp_plugins.runtime.event_sink import EventSink
from acp_plugins.runtime.handle import HandleFactory, InProcessHandle, as_isolated
from acp_plugins.runtime.importing import check_interfaces
from acp_plugins.runtime.lifecycle import PluginState, check_transition
from acp_plugins.runtime.on_demand import (
    OnDemand,
    check_contributions,
    declares_contributions,
    still_discovered,
)
from acp_plugins.runtime.record import PluginRecord
from acp_plugins.runtime.returns import expect_commands, expect_list, expect_message_types
from acp_plugins.runtime.routing import MessageRouter

__all__ = ["LifecycleDriver"]

logger = logging.getLogger(__name__)


class LifecycleDriver:
    """Drives each plugin of the catalog through load, initialize, activate and back."""

    def __init__(
        self,
        *,
        catalog: PluginCatalog,
        guard: CallGuard,
        handles: HandleFactory,
        configuration: ConfigurationService,
        router: MessageRouter,
        commands: CommandRegistry,
        sources: DataSourceRegistry,
        services: HostServices,
        audit: AuditLog,
        data_root: Path,
        events: EventSink | None = None,
    ) -> None:
        self.catalog = catalog
        self.guard = guard
        self.handles = handles
        self.configuration = configuration
        self.router = router
        self.commands = commands
        self.sources = sources
        self.services = services
        self.audit = audit
        self.data_root = data_root
        #: Told of each plugin activated, suspended or unloaded: the event bus.
        self.events = events

    async def start(self, on_demand: OnDemand | None = None) -> None:
        """Discover (if not done yet) and bring every plugin that can be to Active.

        Plugins are started one by one in dependency order, so a plugin's
        dependencies are active before it initializes. With ``on_demand``, a plugin
        whose manifest declares its contributions is left for its first use, unless
        a plugin started now depends on it.
        """
        catalog = self.catalog
        if not catalog.discovered:
            catalog.discover()
        discovered = still_discovered(catalog, catalog.order)
        eager = [
            pid
            for pid in discovered
            if on_demand is None or not declares_contributions(catalog.records[pid])
        ]
        now = still_discovered(catalog, eager)
        if on_demand is not None:
            on_demand.wait(pid for pid in discovered if pid not in now)
        await self.start_plugins(now)

    async def start_plugins(self, plugin_ids: Sequence[str]) -> None:
        """Bring these discovered plugins to Active, in the order given (dependencies first)."""
        pending = [self.catalog.records[pid] for pid in plugin_ids]
        await self.handles.prepare([r for r in pending if r.manifest is not None])
        try:
            for record in pending:
                if record.state is not PluginState.DISCOVERED:
                    continue
                pid = record.plugin_id
                if not (
                    await self.load(pid) and await self.initialize(pid) and await self.activate(pid)
                ):
                    self.published_failure(record)
        finally:
            self.handles.discard_prepared()  # their plugins did not get to load

    async def stop(self) -> None:
        """Unload every plugin that is loaded, dependents first."""
        for plugin_id in reversed(self.catalog.order):
            if self.catalog.records[plugin_id].state in LOADED_STATES:
                await self.unload(plugin_id)

    async def load(self, plugin_id: str) -> bool:
        """Import and register the plugin (Discovered -> Loaded)."""
        record = self.catalog.record(plugin_id)
        check_transition(plugin_id, record.state, PluginState.LOADED)
        if record.manifest is None or plugin_id not in self.catalog.position:
            return False  # refused before import; the reason is already recorded
        return await self.load_record(record)

    async def load_record(self, record: PluginRecord) -> bool:
        """Load one instance of a plugin (the catalog's, or a new version beside it)."""
        plugin_id = record.plugin_id
        check_transition(plugin_id, record.state, PluginState.LOADED)
        assert record.manifest is not None
        blocker = self.catalog.inactive_dependency(record, PluginState.LOADED)
        if blocker:
            record.fail("load", blocker)
            return False
        try:
            handle = await self.handles.open(record)
        except AcpPluginsError as error:
            record.fail("load", error.message)
            self.audit.record(plugin_id, "load", "failed", detail=error.message)
            return False
        isolated = as_isolated(handle)
        if isolated is not None:
            isolated.update_sources(self.sources.definitions())
        hint = handle.plugin_object if isinstance(handle, InProcessHandle) else None
        try:
            check_interfaces(record.manifest, handle.hooks, hint)
        except InterfaceMismatch as error:
            handle.close()
            record.fail("load", error.message)
            return False
        record.handle = handle
        mode = "isolated" if isolated is not None else "in-process"
        self.audit.record(plugin_id, "load", "ok", detail=mode)
        for hook, kwargs in (("on_discover", {"manifest": record.manifest}), ("on_load", {})):
            if not await self._call(record, hook, kwargs, "load"):
                handle.close()
                record.handle = None
                return False
        return self._moved(record, PluginState.LOADED)

    async def initialize(self, plugin_id: str) -> bool:
        """Apply configuration and hand the plugin its context (Loaded -> Initialized)."""
        return await self.initialize_record(self.catalog.record(plugin_id))

    async def initialize_record(self, record: PluginRecord) -> bool:
        """Configure one loaded instance and hand it its context."""
        plugin_id = record.plugin_id
        check_transition(plugin_id, record.state, PluginState.INITIALIZED)
        assert record.manifest is not None
        blocker = self.catalog.inactive_dependency(record, PluginState.ACTIVE)
        if blocker:
            record.fail("initialize", blocker)
            return False
        resolved = await self.configuration.resolve(record)
        if resolved is None:
            return False
        config = self.configuration.plugin_config(record, resolved)
        if not await self._call(record, "validate_config", {"config": config}, "configure"):
            return False
        context = PluginContext(
            manifest=record.manifest,
            permissions=record.granted,
            config=MappingProxyType(resolved.values),  # a plugin reads, never writes, it
            settings=resolved.settings,
            data_dir=plugin_data_dir(self.data_root, plugin_id),
            host=self.services,
        )
        record.resolved_config = resolved
        record.config = config
        record.context = context
        for hook, kwargs in (("initialize", {"context": context}), ("on_initialize", {})):
            if not await self._call(record, hook, kwargs, "initialize"):
                return False
        return self._moved(record, PluginState.INITIALIZED)

    async def activate(self, plugin_id: str) -> bool:
        """Make the plugin operational (Initialized or Suspended -> Active)."""
        record = self.catalog.record(plugin_id)
        resuming = record.state is PluginState.SUSPENDED
        if not await self.activate_record(record):
            if resuming:
                self.audit.record(plugin_id, "resume", "failed", detail=record.reason or "")
            return False
        self._register_capabilities(record)
        self.published_activation(record)
        if resuming:
            self.audit.record(plugin_id, "resume", "ok")
        return True

    async def activate_record(self, record: PluginRecord) -> bool:
        """Make one instance operational; routing to it is the caller's to add."""
        check_transition(record.plugin_id, record.state, PluginState.ACTIVE)
        isolated = as_isolated(record.handle)
        if isolated is not None and not isolated.alive:
            try:
                await isolated.revive()
            except AcpPluginsError as error:
                record.fail("activate", error.message)
                return False
        for hook in ("activate", "on_activate"):
            if not await self._call(record, hook, {}, "activate"):
                return False
        try:
            await self._collect_capabilities(record)
        except AcpPluginsError as error:
            record.fail("activate", error.message)
            # undo the half-done activation; the plugin stays where it was
            reason = record.reason
            await self._call(record, "deactivate", {}, "activate")
            record.reason = reason
            return False
        return self._moved(record, PluginState.ACTIVE)

    def published_failure(self, record: PluginRecord) -> None:
        """Tell the bus that ``record`` failed to start, at which stage and why."""
        if self.events is not None and self.events.listening and record.failures:
            failure = record.failures[-1]
            self.events.publish(
                "plugin:failed",
                {"plugin_id": record.plugin_id, "stage": failure.stage, "reason": failure.message},
            )

    def published_activation(self, record: PluginRecord) -> None:
        """Tell the bus that ``record`` is active, with what it offers."""
        if self.events is not None and self.events.listening:
            capabilities = {
                "message_types": sorted(record.message_types),
                "commands": sorted(record.commands),
                "data_sources": [source.source_id for source in record.data_sources],
            }
            self.events.publish(
                "plugin:activated", {"plugin_id": record.plugin_id, "capabilities": capabilities}
            )

    async def suspend(self, plugin_id: str) -> bool:
        """Temporarily disable an active plugin (Active -> Suspended).

        Active plugins that depend on it are suspended first. The host stops
        routing to it at once; a failing ``deactivate`` or ``on_suspend`` is
        recorded but does not keep the plugin serving.
        """
        record = self.catalog.record(plugin_id)
        check_transition(plugin_id, record.state, PluginState.SUSPENDED)
        records = self.catalog.records
        for dependent in self.catalog.dependents(plugin_id, (PluginState.ACTIVE,)):
            if records[dependent].state is not PluginState.ACTIVE:
                continue  # already suspended along with one of its own dependents
            await self.suspend(dependent)
            records[dependent].reason = f"suspended with its dependency '{plugin_id}'"
        self._moved(record, PluginState.SUSPENDED)
        self.rebuild_registries()
        if self.events is not None and self.events.listening:
            self.events.publish(
                "plugin:deactivated", {"plugin_id": plugin_id, "reason": "suspended"}
            )
        ok = await self._call(record, "deactivate", {}, "suspend")
        ok = await self._call(record, "on_suspend", {}, "suspend") and ok
        # suspended either way; "failed": a hook of its own failed on the way out
        self.audit.record(
            plugin_id, "suspend", "ok" if ok else "failed", detail=record.reason or ""
        )
        return ok

    async def unload(self, plugin_id: str) -> bool:
        """Shut the plugin down and forget its code (-> Unloaded).

        Loaded plugins that depend on it are unloaded first. Failing
        ``deactivate`` or ``on_unload`` hooks are recorded; the plugin is
        unloaded all the same.
        """
        record = self.catalog.record(plugin_id)
        check_transition(plugin_id, record.state, PluginState.UNLOADED)
        records = self.catalog.records
        for dependent in self.catalog.dependents(plugin_id, LOADED_STATES):
            if records[dependent].state not in LOADED_STATES:
                continue  # already unloaded along with one of its own dependents
            await self.unload(dependent)
            records[dependent].reason = f"unloaded with its dependency '{plugin_id}'"
        was_active = record.state is PluginState.ACTIVE
        self._moved(record, PluginState.UNLOADED)
        self.rebuild_registries()
        ok = True
        if was_active:
            ok = await self._call(record, "deactivate", {}, "unload")
        ok = await self._call(record, "on_unload", {}, "unload") and ok
        if record.handle is not None:
            record.handle.close()
            record.handle = None
        if record.context is not None:
            record.context.close()  # its subscriptions end with it
        record.context = None
        if self.events is not None and self.events.listening:
            self.events.publish("plugin:unloaded", {"plugin_id": plugin_id})
        return ok

    async def _call(
        self, record: PluginRecord, hook: str, kwargs: Mapping[str, Any], stage: str
    ) -> bool:
        return await call_lifecycle_hook(self.guard, record, hook, kwargs, stage)

    def _moved(self, record: PluginRecord, state: PluginState) -> bool:
        logger.info("%s: %s -> %s", record.plugin_id, record.state.value, state.value)
        record.state = state
        record.reason = None
        return True

    # -- what active plugins offer ---------------------------------------------

    async def _collect_capabilities(self, record: PluginRecord) -> None:
        """Ask an activating plugin what it offers; the record changes only if all is valid."""
        handle = record.handle
        assert handle is not None
        message_types: frozenset[str] = frozenset()
        commands: dict[str, CommandDefinition] = {}
        sources: list[DataSourceDefinition] = []
        if handle.implements("get_supported_message_types"):
            found = await self.guard.call(record, "get_supported_message_types", {})
            message_types = expect_message_types(record, found)
        if handle.implements("get_commands"):
            commands = expect_commands(record, await self.guard.call(record, "get_commands", {}))
        if handle.implements("get_data_sources"):
            found = await self.guard.call(record, "get_data_sources", {})
            sources = expect_list(record, "get_data_sources", found, DataSourceDefinition)
        check_contributions(record, message_types, set(commands), {s.source_id for s in sources})
        record.message_types, record.commands, record.data_sources = (
            message_types,
            commands,
            sources,
        )

    def _register_capabilities(self, record: PluginRecord) -> None:
        """Add a plugin that has just become active to the routing tables."""
        if record.handle is not None and record.handle.implements("can_handle"):
            self.router.add(record)
        if record.commands:
            self.commands.add(record)
        if record.data_sources:  # the only change isolated plugins hear of: not one per start
            self.sources.add(record)
            self._send_sources()

    def rebuild_registries(self) -> None:
        """Route to the active plugins as they are now (after a suspend, unload or reload)."""
        active = sorted(self.catalog.active(), key=lambda r: r.plugin_id)
        self.router.reset(
            r for r in active if r.handle is not None and r.handle.implements("can_handle")
        )
        self.commands.rebuild(r for r in active if r.commands)
        self.sources.rebuild(r for r in active if r.data_sources)
        self._send_sources()

    def _send_sources(self) -> None:
        """Keep every isolated plugin's copy of the data sources current."""
        definitions = None
        for record in self.catalog.records.values():
            isolated = as_isolated(record.handle)
            if isolated is not None:
                if definitions is None:
                    definitions = self.sources.definitions()
                isolated.update_sources(definitions)
