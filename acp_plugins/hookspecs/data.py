"""``IDataProvider``: plugins that provide data sources.

Source ids are global: the host routes each query to the plugin that declared
the source. Two plugins declaring one source id is a conflict; the source is
then reachable only as ``plugin_id:source_id``.
"""

# mypy: disable-error-code="empty-body"
from __future__ import annotations

from typing import TYPE_CHECKING

from acp_plugins.markers import hookspec

if TYPE_CHECKING:
    from acp_plugins.models import DataQuery, DataResult, DataSourceDefinition


@hookspec
def get_data_sources() -> list[DataSourceDefinition]:
    """Return the sources this plugin provides; asked once when it is activated."""


@hookspec
def query_data(source_id: str, query: DataQuery) -> DataResult:
    """Answer ``query`` against the source ``source_id`` (one of this plugin's)."""
