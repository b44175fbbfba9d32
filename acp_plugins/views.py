"""What a host answers about itself, as JSON-ready values, for the CLI and the server alike.

The command line's ``--json`` output and the server's REST answers are the same
documents: :class:`HostViews` builds them once, over a :class:`PluginHost`, and
both print or serve what it returns. A CLI command run with ``--server`` gets the
document from the server's route instead and prints it the same way, so its output
and exit status cannot drift from a local run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from acp_plugins.audit import read_audit_log
from acp_plugins.host import PluginHost
from acp_plugins.loading.interfaces import Interface
from acp_plugins.models import DataQuery, TimeRange

__all__ = ["HostViews", "Views", "audit_page"]


class Views(Protocol):
    """What the CLI reads of a host: a local one (:class:`HostViews`) or a server's."""

    async def plugin_info(self, plugin_id: str) -> dict[str, Any]: ...
    async def commands(self) -> list[dict[str, Any]]: ...
    async def command(self, name: str) -> dict[str, Any]: ...
    async def run_command(self, name: str, args: Sequence[str]) -> dict[str, Any]: ...
    async def sources(self) -> list[dict[str, Any]]: ...
    async def query(self, source: str, query: DataQuery | None) -> dict[str, Any]: ...
    async def reports(
        self, plugin_id: str | None, format: str, window: TimeRange
    ) -> list[dict[str, Any]]: ...
    async def metric_definitions(self) -> dict[str, list[dict[str, Any]]]: ...
    async def config_schema(self, plugin_id: str) -> dict[str, Any]: ...


class HostViews:
    """JSON-ready views of one host: plugin detail, commands, sources, reports, metrics."""

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    async def plugin_info(self, plugin_id: str) -> dict[str, Any]:
        """Everything known of a plugin once started (``acp-plugins info ID``)."""
        host = self.host
        await host.start_plugin(plugin_id)  # what it is once started: its layers, its pid
        record = host.record(plugin_id)
        manifest = record.manifest
        info = record.to_dict()
        info.update(
            author=manifest.author if manifest else None,
            license=manifest.license if manifest else None,
            homepage=str(manifest.homepage) if manifest and manifest.homepage else None,
            distribution_version=record.distribution_version,
            subscriptions=host.feeds.subscriptions(record.plugin_id),
            settings=[
                {"path": path, "value": value, "layer": origin.layer.value,
                 "source": origin.source}
                for path, value, origin in (
                    record.resolved_config.explain() if record.resolved_config else ()
                )
            ],
        )  # fmt: skip
        return info

    async def commands(self) -> list[dict[str, Any]]:
        """Every command of every active plugin (``acp-plugins commands``)."""
        await self.host.start_waiting(Interface.COMMAND_HANDLER)
        conflicts = self.host.commands.conflicts
        return [
            {"name": e.definition.name, "qualified_name": e.qualified_name,
             "plugin_id": e.plugin_id, "usage": e.definition.usage,
             "description": e.definition.description, "conflict": e.definition.name in conflicts}
            for e in self.host.command_entries()
        ]  # fmt: skip

    async def command(self, name: str) -> dict[str, Any]:
        """One command's definition and its plugin (``acp-plugins run NAME --help``)."""
        if self.host.on_demand is not None:
            await self.host.on_demand.for_command(name)
        record, definition = self.host.commands.resolve(name)
        return {"plugin_id": record.plugin_id, "usage": definition.usage,
                **definition.model_dump(mode="json")}  # fmt: skip

    async def run_command(self, name: str, args: Sequence[str]) -> dict[str, Any]:
        """Run a command; its result and the plugin that ran it (``acp-plugins run``)."""
        result = await self.host.run_command(name, args)
        record, _ = self.host.commands.resolve(name)
        return {"plugin_id": record.plugin_id, **result.model_dump(mode="json")}

    async def sources(self) -> list[dict[str, Any]]:
        """Every data source of every active plugin and who offers it (``acp-plugins sources``)."""
        await self.host.start_waiting(Interface.DATA_PROVIDER)
        owners = self.host.sources.owners()
        return [
            {**source.model_dump(mode="json"), "plugin_ids": owners.get(source.source_id, [])}
            for source in self.host.data_sources()
        ]

    async def query(self, source: str, query: DataQuery | None) -> dict[str, Any]:
        """Rows of a data source (``acp-plugins query``)."""
        return (await self.host.query(source, query)).model_dump(mode="json")

    async def reports(
        self, plugin_id: str | None, format: str, window: TimeRange
    ) -> list[dict[str, Any]]:
        """One analytics plugin's report, or every active one's (``acp-plugins report``)."""
        host = self.host
        if plugin_id is None:
            await host.start_waiting(Interface.ANALYTICS_PROVIDER)
        else:
            await host.start_plugin(plugin_id)
        providers = [plugin_id] if plugin_id else [r.plugin_id for r in host.analytics_providers()]
        return [
            {"plugin_id": pid, **(await host.report(pid, format, window)).model_dump(mode="json")}
            for pid in providers
        ]

    async def metric_definitions(self) -> dict[str, list[dict[str, Any]]]:
        """The metrics each analytics plugin offers (``acp-plugins metrics``)."""
        found = await self.host.metric_definitions()
        return {pid: [m.model_dump(mode="json") for m in metrics] for pid, metrics in found.items()}

    async def config_schema(self, plugin_id: str) -> dict[str, Any]:
        """The JSON Schema of a plugin's settings, ``{}`` if it has none (``config schema``)."""
        return await self.host.config_schema(plugin_id)


def audit_page(
    path: Path | None,
    *,
    plugin_id: str | None = None,
    actions: Sequence[str] = (),
    offset: int = 0,
    limit: int | None = None,
    last: int | None = None,
) -> dict[str, Any]:
    """A page of the audit log at ``path``, filtered, oldest first; ``total`` counts all.

    ``last``: the page is the last ``last`` entries (``offset`` is then where they begin).
    """
    entries, unreadable = (
        read_audit_log(path, plugin_id=plugin_id, actions=actions) if path else ([], 0)
    )
    if last is not None:
        offset, limit = max(0, len(entries) - last), last
    page = entries[offset:] if limit is None else entries[offset : offset + limit]
    return {
        "entries": [entry.to_dict() for entry in page],
        "total": len(entries),
        "offset": offset,
        "limit": limit,
        "unreadable": unreadable,
        "path": str(path) if path else None,
    }
