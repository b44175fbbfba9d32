"""The plugin host: discovers, validates, resolves, loads and calls plugins.

``PluginHost`` owns one :class:`~acp_plugins.runtime.record.PluginRecord` per plugin and
drives each through the lifecycle. Nothing a plugin does escapes as an
exception: failures during start are recorded on the plugin's record and every
other plugin goes on. Host code calls plugins by id; the host routes through
the plugin's handle.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.metadata
import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from importlib.metadata import EntryPoint
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version
from pydantic import BaseModel

from acp_plugins.audit import AuditLog
from acp_plugins.config.layers import (
    ConfigSources,
    PluginConfig,
    ResolvedConfig,
    plugin_env_prefix,
    portable_config_inputs,
    resolve_plugin_config,
)
from acp_plugins.config.overrides import OverrideStore
from acp_plugins.config.settings import default_data_root
from acp_plugins.errors import (
    AcpPluginsError,
    ConfigError,
    InterfaceMismatch,
    PermissionNotGranted,
    PluginCallError,
    PluginImportError,
    PluginNotActive,
    PluginNotFound,
)
from acp_plugins.isolation.worker_handle import WorkerHandle
from acp_plugins.loading.discovery import ENTRY_POINT_GROUP, Discovery, discover
from acp_plugins.loading.interfaces import (
    INTERFACE_HOOKS,
    INTERFACE_PERMISSIONS,
    Interface,
    interface_of_hook,
)
from acp_plugins.loading.manifest import Manifest
from acp_plugins.loading.permissions import PermissionPolicy
from acp_plugins.loading.resolution import resolve
from acp_plugins.loading.trust import IsolationPolicy
from acp_plugins.models import (
    CommandDefinition,
    CommandResult,
    DataQuery,
    DataResult,
    DataSourceDefinition,
    Message,
    MessageResponse,
    MetricDefinition,
    MetricsData,
    Report,
    TimeRange,
)
from acp_plugins.runtime.calls import DEFAULT_TIMEOUT, CallGuard, invalid_return
from acp_plugins.runtime.commands import CommandEntry, CommandRegistry, check_arguments
from acp_plugins.runtime.context import PluginContext
from acp_plugins.runtime.data_sources import DataSourceRegistry
from acp_plugins.runtime.handle import HookRegistry, InProcessHandle, PluginHandle
from acp_plugins.runtime.lifecycle import PluginState, check_transition
from acp_plugins.runtime.record import PluginFailure, PluginRecord
from acp_plugins.runtime.routing import MessageRouter, RoutedMessage

__all__ = ["CORE_VERSION", "PluginHost", "default_data_root"]

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

#: The version of the plugin API this host offers (what ``dependencies.core`` is checked against).
CORE_VERSION = "2.0.0"


class PluginHost:
    """Discovers installed plugins and drives them through their lifecycle.

    :param policy: which permissions plugins are granted (default: the default grants).
    :param core_version: the plugin API version offered (default :data:`CORE_VERSION`).
    :param search_path: directories to discover plugins in (``pip install --target``);
        ``None`` means the host's own environment.
    :param timeout: seconds any call into a plugin may take.
    :param settings: plugin id -> settings given by the embedding application; they
        belong to the global layer, over the global config file's tables.
    :param config: where the configuration layers come from (config files and the
        environment); default: no files, this process's environment.
    :param overrides: the store of runtime overrides (default
        ``<data_root>/overrides.json``).
    :param disabled: plugin ids the host must not load.
    :param data_root: parent of each plugin's own data directory.
    :param sync_in_thread: run plain (non-async) hooks in worker threads so that a
        hanging one can be abandoned at its timeout (slower per call).
    :param python: the Python version plugins are checked against (default: running one).
    :param isolation: which plugins run in-process (trusted) and the limits of the
        worker processes every other plugin runs in; default: trust none.
    :param audit: where security events go (default: ``<data_root>/audit.jsonl``).
    """

    def __init__(
        self,
        *,
        policy: PermissionPolicy | None = None,
        core_version: str = CORE_VERSION,
        search_path: Sequence[str | Path] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        data_root: str | Path | None = None,
        sync_in_thread: bool = False,
        python: tuple[int, int] | None = None,
        config: ConfigSources | None = None,
        overrides: OverrideStore | None = None,
        disabled: Iterable[str] = (),
        isolation: IsolationPolicy | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.policy = policy or PermissionPolicy()
        self.isolation = isolation or IsolationPolicy()
        self.core_version = Version(core_version)
        self.search_path = list(search_path) if search_path is not None else None
        self.data_root = Path(data_root) if data_root is not None else default_data_root()
        self.config_sources = config or ConfigSources(environ=os.environ)
        if settings:
            self.config_sources = self.config_sources.with_global_tables(settings)
        self.overrides = overrides or OverrideStore(self.data_root / "overrides.json")
        self.audit = audit or AuditLog(self.data_root / "audit.jsonl")
        self.disabled = frozenset(disabled)
        self.sync_in_thread = sync_in_thread
        self.python = python or (sys.version_info.major, sys.version_info.minor)
        self.guard = CallGuard(timeout)
        self.router = MessageRouter(self.guard)
        self.commands = CommandRegistry()
        self.sources = DataSourceRegistry()
        self._manager = HookRegistry()
        self._records: dict[str, PluginRecord] = {}
        self._order: list[str] = []
        self._contexts: dict[str, PluginContext] = {}
        self._discovered = False
        self._background: set[asyncio.Task[Any]] = set()
        #: Workers started ahead of their plugin's load (or why they did not start).
        self._prestarted: dict[str, WorkerHandle | AcpPluginsError] = {}

    # -- reading state ------------------------------------------------------

    @property
    def records(self) -> Mapping[str, PluginRecord]:
        """Every discovered plugin's record, by plugin id (read-only for callers)."""
        return self._records

    def record(self, plugin_id: str) -> PluginRecord:
        """The record of ``plugin_id``; raises :class:`PluginNotFound`."""
        try:
            return self._records[plugin_id]
        except KeyError:
            known = ", ".join(sorted(self._records)) or "none"
            raise PluginNotFound(
                f"no plugin '{plugin_id}' is installed (installed: {known})", plugin_id=plugin_id
            ) from None

    def active(self) -> list[PluginRecord]:
        """Active plugins, in load order."""
        return [
            self._records[pid]
            for pid in self._order
            if self._records[pid].state is PluginState.ACTIVE
        ]

    @property
    def load_order(self) -> tuple[str, ...]:
        """Plugin ids that passed resolution, dependencies first."""
        return tuple(self._order)

    # -- discovery, validation and resolution (no plugin code runs) -------------

    def discover(self) -> list[PluginRecord]:
        """Find plugins, validate manifests and permissions, resolve dependencies.

        No plugin code is imported. Refused plugins stay Discovered with the reason.
        Discovering again is allowed only while no plugin is loaded.
        """
        loaded = [
            pid
            for pid, rec in self._records.items()
            if rec.state not in (PluginState.DISCOVERED, PluginState.UNLOADED)
        ]
        if loaded:
            raise AcpPluginsError(
                f"cannot discover again while plugins are loaded ({', '.join(sorted(loaded))}); "
                "stop the host first"
            )
        found = discover(self.search_path)
        self._records = {}
        for item in found:
            self._add(item)
        manifests = {
            pid: rec.manifest
            for pid, rec in self._records.items()
            if rec.manifest is not None and rec.reason is None
        }
        refused = {pid: rec.reason for pid, rec in self._records.items() if rec.reason is not None}
        resolution = resolve(
            manifests, core_version=self.core_version, python=self.python, unavailable=refused
        )
        for pid, failure in resolution.failures.items():
            self._records[pid].fail("resolve", failure.message)
        self._order = list(resolution.order)
        self._discovered = True
        return list(self._records.values())

    def _add(self, item: Discovery) -> None:
        record = PluginRecord(
            plugin_id=item.plugin_id,
            entry_point=item.entry_point,
            distribution=item.distribution,
            distribution_version=item.distribution_version,
            manifest_path=item.manifest_path,
            manifest=item.manifest,
        )
        existing = self._records.get(item.plugin_id)
        if existing is not None and item.error is not None:
            existing.fail("discover", item.error.message)  # two distributions, one id: refuse both
            return
        self._records[item.plugin_id] = record
        if item.error is not None:
            record.fail("manifest", item.error.message)
            return
        assert item.manifest is not None
        if item.plugin_id in self.disabled:
            record.fail("disabled", f"'{item.plugin_id}' is disabled in the host's settings")
            return
        record.granted = self.policy.granted(item.plugin_id)
        needed = [
            f"{interface.value} needs permission '{INTERFACE_PERMISSIONS[interface].value}'"
            for interface in item.manifest.interfaces
            if interface in INTERFACE_PERMISSIONS
            and INTERFACE_PERMISSIONS[interface] not in item.manifest.permissions
        ]
        if needed:
            record.fail(
                "permissions",
                f"'{item.plugin_id}' declares {'; '.join(needed)}: add it to the manifest's "
                "permissions",
            )
            return
        missing = self.policy.missing(item.plugin_id, item.manifest.permissions)
        if missing:
            error = PermissionNotGranted(item.plugin_id, [p.value for p in missing])
            record.fail("permissions", error.message)
            for permission in missing:
                self.audit.record(
                    item.plugin_id, "refuse", "denied", permission=permission.value,
                    detail=error.message,
                )  # fmt: skip
            return
        requested = ",".join(p.value for p in item.manifest.permissions) or None
        self.audit.record(item.plugin_id, "grant", "allowed", permission=requested)

    # -- the whole lifecycle ------------------------------------------------

    async def start(self) -> None:
        """Discover (if not done yet) and bring every plugin that can be to Active.

        Plugins are started one by one in dependency order, so a plugin's
        dependencies are active before it initializes.
        """
        if not self._discovered:
            self.discover()
        await self._prestart_workers()
        try:
            for plugin_id in self._order:
                record = self._records[plugin_id]
                if record.state is not PluginState.DISCOVERED:
                    continue
                if await self.load(plugin_id) and await self.initialize(plugin_id):
                    await self.activate(plugin_id)
        finally:
            for unused in self._prestarted.values():  # their plugins did not get to load
                if isinstance(unused, WorkerHandle):
                    unused.close()
            self._prestarted.clear()

    async def _prestart_workers(self) -> None:
        """Start the workers of every isolated plugin that is to load, all at once.

        A worker's start is mostly its interpreter's: done concurrently, N isolated
        plugins start in about the time of one per CPU. Each plugin still loads,
        initializes and activates in dependency order; starting a worker only
        imports the plugin in its own process.
        """
        handles = {
            pid: self._worker_handle(self._records[pid])
            for pid in self._order
            if self._records[pid].state is PluginState.DISCOVERED
            and self._records[pid].manifest is not None
            and not self.isolation.is_trusted(pid)
        }
        if len(handles) < 2:
            return
        started = await asyncio.gather(
            *(h.start() for h in handles.values()), return_exceptions=True
        )
        for (plugin_id, handle), outcome in zip(handles.items(), started, strict=True):
            if isinstance(outcome, AcpPluginsError):
                self._prestarted[plugin_id] = outcome
            elif isinstance(outcome, BaseException):
                handle.close()
            else:
                self._prestarted[plugin_id] = handle

    async def stop(self) -> None:
        """Unload every plugin that is loaded, dependents first."""
        for plugin_id in reversed(self._order):
            record = self._records[plugin_id]
            if record.state not in (PluginState.DISCOVERED, PluginState.UNLOADED):
                await self.unload(plugin_id)

    async def load(self, plugin_id: str) -> bool:
        """Import and register the plugin (Discovered -> Loaded)."""
        record = self.record(plugin_id)
        check_transition(plugin_id, record.state, PluginState.LOADED)
        if record.manifest is None or plugin_id not in self._order:
            return False  # refused before import; the reason is already recorded
        blocker = self._inactive_dependency(record, PluginState.LOADED)
        if blocker:
            record.fail("load", blocker)
            return False
        handle: PluginHandle
        plugin_object: object = None
        try:
            if self.isolation.is_trusted(plugin_id):
                plugin_object = _import(record)
                handle = InProcessHandle(
                    plugin_id, plugin_object, self._manager, sync_in_thread=self.sync_in_thread
                )
            else:
                prestarted = self._prestarted.pop(plugin_id, None)
                if isinstance(prestarted, AcpPluginsError):
                    raise prestarted
                if prestarted is None:
                    prestarted = self._worker_handle(record)
                    await prestarted.start()
                handle = prestarted
                prestarted.update_sources(self.sources.definitions())
        except AcpPluginsError as error:
            record.fail("load", error.message)
            self.audit.record(plugin_id, "load", "failed", detail=error.message)
            return False
        try:
            _check_interfaces(record.manifest, handle.hooks, plugin_object)
        except InterfaceMismatch as error:
            handle.close()
            record.fail("load", error.message)
            return False
        record.handle = handle
        mode = "isolated" if isinstance(handle, WorkerHandle) else "in-process"
        self.audit.record(plugin_id, "load", "ok", detail=mode)
        for hook, kwargs in (("on_discover", {"manifest": record.manifest}), ("on_load", {})):
            if not await self._lifecycle_call(record, hook, kwargs, "load"):
                handle.close()
                record.handle = None
                return False
        return self._moved(record, PluginState.LOADED)

    async def initialize(self, plugin_id: str) -> bool:
        """Apply configuration and hand the plugin its context (Loaded -> Initialized)."""
        record = self.record(plugin_id)
        check_transition(plugin_id, record.state, PluginState.INITIALIZED)
        assert record.manifest is not None
        blocker = self._inactive_dependency(record, PluginState.ACTIVE)
        if blocker:
            record.fail("initialize", blocker)
            return False
        resolved = await self._resolve_config(record)
        if resolved is None:
            return False
        config = self._plugin_config(record, resolved)
        if not await self._lifecycle_call(
            record, "validate_config", {"config": config}, "configure"
        ):
            return False
        context = PluginContext(
            manifest=record.manifest,
            permissions=record.granted,
            config=MappingProxyType(resolved.values),  # a plugin reads, never writes, it
            settings=resolved.settings,
            data_dir=self.data_root / plugin_id,
            host=self,
        )
        record.resolved_config = resolved
        record.config = config
        self._contexts[plugin_id] = context
        for hook, kwargs in (("initialize", {"context": context}), ("on_initialize", {})):
            if not await self._lifecycle_call(record, hook, kwargs, "initialize"):
                return False
        return self._moved(record, PluginState.INITIALIZED)

    async def activate(self, plugin_id: str) -> bool:
        """Make the plugin operational (Initialized or Suspended -> Active)."""
        record = self.record(plugin_id)
        check_transition(plugin_id, record.state, PluginState.ACTIVE)
        handle = record.handle
        if isinstance(handle, WorkerHandle) and not handle.alive:
            try:
                await handle.revive()
            except AcpPluginsError as error:
                record.fail("activate", error.message)
                return False
        for hook in ("activate", "on_activate"):
            if not await self._lifecycle_call(record, hook, {}, "activate"):
                return False
        try:
            await self._collect_capabilities(record)
        except AcpPluginsError as error:
            record.fail("activate", error.message)
            # undo the half-done activation; the plugin stays where it was
            reason = record.reason
            await self._lifecycle_call(record, "deactivate", {}, "activate")
            record.reason = reason
            return False
        self._moved(record, PluginState.ACTIVE)
        self._register_capabilities(record)
        return True

    async def resume(self, plugin_id: str) -> bool:
        """Re-enable a suspended plugin (Suspended -> Active)."""
        return await self.activate(plugin_id)

    async def suspend(self, plugin_id: str) -> bool:
        """Temporarily disable an active plugin (Active -> Suspended).

        Active plugins that depend on it are suspended first. The host stops
        routing to it at once; a failing ``deactivate`` or ``on_suspend`` is
        recorded but does not keep the plugin serving.
        """
        record = self.record(plugin_id)
        check_transition(plugin_id, record.state, PluginState.SUSPENDED)
        for dependent in self._dependents(plugin_id, (PluginState.ACTIVE,)):
            if self._records[dependent].state is not PluginState.ACTIVE:
                continue  # already suspended along with one of its own dependents
            await self.suspend(dependent)
            self._records[dependent].reason = f"suspended with its dependency '{plugin_id}'"
        self._moved(record, PluginState.SUSPENDED)
        self._rebuild_registries()
        ok = await self._lifecycle_call(record, "deactivate", {}, "suspend")
        ok = await self._lifecycle_call(record, "on_suspend", {}, "suspend") and ok
        return ok

    async def unload(self, plugin_id: str) -> bool:
        """Shut the plugin down and forget its code (-> Unloaded).

        Loaded plugins that depend on it are unloaded first. Failing
        ``deactivate`` or ``on_unload`` hooks are recorded; the plugin is
        unloaded all the same.
        """
        record = self.record(plugin_id)
        check_transition(plugin_id, record.state, PluginState.UNLOADED)
        loaded = (
            PluginState.LOADED,
            PluginState.INITIALIZED,
            PluginState.ACTIVE,
            PluginState.SUSPENDED,
        )
        for dependent in self._dependents(plugin_id, loaded):
            if self._records[dependent].state not in loaded:
                continue  # already unloaded along with one of its own dependents
            await self.unload(dependent)
            self._records[dependent].reason = f"unloaded with its dependency '{plugin_id}'"
        was_active = record.state is PluginState.ACTIVE
        self._moved(record, PluginState.UNLOADED)
        self._rebuild_registries()
        ok = True
        if was_active:
            ok = await self._lifecycle_call(record, "deactivate", {}, "unload")
        ok = await self._lifecycle_call(record, "on_unload", {}, "unload") and ok
        if record.handle is not None:
            record.handle.close()
            record.handle = None
        self._contexts.pop(plugin_id, None)
        return ok

    # -- calling plugins ------------------------------------------------------

    async def send(self, message: Message) -> RoutedMessage:
        """Route ``message`` to the most confident active handler and return its answer."""
        return await self.router.route(message, self._context_of)

    async def run_command(self, name: str, args: Sequence[str] = ()) -> CommandResult:
        """Run a command (plain name or ``plugin_id:command``) after checking its arguments."""
        record, definition = self.commands.resolve(name)
        check_arguments(record.plugin_id, definition, args)
        result = await self.guard.call(
            record,
            "execute_command",
            {"command": definition.name, "args": list(args), "context": self._context_of(record)},
        )
        return _expect(record, "execute_command", result, CommandResult)

    def command_entries(self) -> list[CommandEntry]:
        """Every command of every active plugin."""
        return self.commands.entries()

    async def query(self, source: str, query: DataQuery | None = None) -> DataResult:
        """Query a data source (plain id or ``plugin_id:source_id``) of an active plugin."""
        record, definition = self.sources.resolve(source)
        result = await self.guard.call(
            record,
            "query_data",
            {"source_id": definition.source_id, "query": query or DataQuery()},
        )
        return _expect(record, "query_data", result, DataResult)

    def data_sources(self) -> list[DataSourceDefinition]:
        """Every data source of every active plugin."""
        return self.sources.definitions()

    def analytics_providers(self) -> list[PluginRecord]:
        return [r for r in self.active() if r.handle and r.handle.implements("collect_metrics")]

    async def metric_definitions(self) -> dict[str, list[MetricDefinition]]:
        """Plugin id -> the metrics it offers, for every active analytics provider."""
        found: dict[str, list[MetricDefinition]] = {}
        for record in self.analytics_providers():
            result = await self.guard.call(record, "get_metrics", {})
            found[record.plugin_id] = _expect_list(record, "get_metrics", result, MetricDefinition)
        return found

    async def collect_metrics(self, plugin_id: str, time_range: TimeRange) -> MetricsData:
        """Collect the metrics of one analytics provider over ``time_range``."""
        record = self._active_with(plugin_id, "collect_metrics", Interface.ANALYTICS_PROVIDER)
        result = await self.guard.call(record, "collect_metrics", {"time_range": time_range})
        data = _expect(record, "collect_metrics", result, MetricsData)
        return data.model_copy(update={"source": plugin_id})

    async def report(
        self,
        plugin_id: str,
        format: str = "markdown",
        time_range: TimeRange | None = None,
    ) -> Report:
        """Collect one provider's metrics and have it render them as a report in ``format``."""
        window = time_range or TimeRange.last(timedelta(days=7))
        metrics = await self.collect_metrics(plugin_id, window)
        record = self._records[plugin_id]
        result = await self.guard.call(
            record, "generate_report", {"metrics": metrics, "format": format}
        )
        return _expect(record, "generate_report", result, Report)

    # -- configuration ------------------------------------------------------------

    def config_of(self, plugin_id: str) -> ResolvedConfig:
        """The effective configuration of an initialized plugin and where each value came from."""
        record = self.record(plugin_id)
        if record.resolved_config is None:
            raise PluginNotActive(
                f"'{plugin_id}' has no configuration in force ({record.state.value}"
                + (f": {record.reason}" if record.reason else "")
                + ")",
                plugin_id=plugin_id,
            )
        return record.resolved_config

    async def set_config(self, plugin_id: str, path: str, value: Any) -> ResolvedConfig:
        """Set a runtime override of one setting, validate it, persist it, apply it.

        An invalid value is refused with :class:`ConfigError` and nothing changes. A
        valid one is saved, then the running plugin is told (``on_config_changed``);
        if it refuses, the previous override is restored and the error raised.
        """
        return await self._change_config(plugin_id, path, value, remove=False)

    async def unset_config(self, plugin_id: str, path: str) -> ResolvedConfig:
        """Remove a runtime override (the value falls back to the layers below)."""
        return await self._change_config(plugin_id, path, None, remove=True)

    async def _change_config(
        self, plugin_id: str, path: str, value: Any, *, remove: bool
    ) -> ResolvedConfig:
        what = f"{'unset' if remove else 'set'} {path}"  # never the value: it may be a secret
        try:
            resolved = await self._try_change_config(plugin_id, path, value, remove=remove)
        except ConfigError as error:
            self.audit.record(plugin_id, "config", "refused", detail=f"{what}: {error.summary}")
            raise
        self.audit.record(plugin_id, "config", "applied", detail=what)
        return resolved

    async def _try_change_config(
        self, plugin_id: str, path: str, value: Any, *, remove: bool
    ) -> ResolvedConfig:
        record = self.record(plugin_id)
        current = self.config_of(plugin_id)
        runtime = self.overrides.get(plugin_id)
        proposed = copy.deepcopy(runtime)
        if remove:
            if not _remove_path(proposed, path):
                raise ConfigError(
                    f"'{plugin_id}' has no runtime override of '{path}' to remove",
                    plugin_id=plugin_id,
                )
        else:
            _set_path(proposed, path, value)
        resolved = await self._resolve_with(record, proposed)  # ConfigError: nothing changed yet
        self.overrides.update(lambda data: _replace_entry(data, plugin_id, proposed))
        if not await self._apply_config(record, resolved):
            self.overrides.update(lambda data: _replace_entry(data, plugin_id, runtime))
            self._install_config(record, current)
            raise ConfigError(
                f"'{plugin_id}' refused the new configuration ({record.reason}); "
                "the previous one is in force again",
                plugin_id=plugin_id,
            )
        return resolved

    async def _apply_config(self, record: PluginRecord, resolved: ResolvedConfig) -> bool:
        self._install_config(record, resolved)
        if record.state not in (PluginState.INITIALIZED, PluginState.ACTIVE):
            return True
        config = self._plugin_config(record, resolved)
        reason = record.reason
        accepted = await self._lifecycle_call(
            record, "on_config_changed", {"config": config}, "configure"
        )
        if accepted:
            record.reason = reason
        return accepted

    def _install_config(self, record: PluginRecord, resolved: ResolvedConfig) -> None:
        record.resolved_config = resolved
        record.config = self._plugin_config(record, resolved)
        context = self._contexts.get(record.plugin_id)
        if context is not None:
            context.config = MappingProxyType(resolved.values)
            context.settings = resolved.settings

    def _plugin_config(self, record: PluginRecord, resolved: ResolvedConfig) -> PluginConfig:
        """The spec's ``PluginConfig`` of a resolved configuration."""
        assert record.manifest is not None
        prefix = plugin_env_prefix(record.plugin_id)
        environ = self.config_sources.environ
        return PluginConfig(
            plugin_id=record.plugin_id,
            version=record.manifest.version,
            enabled=record.plugin_id not in self.disabled,
            settings=MappingProxyType(resolved.values),
            environment={k: v for k, v in environ.items() if k.upper().startswith(prefix)},
        )

    async def _settings_model(self, record: PluginRecord) -> type[BaseModel] | None:
        if record.handle is None or not record.handle.implements("get_settings_model"):
            return None
        model = await self.guard.call(record, "get_settings_model", {})
        if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise invalid_return(
                record, "get_settings_model", f"{model!r}, not a pydantic model class or None"
            )
        return model

    async def _resolve_with(
        self, record: PluginRecord, runtime: Mapping[str, Any] | None
    ) -> ResolvedConfig:
        """Merge and validate the plugin's layers with ``runtime`` as its overrides.

        An isolated plugin's model is in its worker: the layers go there to be
        validated by the same code (:func:`~acp_plugins.config.resolve_portable_config`).
        """
        handle = record.handle
        if isinstance(handle, WorkerHandle):
            inputs = portable_config_inputs(record.plugin_id, self.config_sources, runtime)
            return await handle.resolve_config(inputs, self.guard.timeout)
        model = await self._settings_model(record)
        return resolve_plugin_config(record.plugin_id, model, self.config_sources, runtime=runtime)

    async def _resolve_config(self, record: PluginRecord) -> ResolvedConfig | None:
        """Build and validate the plugin's configuration; ``None`` (recorded) if it is invalid."""
        try:
            return await self._resolve_with(record, self.overrides.get(record.plugin_id))
        except AcpPluginsError as error:
            record.fail("configure", error.message)
            return None
        except OSError as error:  # e.g. the overrides file cannot be read or set aside
            record.fail(
                "configure",
                f"cannot read the runtime overrides in {self.overrides.path}: {error}; "
                "fix the file's permissions or point overrides_file elsewhere",
            )
            return None

    async def config_schema(self, plugin_id: str) -> dict[str, Any]:
        """The JSON Schema of a loaded plugin's settings (``{}`` when it declares none)."""
        record = self.record(plugin_id)
        if record.handle is None:
            raise PluginNotActive(
                f"'{plugin_id}' is {record.state.value}; only a loaded plugin can say "
                "what its settings are",
                plugin_id=plugin_id,
            )
        if not record.handle.implements("get_config_schema"):
            model = await self._settings_model(record)
            return model.model_json_schema() if model is not None else {}
        schema = await self.guard.call(record, "get_config_schema", {})
        if not isinstance(schema, dict):
            raise invalid_return(
                record, "get_config_schema", f"{type(schema).__name__}, not a JSON Schema object"
            )
        return schema

    # -- HostServices: what contexts may ask of the host ------------------------

    async def query_data(self, caller: str, source_id: str, query: DataQuery) -> DataResult:
        logger.debug("%s queries %s", caller, source_id)
        return await self.query(source_id, query)

    async def send_message(self, caller: str, message: Message) -> MessageResponse:
        logger.debug("%s sends a %s message", caller, message.type)
        return (await self.send(message)).response

    async def run_command_for(
        self, caller: str, command: str, args: Sequence[str]
    ) -> CommandResult:
        logger.debug("%s runs %s", caller, command)
        return await self.run_command(command, args)

    def permission_denied(self, caller: str, permission: str, operation: str) -> None:
        self.audit.record(caller, "deny", "denied", permission=permission, detail=operation)

    # -- isolation: WorkerEvents ----------------------------------------------------

    def _worker_handle(self, record: PluginRecord) -> WorkerHandle:
        assert record.manifest is not None
        own = record.entry_point.partition(":")[0].strip().partition(".")[0]
        return WorkerHandle(
            record.plugin_id,
            manifest=record.manifest,
            entry_point=record.entry_point,
            granted=record.granted,
            data_dir=self.data_root / record.plugin_id,
            search_path=self.search_path,
            policy=self.isolation,
            events=self,
            own_packages=frozenset({own}),
            code_dirs=(record.manifest_path.parent,) if record.manifest_path else (),
            dependency_modules=_dependency_modules(record.distribution),
        )

    def worker_event(
        self, plugin_id: str, outcome: str, detail: str, *, failure: bool = False
    ) -> None:
        self.audit.record(plugin_id, "worker", outcome, detail=detail)
        record = self._records.get(plugin_id)
        if failure and record is not None:
            record.failures.append(PluginFailure("isolation", detail))

    def sandbox_refused(self, plugin_id: str, event: str, message: str) -> None:
        self.audit.record(plugin_id, "sandbox", "denied", detail=message)
        record = self._records.get(plugin_id)
        if record is not None:
            record.call_errors.append(PluginFailure("sandbox", message))

    def worker_gave_up(self, plugin_id: str, reason: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the host's loop is gone: nothing left to suspend it with
            self._records[plugin_id].fail("isolation", f"'{plugin_id}' worker {reason}")
            return
        task = loop.create_task(self._open_circuit(plugin_id, reason))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _open_circuit(self, plugin_id: str, reason: str) -> None:
        record = self._records[plugin_id]
        self.audit.record(plugin_id, "circuit", "open", detail=reason)
        if record.state is PluginState.ACTIVE:
            await self.suspend(plugin_id)
        record.fail("isolation", f"'{plugin_id}' was suspended: its worker {reason}")

    async def settle(self) -> None:
        """Wait for the host's background work (suspending plugins whose workers gave up)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # -- internals ------------------------------------------------------------

    def _context_of(self, record: PluginRecord) -> PluginContext:
        return self._contexts[record.plugin_id]

    def _active_with(self, plugin_id: str, hook: str, interface: Interface) -> PluginRecord:
        record = self.record(plugin_id)
        if record.state is not PluginState.ACTIVE:
            raise PluginNotActive(
                f"'{plugin_id}' is {record.state.value}, not active"
                + (f": {record.reason}" if record.reason else ""),
                plugin_id=plugin_id,
            )
        if record.handle is None or not record.handle.implements(hook):
            raise PluginNotActive(f"'{plugin_id}' is not an {interface.value}", plugin_id=plugin_id)
        return record

    def _dependents(self, plugin_id: str, states: tuple[PluginState, ...]) -> list[str]:
        """Plugins in ``states`` that depend on ``plugin_id``, directly or not, dependents first."""
        found: set[str] = set()
        for pid in self._order:  # dependencies come before their dependents in the order
            manifest = self._records[pid].manifest
            deps = set(manifest.plugin_dependencies()) if manifest else set()
            if deps & (found | {plugin_id}):
                found.add(pid)
        return [
            pid
            for pid in reversed(self._order)
            if pid in found and self._records[pid].state in states
        ]

    def _inactive_dependency(self, record: PluginRecord, needed: PluginState) -> str | None:
        assert record.manifest is not None
        for dep in sorted(record.manifest.plugin_dependencies()):
            other = self._records.get(dep)
            if other is None:
                return f"'{record.plugin_id}' needs plugin '{dep}', which is not installed"
            good = other.state is needed or (
                needed is PluginState.LOADED
                and other.state in (PluginState.INITIALIZED, PluginState.ACTIVE)
            )
            if not good:
                why = f": {other.reason}" if other.reason else ""
                return (
                    f"'{record.plugin_id}' depends on '{dep}', which is {other.state.value} "
                    f"(needs {needed.value}){why}"
                )
        return None

    async def _lifecycle_call(
        self, record: PluginRecord, hook: str, kwargs: Mapping[str, Any], stage: str
    ) -> bool:
        """Call an optional lifecycle hook; ``False`` (recorded) if it raised or refused."""
        handle = record.handle
        if handle is None or not handle.implements(hook):
            return True
        try:
            result = await self.guard.call(record, hook, kwargs)
        except PluginCallError as error:
            record.fail(stage, error.message)
            return False
        if result is False:
            record.fail(stage, f"'{record.plugin_id}' refused: {hook} returned False")
            return False
        return True

    async def _collect_capabilities(self, record: PluginRecord) -> None:
        """Ask an activating plugin what it offers; the record changes only if all is valid."""
        handle = record.handle
        assert handle is not None
        message_types: frozenset[str] = frozenset()
        commands: dict[str, CommandDefinition] = {}
        sources: list[DataSourceDefinition] = []
        if handle.implements("get_supported_message_types"):
            types = await self.guard.call(record, "get_supported_message_types", {})
            if not isinstance(types, (list, tuple, set, frozenset)) or not all(
                isinstance(t, str) for t in types
            ):
                raise invalid_return(
                    record, "get_supported_message_types", f"{types!r}, not a list of strings"
                )
            message_types = frozenset(types)
        if handle.implements("get_commands"):
            commands = _expect_commands(record, await self.guard.call(record, "get_commands", {}))
        if handle.implements("get_data_sources"):
            found = await self.guard.call(record, "get_data_sources", {})
            sources = _expect_list(record, "get_data_sources", found, DataSourceDefinition)
        record.message_types, record.commands, record.data_sources = (
            message_types,
            commands,
            sources,
        )

    def _moved(self, record: PluginRecord, state: PluginState) -> bool:
        logger.info("%s: %s -> %s", record.plugin_id, record.state.value, state.value)
        record.state = state
        record.reason = None
        return True

    def _register_capabilities(self, record: PluginRecord) -> None:
        """Add a plugin that has just become active to the routing tables."""
        if record.handle is not None and record.handle.implements("can_handle"):
            self.router.add(record)
        if record.commands:
            self.commands.add(record)
        if record.data_sources:
            self.sources.add(record)
        self._send_sources()

    def _send_sources(self) -> None:
        """Keep every isolated plugin's copy of the data sources current."""
        definitions = None
        for record in self._records.values():
            if isinstance(record.handle, WorkerHandle):
                if definitions is None:
                    definitions = self.sources.definitions()
                record.handle.update_sources(definitions)

    def _rebuild_registries(self) -> None:
        active = sorted(self.active(), key=lambda r: r.plugin_id)
        self.router.reset(
            r for r in active if r.handle is not None and r.handle.implements("can_handle")
        )
        self.commands.rebuild(r for r in active if r.commands)
        self.sources.rebuild(r for r in active if r.data_sources)
        self._send_sources()


def _set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        child = tree.get(part)
        if not isinstance(child, dict):
            child = tree[part] = {}
        tree = child
    tree[leaf] = value


def _remove_path(tree: dict[str, Any], path: str) -> bool:
    *parents, leaf = path.split(".")
    chain = [tree]
    for part in parents:
        child = chain[-1].get(part)
        if not isinstance(child, dict):
            return False
        chain.append(child)
    if leaf not in chain[-1]:
        return False
    del chain[-1][leaf]
    for parent, part in zip(reversed(chain[:-1]), reversed(parents), strict=True):
        if not parent[part]:
            del parent[part]  # prune tables left empty
    return True


def _replace_entry(data: dict[str, dict[str, Any]], plugin_id: str, entry: dict[str, Any]) -> None:
    if entry:
        data[plugin_id] = copy.deepcopy(entry)
    else:
        data.pop(plugin_id, None)


def _dependency_modules(distribution: str) -> frozenset[str]:
    """Top-level modules of the distributions ``distribution`` requires (what it may import)."""
    try:
        requirements = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return frozenset()
    modules: set[str] = set()
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra's requirement, or one for another platform
        try:
            modules |= _top_level_modules(importlib.metadata.distribution(requirement.name))
        except importlib.metadata.PackageNotFoundError:
            continue
    return frozenset(modules)


def _top_level_modules(dist: importlib.metadata.Distribution) -> set[str]:
    """The importable top-level names a distribution installs.

    ``top_level.txt`` where there is one, else the first part of each installed
    path (Python 3.10's ``packages_distributions`` reads only ``top_level.txt``,
    which most wheels do not have).
    """
    declared = dist.read_text("top_level.txt")
    if declared:
        return {line.strip() for line in declared.splitlines() if line.strip()}
    found: set[str] = set()
    for path in dist.files or ():
        first = path.parts[0] if path.parts else ""
        if not first or first == ".." or first.endswith((".dist-info", ".egg-info", ".pth")):
            continue
        if len(path.parts) > 1:
            found.add(first)  # a package
        elif first.endswith(".py"):
            found.add(first.removesuffix(".py"))
        elif first.endswith((".so", ".pyd")):
            found.add(first.partition(".")[0])  # an extension module
    return {name for name in found if name.isidentifier()}


def _import(record: PluginRecord) -> object:
    """Import the entry point's object; instantiate it if it is a class."""
    entry_point = EntryPoint(record.plugin_id, record.entry_point, ENTRY_POINT_GROUP)
    try:
        loaded = entry_point.load()
    except (Exception, SystemExit) as error:
        raise PluginImportError(
            f"importing '{record.entry_point}' failed: {type(error).__name__}: {error}",
            plugin_id=record.plugin_id,
        ) from error
    if isinstance(loaded, type):
        try:
            return loaded()
        except (Exception, SystemExit) as error:
            raise PluginImportError(
                f"creating {loaded.__name__}() failed: {type(error).__name__}: {error}",
                plugin_id=record.plugin_id,
            ) from error
    return loaded


def _check_interfaces(manifest: Manifest, hooks: frozenset[str], plugin_object: object) -> None:
    """Declared interfaces must be implemented in full, and implemented ones declared."""
    declared = set(manifest.interfaces)
    problems = []
    for interface in sorted(declared, key=lambda i: i.value):
        missing = sorted(INTERFACE_HOOKS[interface] - hooks)
        if missing:
            hint = [name for name in missing if callable(getattr(plugin_object, name, None))]
            text = f"declares {interface.value} but does not implement {', '.join(missing)}"
            if hint:
                verb = "exists but is" if len(hint) == 1 else "exist but are"
                text += f" ({', '.join(hint)} {verb} not marked with @acp_plugins.hookimpl)"
            problems.append(text)
    undeclared: dict[Interface, list[str]] = {}
    for hook in sorted(hooks):
        owner = interface_of_hook(hook)
        if owner is not None and owner not in declared:
            undeclared.setdefault(owner, []).append(hook)
    for interface, names in undeclared.items():
        problems.append(
            f"implements {', '.join(names)} of {interface.value} but does not declare "
            f"{interface.value} in its manifest's interfaces"
        )
    if problems:
        raise InterfaceMismatch(
            f"'{manifest.plugin_id}' " + "; ".join(problems), plugin_id=manifest.plugin_id
        )


def _expect(record: PluginRecord, hook: str, value: object, model: type[ModelT]) -> ModelT:
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValueError as error:
        raise invalid_return(record, hook, f"an invalid {model.__name__}: {error}") from None


def _expect_list(
    record: PluginRecord, hook: str, value: object, model: type[ModelT]
) -> list[ModelT]:
    if not isinstance(value, (list, tuple)):
        raise invalid_return(
            record, hook, f"{type(value).__name__}, not a list of {model.__name__}"
        )
    return [_expect(record, hook, item, model) for item in value]


def _expect_commands(record: PluginRecord, value: object) -> dict[str, CommandDefinition]:
    if not isinstance(value, dict):
        raise invalid_return(
            record,
            "get_commands",
            f"{type(value).__name__}, not a dict of name -> CommandDefinition",
        )
    commands = {}
    for name, item in value.items():
        definition = _expect(record, "get_commands", item, CommandDefinition)
        if definition.name != name:
            raise invalid_return(
                record, "get_commands", f"command {definition.name!r} under the key {name!r}"
            )
        commands[name] = definition
    return commands
