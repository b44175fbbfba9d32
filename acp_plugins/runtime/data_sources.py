"""The data source registry: which active plugin owns which source id."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from acp_plugins.errors import DataSourceConflictError, UnknownDataSource
from acp_plugins.models import DataSourceDefinition
from acp_plugins.runtime.record import PluginRecord

__all__ = ["DataSourceRegistry"]


class DataSourceRegistry:
    """Routes a source id (plain, or ``plugin_id:source_id``) to its plugin."""

    __slots__ = ("_by_id", "_records")

    def __init__(self) -> None:
        self._by_id: dict[str, list[tuple[PluginRecord, DataSourceDefinition]]] = {}
        self._records: dict[str, PluginRecord] = {}

    def rebuild(self, records: Iterable[PluginRecord]) -> None:
        """Take the sources of ``records`` (the active data providers)."""
        self._by_id = {}
        self._records = {}
        for record in records:
            self.add(record)

    def add(self, record: PluginRecord) -> None:
        """Take the sources of one more plugin (one that has just become active)."""
        self._records[record.plugin_id] = record
        for source in record.data_sources:
            self._by_id.setdefault(source.source_id, []).append((record, source))

    def definitions(self) -> list[DataSourceDefinition]:
        """Every source of every active provider, by source id."""
        every = [source for owners in self._by_id.values() for _, source in owners]
        return sorted(every, key=lambda source: source.source_id)

    def owners(self) -> dict[str, list[str]]:
        """Source id -> the plugin ids that provide it (more than one is a conflict)."""
        return {
            source_id: sorted(record.plugin_id for record, _ in owners)
            for source_id, owners in sorted(self._by_id.items())
        }

    def resolve(self, name: str) -> tuple[PluginRecord, DataSourceDefinition]:
        """The plugin and definition of source ``name``."""
        plugin_id, sep, source_id = name.rpartition(":")
        if sep:
            record = self._records.get(plugin_id)
            match = [s for s in record.data_sources if s.source_id == source_id] if record else []
            if record is None or not match:
                raise UnknownDataSource(
                    f"no active plugin '{plugin_id}' provides data source '{source_id}'; "
                    "`acp-plugins sources` lists what is available"
                )
            return record, match[0]
        owners = self._by_id.get(name)
        if not owners:
            close = difflib.get_close_matches(name, list(self._by_id), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UnknownDataSource(
                f"no active plugin provides data source '{name}'; {hint}"
                "`acp-plugins sources` lists what is available"
            )
        if len(owners) > 1:
            choices = ", ".join(sorted(f"{record.plugin_id}:{name}" for record, _ in owners))
            raise DataSourceConflictError(
                f"data source '{name}' is provided by several plugins; name one of: {choices}"
            )
        return owners[0]
