"""The sqlite-store plugin's settings."""

from __future__ import annotations

from pydantic import Field

from acp_plugins import PluginSettings

DEFAULT_DATABASE = "events.sqlite3"


class SqliteStoreSettings(PluginSettings):
    """Settings of ``sqlite-store``: ``[plugins.sqlite-store]``, ``ACP_PLUGIN_SQLITE_STORE__*``."""

    database: str = Field(
        default=DEFAULT_DATABASE,
        min_length=1,
        description="The SQLite file; a relative path is taken from the plugin's data directory.",
    )
    seed_demo_data: bool = Field(
        default=True, description="Fill an empty database with the deterministic demo events."
    )
