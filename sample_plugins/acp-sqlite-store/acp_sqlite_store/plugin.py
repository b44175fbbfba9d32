"""The sqlite-store plugin: agent activity events served from a SQLite file.

Settings (all optional):

``database``
    Path of the SQLite file; relative paths are taken from the plugin's data
    directory. Default: ``<data dir>/events.sqlite3``.
``seed_demo_data``
    Whether to fill an empty database with the deterministic demo events
    (default ``true``).

The database is opened once the plugin is initialized (creating the schema),
closed when the plugin is suspended or unloaded and reopened when it is resumed. Database
work runs in a worker thread so the host's event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

from acp_plugins import (
    DataQuery,
    DataResult,
    DataSourceDefinition,
    Plugin,
    PluginConfig,
    hookimpl,
)
from acp_sqlite_store.config import SqliteStoreSettings
from acp_sqlite_store.store import SOURCES, EventStore


def database_path(settings: SqliteStoreSettings, data_dir: Path) -> Path:
    """Where the database lives according to ``settings``."""
    path = Path(settings.database).expanduser()
    return path if path.is_absolute() else data_dir / path


class SqliteStorePlugin(Plugin):
    """Provides the data sources ``agent-events`` and ``agents``."""

    settings_model = SqliteStoreSettings

    def __init__(self) -> None:
        self._store: EventStore | None = None

    # The work is done in the on_* hooks: the base class's initialize, activate and
    # deactivate are plain functions, and these need to await worker threads.

    @hookimpl
    async def on_initialize(self) -> None:
        self._store = await self._open(self.context.settings)

    async def _open(self, settings: SqliteStoreSettings) -> EventStore:
        context = self.context
        store = EventStore(database_path(settings, context.data_dir))
        await asyncio.to_thread(store.open)
        if settings.seed_demo_data:
            added = await asyncio.to_thread(store.seed_if_empty, datetime.now(timezone.utc))
            if added:
                context.logger.info("seeded %d demo events into %s", added, store.path)
        context.logger.info("serving agent events from %s", store.path)
        return store

    @hookimpl
    async def on_config_changed(self, config: PluginConfig) -> bool:
        """Move to another database file while serving; refuse if it cannot be opened."""
        del config  # self.context.settings already holds the new, validated settings
        settings: SqliteStoreSettings = self.context.settings
        wanted = database_path(settings, self.context.data_dir)
        if self._store is not None and self._store.path == wanted:
            return True
        try:
            store = await self._open(settings)
        except Exception as error:  # the old database goes on serving
            self.context.logger.warning("cannot open %s: %s", wanted, error)
            return False
        await self._close()
        self._store = store
        return True

    @hookimpl
    async def on_activate(self) -> None:
        if self._store is not None and not self._store.is_open:
            await asyncio.to_thread(self._store.open)  # resumed after a suspend

    @hookimpl
    async def on_suspend(self) -> None:
        await self._close()

    @hookimpl
    async def on_unload(self) -> None:
        await self._close()
        self._store = None

    async def _close(self) -> None:
        if self._store is not None:
            await asyncio.to_thread(self._store.close)

    @hookimpl
    async def get_data_sources(self) -> list[DataSourceDefinition]:
        return [source.definition for source in SOURCES.values()]

    @hookimpl
    async def query_data(self, source_id: str, query: DataQuery) -> DataResult:
        source = SOURCES.get(source_id)
        if source is None:  # the host only routes this plugin's own sources here
            raise ValueError(
                f"'sqlite-store' has no data source {source_id!r}; "
                f"it provides {', '.join(sorted(SOURCES))}"
            )
        if self._store is None:
            raise RuntimeError("'sqlite-store' is not initialized")
        rows, total = await asyncio.to_thread(self._store.query, source, query)
        return DataResult(source_id=source_id, rows=rows, total=total)
