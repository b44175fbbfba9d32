"""The :class:`PluginContext`: a plugin's only way to reach the host.

A context is built for one plugin from the permissions it was granted. Each
operation that needs a permission checks it and refuses with
:class:`~acp_plugins.errors.PermissionDenied` naming the permission.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from acp_plugins.errors import AcpPluginsError, PermissionDenied
from acp_plugins.loading.permissions import Permission

if TYPE_CHECKING:
    from acp_plugins.loading.manifest import Manifest
    from acp_plugins.models import (
        CommandResult,
        DataQuery,
        DataResult,
        DataSourceDefinition,
        Message,
        MessageResponse,
    )

__all__ = ["HostServices", "PluginContext"]


def json_data(value: Any, what: str, plugin_id: str) -> Any:
    """``value`` as JSON data carries it (what a worker's frame would make of it).

    Models and other values pydantic can serialize become plain data, tuples and
    sets lists; NaN, the infinities and anything else that JSON cannot hold are
    refused, ``what`` starting the message.
    """
    from pydantic_core import to_jsonable_python

    try:
        return json.loads(json.dumps(to_jsonable_python(value), allow_nan=False))
    except (TypeError, ValueError) as error:
        raise AcpPluginsError(
            f"{what} that is not JSON data ({error})", plugin_id=plugin_id
        ) from None


class HostServices(Protocol):
    """What the host offers to contexts; every call names the plugin making it."""

    async def query_data(self, caller: str, source_id: str, query: DataQuery) -> DataResult: ...

    def data_sources(self) -> list[DataSourceDefinition]: ...

    async def send_message(self, caller: str, message: Message) -> MessageResponse: ...

    async def run_command_for(
        self, caller: str, command: str, args: Sequence[str]
    ) -> CommandResult: ...

    async def send_to_plugin(self, caller: str, target: str, payload: Any) -> Any: ...

    def permission_denied(self, caller: str, permission: str, operation: str) -> None:
        """A context operation of ``caller`` was refused (the host audit-logs it)."""


class PluginContext:
    """What a plugin receives in ``initialize``: its identity, settings and host services."""

    __slots__ = (
        "_data_dir",
        "_data_dir_made",
        "_host",
        "config",
        "logger",
        "manifest",
        "permissions",
        "plugin_id",
        "settings",
    )

    def __init__(
        self,
        *,
        manifest: Manifest,
        permissions: frozenset[Permission],
        config: Mapping[str, Any],
        data_dir: Path,
        host: HostServices,
        settings: Any = None,
    ) -> None:
        self.plugin_id: str = manifest.plugin_id
        self.manifest = manifest
        self.permissions = permissions
        #: The effective settings, read-only (replaced, not changed, when they change).
        self.config = config
        #: The validated settings model instance (``None`` for a plugin without a model).
        self.settings = settings
        self._data_dir = data_dir
        self._data_dir_made = False
        self.logger = logging.getLogger(f"acp_plugins.plugin.{manifest.plugin_id}")
        self._host = host

    @property
    def data_dir(self) -> Path:
        """A directory that belongs to this plugin alone, created when first asked for."""
        if not self._data_dir_made:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            self._data_dir_made = True
        return self._data_dir

    def has_permission(self, permission: Permission | str) -> bool:
        """Whether this plugin was granted ``permission``."""
        return Permission(permission) in self.permissions

    def require(self, permission: Permission, operation: str) -> None:
        """Raise :class:`PermissionDenied` unless ``permission`` was granted."""
        if permission not in self.permissions:
            self.logger.warning("denied: %s needs %s", operation, permission.value)
            self._host.permission_denied(self.plugin_id, permission.value, operation)
            raise PermissionDenied(self.plugin_id, permission.value, operation)

    async def query_data(self, source_id: str, query: DataQuery | None = None) -> DataResult:
        """Query a data source of any active plugin (needs ``read-data``)."""
        from acp_plugins.models import DataQuery

        self.require(Permission.READ_DATA, f"query data source '{source_id}'")
        return await self._host.query_data(self.plugin_id, source_id, query or DataQuery())

    def data_sources(self) -> list[DataSourceDefinition]:
        """Every data source currently offered by active plugins (needs ``read-data``)."""
        self.require(Permission.READ_DATA, "list data sources")
        return self._host.data_sources()

    async def send_message(self, message: Message) -> MessageResponse:
        """Route a message through the host like any other (needs ``write-messaging``)."""
        self.require(Permission.WRITE_MESSAGING, "send messages")
        return await self._host.send_message(self.plugin_id, message)

    async def run_command(self, command: str, args: Sequence[str] = ()) -> CommandResult:
        """Run another plugin's command (needs ``execute-commands``)."""
        self.require(Permission.EXECUTE_COMMANDS, f"run command '{command}'")
        return await self._host.run_command_for(self.plugin_id, command, args)

    async def send_to_plugin(self, target_id: str, payload: Any) -> Any:
        """Send ``payload`` (JSON data) to another plugin's ``on_plugin_message``; its answer.

        Needs ``write-messaging``; the target needs ``read-messaging``. The target
        learns this plugin's id as the sender, set by the host.
        """
        self.require(Permission.WRITE_MESSAGING, f"send a message to plugin '{target_id}'")
        what = f"'{self.plugin_id}' sent plugin '{target_id}' a payload"
        data = json_data(payload, what, self.plugin_id)
        return await self._host.send_to_plugin(self.plugin_id, target_id, data)

    def __repr__(self) -> str:
        return f"<PluginContext {self.plugin_id}>"
