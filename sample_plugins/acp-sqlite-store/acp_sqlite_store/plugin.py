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
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from acp_plugins import (
    DataQuery,
    DataResult,
    DataSourceDefinition,
    Plugin,
    PluginConfig,
    hookimpl,
)
from acp_sqlite_store.store import SOURCES, EventStore

DEFAULT_DATABASE = "events.sqlite3"

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "database": {
            "type": "string",
            "minLength": 1,
            "description": "SQLite file; relative to the plugin's data directory.",
            "default": DEFAULT_DATABASE,
        },
        "seed_demo_data": {
            "type": "boolean",
            "description": "Fill an empty database with demo events.",
            "default": True,
        },
    },
    "additionalProperties": False,
}


def database_path(settings: Mapping[str, Any], data_dir: Path) -> Path:
    """Where the database lives according to ``settings``."""
    path = Path(str(settings.get("database") or DEFAULT_DATABASE)).expanduser()
    return path if path.is_absolute() else data_dir / path


class SqliteStorePlugin(Plugin):
    """Provides the data sources ``agent-events`` and ``agents``."""

    def __init__(self) -> None:
        self._store: EventStore | None = None

    def get_config_schema(self) -> dict[str, Any]:
        return CONFIG_SCHEMA

    def validate_config(self, config: PluginConfig) -> bool:
        settings = config.settings
        unknown = sorted(set(settings) - set(CONFIG_SCHEMA["properties"]))
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(CONFIG_SCHEMA['properties']))}"
            )
        database = settings.get("database")
        if database is not None and (not isinstance(database, str) or not database):
            raise ValueError(f"setting 'database' must be a non-empty path, not {database!r}")
        seed = settings.get("seed_demo_data", True)
        if not isinstance(seed, bool):
            raise ValueError(f"setting 'seed_demo_data' must be true or false, not {seed!r}")
        return True

    # The work is done in the on_* hooks: the base class's initialize, activate and
    # deactivate are plain functions, and these need to await worker threads.

    @hookimpl
    async def on_initialize(self) -> None:
        context = self.context
        store = EventStore(database_path(context.config, context.data_dir))
        await asyncio.to_thread(store.open)
        self._store = store
        if context.config.get("seed_demo_data", True):
            added = await asyncio.to_thread(store.seed_if_empty, datetime.now(timezone.utc))
            if added:
                context.logger.info("seeded %d demo events into %s", added, store.path)
        context.logger.info("serving agent events from %s", store.path)

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
