"""The plugin host: one facade over the services that discover, drive and call plugins.

``PluginHost`` owns no logic of its own. It builds the services and each public
method hands its work to the one that owns it:

- :class:`~acp_plugins.runtime.catalog.PluginCatalog`: the records, discovery,
  validation and resolution (no plugin code runs);
- :class:`~acp_plugins.runtime.driver.LifecycleDriver`: load, initialize,
  activate, suspend, resume, unload;
- :class:`~acp_plugins.runtime.configuration.ConfigurationService`: settings in
  force and changes to them while plugins run;
- :class:`~acp_plugins.runtime.dispatch.Dispatcher`: messages, commands, data and
  analytics, for host code and for plugins' contexts alike;
- :class:`~acp_plugins.isolation.supervision.WorkerSupervisor`: in-process or in
  a worker, by the trust policy, and what happens when a worker fails.

Nothing a plugin does escapes as an exception: failures are recorded on the
plugin's record and every other plugin goes on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.version import Version

from acp_plugins.audit import AuditLog
from acp_plugins.config.layers import ConfigSources, ResolvedConfig
from acp_plugins.config.overrides import OverrideStore
from acp_plugins.config.settings import TelemetrySettings, default_data_root, plugin_data_dir
from acp_plugins.errors import ConfigError
from acp_plugins.events.bus import EventBus
from acp_plugins.isolation.supervision import WorkerSupervisor
from acp_plugins.loading.interfaces import Interface
from acp_plugins.loading.permissions import PermissionPolicy
from acp_plugins.loading.trust import IsolationPolicy
from acp_plugins.models import (
    CommandResult,
    DataQuery,
    DataResult,
    DataSourceDefinition,
    Message,
    MetricDefinition,
    MetricsData,
    Report,
    TimeRange,
)
from acp_plugins.runtime.calls import DEFAULT_TIMEOUT, CallGuard
from acp_plugins.runtime.catalog import PluginCatalog
from acp_plugins.runtime.commands import CommandEntry, CommandRegistry
from acp_plugins.runtime.configuration import ConfigurationService
from acp_plugins.runtime.data_sources import DataSourceRegistry
from acp_plugins.runtime.dispatch import Dispatcher
from acp_plugins.runtime.driver import LifecycleDriver
from acp_plugins.runtime.on_demand import OnDemand
from acp_plugins.runtime.record import PluginRecord
from acp_plugins.runtime.reload import DEFAULT_DRAIN_TIMEOUT, Reloader, ReloadResult, RescanResult
from acp_plugins.runtime.routing import MessageRouter, RoutedMessage
from acp_plugins.runtime.subscriptions import PluginFeeds
from acp_plugins.telemetry.service import PluginTelemetry

__all__ = ["CORE_VERSION", "PluginHost", "default_data_root"]

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
    :param on_demand: start a plugin whose manifest declares its contributions on its
        first use instead of with the host (the command line's default; by default an
        embedding application's host starts every plugin with the host).
    :param drain_timeout: seconds the calls running on a reloaded plugin's old
        instance may take to finish there before it is unloaded.
    :param telemetry: what is measured and stored, and health thresholds (default on,
        stored in ``<data_root>/telemetry.sqlite``).
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
        on_demand: bool = False,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        telemetry: TelemetrySettings | None = None,
    ) -> None:
        if isolation is not None and not isinstance(isolation, IsolationPolicy):
            raise TypeError(
                f"PluginHost(isolation=...) takes an IsolationPolicy (or TRUST_ALL), "
                f"not {isolation!r}"
            )
        self.isolation = isolation or IsolationPolicy()
        self.core_version = Version(core_version)
        self.data_root = Path(data_root) if data_root is not None else default_data_root()
        self.config_sources = config or ConfigSources(environ=os.environ)
        if settings:
            self.config_sources = self.config_sources.with_global_tables(settings)
        self.overrides = overrides or OverrideStore(self.data_root / "overrides.json")
        self.audit = audit or AuditLog(self.data_root / "audit.jsonl")
        self.disabled = frozenset(disabled)
        self.python = python or (sys.version_info.major, sys.version_info.minor)
        self.guard = CallGuard(timeout)
        self.router = MessageRouter(self.guard)
        self.commands = CommandRegistry()
        self.sources = DataSourceRegistry()
        self.catalog = PluginCatalog(
            policy=policy or PermissionPolicy(),
            audit=self.audit,
            core_version=self.core_version,
            python=self.python,
            search_path=search_path,
            disabled=self.disabled,
        )
        #: The host's event bus: ``host.events.subscribe("plugin:*")`` (see :mod:`.events`).
        self.events = EventBus()
        self.configuration = ConfigurationService(
            catalog=self.catalog,
            guard=self.guard,
            sources=self.config_sources,
            overrides=self.overrides,
            audit=self.audit,
            disabled=self.disabled,
            events=self.events,
        )
        #: Figures, health and reports: ``await host.telemetry.get_plugin_health(id)``.
        self.telemetry = PluginTelemetry(
            catalog=self.catalog,
            guard=self.guard,
            settings=telemetry or TelemetrySettings(),
            data_root=self.data_root,
        )
        self.catalog.histograms = self.telemetry.enabled
        #: The plugins waiting for their first use (``None``: every plugin starts at once).
        self.on_demand = (
            OnDemand(self.catalog, lambda ids: self.driver.start_plugins(ids))
            if on_demand
            else None
        )
        #: Plugins' subscriptions to the bus (``@context.subscribe``).
        self.feeds = PluginFeeds(self.catalog, self.guard, self.events, self.audit)
        self.dispatcher = Dispatcher(
            catalog=self.catalog,
            guard=self.guard,
            router=self.router,
            commands=self.commands,
            sources=self.sources,
            audit=self.audit,
            on_demand=self.on_demand,
            events=self.events,
            feeds=self.feeds,
            usage=self.telemetry.usage,
            figures=self.telemetry.figures,
        )
        self.workers = WorkerSupervisor(
            catalog=self.catalog,
            policy=self.isolation,
            audit=self.audit,
            data_root=self.data_root,
            suspend=self.suspend,
            sync_in_thread=sync_in_thread,
        )
        self.driver = LifecycleDriver(
            catalog=self.catalog,
            guard=self.guard,
            handles=self.workers,
            configuration=self.configuration,
            router=self.router,
            commands=self.commands,
            sources=self.sources,
            services=self.dispatcher,
            audit=self.audit,
            data_root=self.data_root,
            events=self.events,
        )
        self.reloader = Reloader(
            catalog=self.catalog,
            driver=self.driver,
            guard=self.guard,
            audit=self.audit,
            events=self.events,
            on_demand=self.on_demand,
            drain_timeout=drain_timeout,
            feeds=self.feeds,
        )

    @property
    def policy(self) -> PermissionPolicy:
        """Which permissions plugins are granted (checked at discovery)."""
        return self.catalog.policy

    @policy.setter
    def policy(self, policy: PermissionPolicy) -> None:
        self.catalog.policy = policy

    @property
    def search_path(self) -> list[str | Path] | None:
        """Where plugins are discovered (``None``: the host's own environment)."""
        return self.catalog.search_path

    # -- reading state ------------------------------------------------------

    @property
    def records(self) -> Mapping[str, PluginRecord]:
        """Every discovered plugin's record, by plugin id (read-only for callers)."""
        return self.catalog.records

    def record(self, plugin_id: str) -> PluginRecord:
        """The record of ``plugin_id``; raises :class:`~acp_plugins.errors.PluginNotFound`."""
        return self.catalog.record(plugin_id)

    def active(self) -> list[PluginRecord]:
        """Active plugins, in load order."""
        return self.catalog.active()

    @property
    def notices(self) -> list[str]:
        """What the host recovered from, for the operator: a corrupt overrides file moved
        aside, audit records it could not write. Empty while all is well."""
        found = [self.overrides.problem, self.audit.problem]
        return [notice for notice in found if notice]

    @property
    def load_order(self) -> tuple[str, ...]:
        """Plugin ids that passed resolution, dependencies first."""
        return tuple(self.catalog.order)

    def data_dir(self, plugin_id: str) -> Path:
        """The data directory of ``plugin_id`` (``<data_root>/plugins/<plugin_id>``)."""
        return plugin_data_dir(self.data_root, plugin_id)

    # -- discovery and the lifecycle (PluginCatalog, LifecycleDriver) ------------

    def discover(self) -> list[PluginRecord]:
        """Find plugins, validate manifests and permissions, resolve dependencies.

        No plugin code is imported. Refused plugins stay Discovered with the reason.
        Discovering again is allowed only while no plugin is loaded.
        """
        return self.catalog.discover()

    async def start(self) -> None:
        """Discover (if not done yet) and bring every plugin that can be to Active.

        With ``on_demand=True``, a plugin whose manifest declares what it contributes
        is left for its first use (a message of its types, one of its commands or
        sources), unless a plugin started now depends on it.

        Raises :class:`~acp_plugins.errors.ConfigError` before any plugin starts if the
        data directory is not a directory or the runtime overrides cannot be read:
        every plugin would fail on them.
        """
        _check_places(self.data_root, self.overrides)
        await self.driver.start(self.on_demand)
        self.telemetry.start()

    async def start_waiting(self, interface: Interface | None = None) -> None:
        """Start the plugins waiting for their first use (of ``interface``, if given).

        For listings that must show every plugin: every command, every source.
        """
        if self.on_demand is not None:
            await self.on_demand.for_interface(interface)

    async def start_plugin(self, plugin_id: str) -> None:
        """Start one plugin waiting for its first use, with its dependencies (else nothing)."""
        if self.on_demand is not None:
            await self.on_demand.for_plugin(plugin_id)

    async def stop(self) -> None:
        """Unload every plugin that is loaded, dependents first."""
        await self.driver.stop()
        await self.telemetry.stop()
        self.workers.close()
        self.audit.close()  # a record after this opens the file again

    async def load(self, plugin_id: str) -> bool:
        """Import and register the plugin (Discovered -> Loaded)."""
        return await self.driver.load(plugin_id)

    async def initialize(self, plugin_id: str) -> bool:
        """Apply configuration and hand the plugin its context (Loaded -> Initialized)."""
        return await self.driver.initialize(plugin_id)

    async def activate(self, plugin_id: str) -> bool:
        """Make the plugin operational (Initialized or Suspended -> Active)."""
        return await self.driver.activate(plugin_id)

    async def resume(self, plugin_id: str) -> bool:
        """Re-enable a suspended plugin (Suspended -> Active)."""
        return await self.driver.activate(plugin_id)

    async def suspend(self, plugin_id: str) -> bool:
        """Temporarily disable an active plugin and its active dependents (-> Suspended)."""
        return await self.driver.suspend(plugin_id)

    async def unload(self, plugin_id: str) -> bool:
        """Shut the plugin and its loaded dependents down and forget its code (-> Unloaded)."""
        return await self.driver.unload(plugin_id)

    async def reload(self, plugin_id: str, *, suspend_dependents: bool = False) -> ReloadResult:
        """Replace the plugin's running instance with what is installed now, losing no call.

        See :mod:`acp_plugins.runtime.reload`: checked before its code runs, brought up
        beside the serving instance, switched to once active and healthy; the old one
        drains. Raises :class:`~acp_plugins.ReloadFailed` (the old instance goes on
        serving) when the new one is refused, fails a step, or needs a restart.
        """
        return await self.reloader.reload(plugin_id, suspend_dependents=suspend_dependents)

    async def rescan(self, *, upgrade: bool = True) -> RescanResult:
        """Take in what was installed or removed since discovery, without a restart: new
        plugins start, removed ones unload, changed ones (with ``upgrade``) reload."""
        return await self.reloader.rescan(upgrade=upgrade)

    async def settle(self) -> None:
        """Wait for the host's background work (suspending plugins whose workers gave up)."""
        await self.workers.settle()

    # -- calling plugins (Dispatcher) ---------------------------------------------

    async def send(self, message: Message) -> RoutedMessage:
        """Route ``message`` to the most confident active handler and return its answer."""
        return await self.dispatcher.send(message)

    async def run_command(self, name: str, args: Sequence[str] = ()) -> CommandResult:
        """Run a command (plain name or ``plugin_id:command``) after checking its arguments."""
        return await self.dispatcher.run_command(name, args)

    def command_entries(self) -> list[CommandEntry]:
        """Every command of every active plugin."""
        return self.dispatcher.command_entries()

    async def query(self, source: str, query: DataQuery | None = None) -> DataResult:
        """Query a data source (plain id or ``plugin_id:source_id``) of an active plugin."""
        return await self.dispatcher.query(source, query)

    def data_sources(self) -> list[DataSourceDefinition]:
        """Every data source of every active plugin."""
        return self.dispatcher.data_sources()

    def analytics_providers(self) -> list[PluginRecord]:
        """Active plugins that collect metrics."""
        return self.dispatcher.analytics_providers()

    async def metric_definitions(self) -> dict[str, list[MetricDefinition]]:
        """Plugin id -> the metrics it offers, for every active analytics provider."""
        return await self.dispatcher.metric_definitions()

    async def collect_metrics(self, plugin_id: str, time_range: TimeRange) -> MetricsData:
        """Collect the metrics of one analytics provider over ``time_range``."""
        return await self.dispatcher.collect_metrics(plugin_id, time_range)

    async def report(
        self, plugin_id: str, format: str = "markdown", time_range: TimeRange | None = None
    ) -> Report:
        """Collect one provider's metrics and have it render them as a report in ``format``."""
        return await self.dispatcher.report(plugin_id, format, time_range)

    # -- configuration (ConfigurationService) ---------------------------------------

    def config_of(self, plugin_id: str) -> ResolvedConfig:
        """The effective configuration of an initialized plugin and where each value came from."""
        return self.configuration.config_of(plugin_id)

    async def set_config(self, plugin_id: str, path: str, value: Any) -> ResolvedConfig:
        """Set a runtime override of one setting, validate it, persist it, apply it.

        An invalid value is refused with :class:`~acp_plugins.errors.ConfigError` and
        nothing changes. A valid one is saved, then the running plugin is told
        (``on_config_changed``); if it refuses, the previous override is restored and
        the error raised.
        """
        return await self.configuration.change(plugin_id, path, value, remove=False)

    async def unset_config(self, plugin_id: str, path: str) -> ResolvedConfig:
        """Remove a runtime override (the value falls back to the layers below)."""
        return await self.configuration.change(plugin_id, path, None, remove=True)

    async def config_schema(self, plugin_id: str) -> dict[str, Any]:
        """The JSON Schema of a loaded plugin's settings (``{}`` when it declares none)."""
        return await self.configuration.schema(plugin_id)


def _check_places(data_root: Path, overrides: OverrideStore) -> None:
    """Refuse to start on a data directory or overrides file every plugin would fail on."""
    if data_root.exists() and not data_root.is_dir():
        raise ConfigError(
            f"the data directory {data_root} is not a directory; point data_dir "
            "(--data-dir, ACP_PLUGINS_DATA_DIR) at a directory, or remove what is there",
            plugin_id="host",
        )
    try:
        overrides.load()
    except OSError as error:
        raise ConfigError(
            f"cannot read the runtime overrides in {overrides.path}: "
            f"{error.strerror or error}; fix the file (or its permissions) or point the "
            "host setting overrides_file elsewhere",
            plugin_id="host",
        ) from None
