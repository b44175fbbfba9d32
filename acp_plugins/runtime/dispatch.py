"""The dispatcher: host code's calls into active plugins, and plugins' calls back through it.

Messages go to the most confident handler, commands and queries to the plugin
that offers them, metrics and reports to analytics providers; every answer is
checked against its model. The same object serves the
:class:`~acp_plugins.runtime.context.HostServices` a plugin's context asks for,
so a plugin's request goes through exactly the paths host code's requests do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from acp_plugins.audit import AuditLog
from acp_plugins.errors import (
    AcpPluginsError,
    PermissionDenied,
    PluginNotActive,
    PluginNotFound,
    UnknownCommand,
    UnknownDataSource,
)
from acp_plugins.loading.interfaces import Interface
from acp_plugins.loading.permissions import Permission
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
from acp_plugins.runtime.calls import CallGuard, invalid_return
from acp_plugins.runtime.catalog import PluginCatalog
from acp_plugins.runtime.commands import CommandEntry, CommandRegistry, parse_arguments
from acp_plugins.runtime.context import PluginContext, json_data
from acp_plugins.runtime.data_sources import DataSourceRegistry
from acp_plugins.runtime.event_sink import EventSink
from acp_plugins.runtime.figures import PluginFigures
from acp_plugins.runtime.lifecycle import PluginState
from acp_plugins.runtime.on_demand import OnDemand
from acp_plugins.runtime.record import PluginRecord
from acp_plugins.runtime.reports import check_report_format
from acp_plugins.runtime.returns import expect, expect_list
from acp_plugins.runtime.routing import MessageRouter, RoutedMessage
from acp_plugins.runtime.subscriptions import FeedToken, PluginFeeds
from acp_plugins.runtime.unavailable import why_unavailable
from acp_plugins.runtime.usage import OTHER, UsageCounts

__all__ = ["Dispatcher"]

_Found = TypeVar("_Found")

logger = logging.getLogger(__name__)


class Dispatcher:
    """Calls active plugins by what they offer: messages, commands, data and analytics."""

    def __init__(
        self,
        *,
        catalog: PluginCatalog,
        guard: CallGuard,
        router: MessageRouter,
        commands: CommandRegistry,
        sources: DataSourceRegistry,
        audit: AuditLog,
        on_demand: OnDemand | None = None,
        events: EventSink | None = None,
        feeds: PluginFeeds | None = None,
        usage: UsageCounts | None = None,
        figures: PluginFigures | None = None,
    ) -> None:
        #: Plugins' own figures (``context.record_metric``).
        self.figures = figures or PluginFigures()
        self.catalog = catalog
        #: What the host was asked, counted (``None``: the host's telemetry is off).
        self.usage = usage
        #: Plugins' subscriptions to the bus (``None``: a host without one).
        self.feeds = feeds
        self.on_demand = on_demand
        #: Told of each message routed and command run: the event bus.
        self.events = events
        self.guard = guard
        self.router = router
        self.commands = commands
        self.sources = sources
        self.audit = audit

    async def send(self, message: Message) -> RoutedMessage:
        """Route ``message`` to the most confident active handler and return its answer."""
        if self.on_demand is not None and self.on_demand.pending:
            await self.on_demand.for_message(message.type)
        routed = await self.router.route(message, _context_of)
        if (usage := self.usage) is not None:  # inline: it runs for every message
            kind = message.type
            label = kind if self.router.declares(kind) else OTHER
            counts = usage.messages
            counts[label] = counts.get(label, 0) + 1
        if not routed.handled:
            hint = why_unavailable(self.catalog, Interface.MESSAGE_HANDLER)
            routed.response.content += hint
        if self.events is not None and self.events.listening:
            self.events.publish(
                "plugin:message",
                {
                    "from": message.sender,
                    "to": routed.plugin_id,
                    "type": message.type,
                    "content": message.content,
                },
            )
        return routed

    async def run_command(self, name: str, args: Sequence[str] = ()) -> CommandResult:
        """Run a command (plain name or ``plugin_id:command``) after parsing its arguments.

        ``args`` is a command line (positional arguments and ``--options``); the plugin
        gets the positional ones as ``args`` and everything, converted, as ``params``.
        """
        if self.on_demand is not None and self.on_demand.pending:
            await self.on_demand.for_command(name)
        try:
            record, definition = await self._resolve_command(name)
        except UnknownCommand as error:
            owner = name.rpartition(":")[0] or None
            hint = why_unavailable(self.catalog, Interface.COMMAND_HANDLER, owner)
            raise UnknownCommand(error.message + hint) from None
        if self.usage is not None:
            self.usage.count("commands", f"{record.plugin_id}:{definition.name}")
        parsed = parse_arguments(record.plugin_id, definition, args)
        kwargs = {"command": definition.name, "args": parsed.args, "params": parsed.params}
        result = await self.guard.call(
            record, "execute_command", {**kwargs, "context": _context_of(record)}
        )
        checked = expect(record, "execute_command", result, CommandResult)
        if self.events is not None and self.events.listening:
            self.events.publish(
                "plugin:command",
                {
                    "plugin_id": record.plugin_id,
                    "command": definition.name,
                    "args": list(parsed.args),
                    "result": checked.model_dump(mode="json"),
                },
            )
        return checked

    async def _resolve_command(self, name: str) -> tuple[PluginRecord, CommandDefinition]:
        return await self._resolved(self.commands.resolve, name, Interface.COMMAND_HANDLER)

    async def _resolve_source(self, source: str) -> tuple[PluginRecord, DataSourceDefinition]:
        return await self._resolved(self.sources.resolve, source, Interface.DATA_PROVIDER)

    async def _resolved(
        self, resolve: Callable[[str], _Found], name: str, interface: Interface
    ) -> _Found:
        """``resolve(name)``; a name no waiting plugin declared first starts them all.

        The error and its suggestions then name every command (or source) there is.
        """
        try:
            return resolve(name)
        except (UnknownCommand, UnknownDataSource):
            if self.on_demand is None or not self.on_demand.pending:
                raise
        await self.on_demand.for_interface(interface)
        return resolve(name)

    def command_entries(self) -> list[CommandEntry]:
        """Every command of every active plugin."""
        return self.commands.entries()

    async def query(self, source: str, query: DataQuery | None = None) -> DataResult:
        """Query a data source (plain id or ``plugin_id:source_id``) of an active plugin."""
        if self.on_demand is not None and self.on_demand.pending:
            await self.on_demand.for_source(source)
        try:
            record, definition = await self._resolve_source(source)
        except UnknownDataSource as error:
            owner = source.rpartition(":")[0] or None
            hint = why_unavailable(self.catalog, Interface.DATA_PROVIDER, owner)
            raise UnknownDataSource(error.message + hint) from None
        if self.usage is not None:
            self.usage.count("queries", f"{record.plugin_id}:{definition.source_id}")
        result = await self.guard.call(
            record,
            "query_data",
            {"source_id": definition.source_id, "query": query or DataQuery()},
        )
        return expect(record, "query_data", result, DataResult)

    def data_sources(self) -> list[DataSourceDefinition]:
        """Every data source of every active plugin."""
        return self.sources.definitions()

    def analytics_providers(self) -> list[PluginRecord]:
        """Active plugins that collect metrics."""
        return [
            r for r in self.catalog.active() if r.handle and r.handle.implements("collect_metrics")
        ]

    async def metric_definitions(self) -> dict[str, list[MetricDefinition]]:
        """Plugin id -> the metrics it offers, for every active analytics provider."""
        if self.on_demand is not None and self.on_demand.pending:
            await self.on_demand.for_interface(Interface.ANALYTICS_PROVIDER)
        found: dict[str, list[MetricDefinition]] = {}
        for record in self.analytics_providers():
            result = await self.guard.call(record, "get_metrics", {})
            found[record.plugin_id] = expect_list(record, "get_metrics", result, MetricDefinition)
        return found

    async def collect_metrics(self, plugin_id: str, time_range: TimeRange) -> MetricsData:
        """Collect the metrics of one analytics provider over ``time_range``."""
        if self.on_demand is not None and self.on_demand.pending:
            await self.on_demand.for_plugin(plugin_id)
        record = self._active_with(plugin_id, "collect_metrics", Interface.ANALYTICS_PROVIDER)
        result = await self.guard.call(record, "collect_metrics", {"time_range": time_range})
        data = expect(record, "collect_metrics", result, MetricsData)
        return data.model_copy(update={"source": plugin_id})

    async def report(
        self, plugin_id: str, format: str = "markdown", time_range: TimeRange | None = None
    ) -> Report:
        """Collect one provider's metrics and have it render them as a report in ``format``
        (one of :data:`~acp_plugins.runtime.reports.REPORT_FORMATS`: another is refused
        before the plugin is asked)."""
        check_report_format(format)
        window = time_range or TimeRange.last(timedelta(days=7))
        metrics = await self.collect_metrics(plugin_id, window)
        record = self.catalog.records[plugin_id]
        result = await self.guard.call(
            record, "generate_report", {"metrics": metrics, "format": format}
        )
        return expect(record, "generate_report", result, Report)

    def _active_with(self, plugin_id: str, hook: str, interface: Interface) -> PluginRecord:
        record = self.catalog.record(plugin_id)
        if record.state is not PluginState.ACTIVE:
            raise PluginNotActive(
                f"'{plugin_id}' is {record.state.value}, not active"
                + (f": {record.reason}" if record.reason else ""),
                plugin_id=plugin_id,
            )
        if record.handle is None or not record.handle.implements(hook):
            raise PluginNotActive(f"'{plugin_id}' is not an {interface.value}", plugin_id=plugin_id)
        return record

    # -- HostServices: what contexts may ask of the host ------------------------

    # ``caller`` is bound by the host to the context (and, for a worker, to its
    # channel): a plugin cannot name another one as itself.

    async def query_data(self, caller: str, source_id: str, query: DataQuery) -> DataResult:
        logger.debug("%s queries %s", caller, source_id)
        return await self.query(self._of_dependency(caller, source_id, "data_sources"), query)

    async def send_message(self, caller: str, message: Message) -> MessageResponse:
        """Route a plugin's message; its sender is the plugin, whatever it wrote there."""
        logger.debug("%s sends a %s message", caller, message.type)
        return (await self.send(message.model_copy(update={"sender": caller}))).response

    async def run_command_for(
        self, caller: str, command: str, args: Sequence[str]
    ) -> CommandResult:
        logger.debug("%s runs %s", caller, command)
        return await self.run_command(self._of_dependency(caller, command, "commands"), args)

    def _of_dependency(self, caller: str, name: str, offered: str) -> str:
        """A plain name as the caller's dependencies offer it, before anyone else's.

        A plugin that depends on ``store`` and asks for source ``events`` means
        ``store:events``, even if another plugin offers an ``events`` too.
        """
        record = self.catalog.records.get(caller)
        if ":" in name or record is None or record.manifest is None:
            return name
        for dependency in sorted(record.manifest.plugin_dependencies()):
            other = self.catalog.records.get(dependency)
            if other is None or other.state is not PluginState.ACTIVE:
                continue
            names = (
                {s.source_id for s in other.data_sources}
                if offered == "data_sources"
                else set(other.commands)
            )
            if name in names:
                return f"{dependency}:{name}"
        return name

    async def send_to_plugin(self, caller: str, target: str, payload: Any) -> Any:
        """Deliver ``payload`` from ``caller`` to ``target``'s ``on_plugin_message``; its answer.

        Payload and answer must be JSON data, so that a message means the same
        whether either plugin runs in-process or isolated.
        """
        payload = json_data(payload, f"'{caller}' sent plugin '{target}' a payload", caller)
        if self.on_demand is not None and self.on_demand.pending:
            await self.on_demand.for_plugin(target)
        record = self.catalog.records.get(target)
        if record is None:
            raise PluginNotFound(
                f"'{caller}' sent a message to plugin '{target}', which is not installed",
                plugin_id=target,
            )
        if record.state is not PluginState.ACTIVE:
            raise PluginNotActive(
                f"'{caller}' sent a message to plugin '{target}', which is "
                f"{record.state.value}, not active"
                + (f": {record.reason}" if record.reason else ""),
                plugin_id=target,
            )
        if Permission.READ_MESSAGING not in record.granted:
            operation = f"receive a message from plugin '{caller}'"
            self.permission_denied(target, Permission.READ_MESSAGING.value, operation)
            raise PermissionDenied(target, Permission.READ_MESSAGING.value, operation)
        if record.handle is None or not record.handle.implements("on_plugin_message"):
            raise PluginNotActive(
                f"'{caller}' sent a message to plugin '{target}', which takes none "
                "(it implements no on_plugin_message hook)",
                plugin_id=target,
            )
        if self.events is not None and self.events.listening:
            self.events.publish(
                "plugin:message", {"from": caller, "to": target, "content": payload}
            )
        answer = await self.guard.call(
            record, "on_plugin_message", {"sender": caller, "payload": payload}
        )
        try:
            return json_data(answer, f"'{target}' answered '{caller}' with", target)
        except AcpPluginsError as error:
            raise invalid_return(
                record, "on_plugin_message", "an answer that is not JSON data"
            ) from error

    def subscribe(
        self, owner: PluginContext, pattern: str, handler: Callable[[Any], Any]
    ) -> object:
        return self._feeds(owner.plugin_id).checked_subscribe(
            owner.plugin_id, owner, pattern, handler
        )

    def unsubscribe(self, token: object) -> None:
        if self.feeds is not None and isinstance(token, FeedToken):
            self.feeds.close(token)

    def publish_event(self, caller: str, topic: str, data: Any) -> int:
        return self._feeds(caller).publish(caller, topic, data)

    def topic_rules(self) -> dict[str, dict[str, list[str]]]:
        return self.feeds.topic_rules() if self.feeds is not None else {}

    def check_topic(self, caller: str, pattern: str, action: str) -> None:
        self._feeds(caller).check(caller, pattern, action)

    def _feeds(self, caller: str) -> PluginFeeds:
        if self.feeds is None:
            raise AcpPluginsError("this host has no event bus", plugin_id=caller)
        return self.feeds

    def record_metric(self, caller: str, name: str, value: object) -> None:
        self.figures.record(caller, name, value)

    def permission_denied(self, caller: str, permission: str, operation: str) -> None:
        self.audit.record(caller, "deny", "denied", permission=permission, detail=operation)


def _context_of(record: PluginRecord) -> PluginContext:
    context = record.context
    if context is None:  # routing tables hold active plugins only, and those have one
        raise PluginNotActive(f"'{record.plugin_id}' has no context", plugin_id=record.plugin_id)
    return context
