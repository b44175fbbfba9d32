"""The :class:`PluginContext`: a plugin's only way to reach the host.

A context is built for one plugin from the permissions it was granted. Each
operation that needs a permission checks it and refuses with
:class:`~acp_plugins.errors.PermissionDenied` naming the permission.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from acp_plugins.errors import AcpPluginsError, PermissionDenied
from acp_plugins.loading.permissions import Permission
from acp_plugins.topics import check_pattern, check_topic

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

__all__ = ["HostServices", "PluginContext", "topic_syntax_error"]

Handler = TypeVar("Handler", bound=Callable[..., Any])


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


def topic_syntax_error(caller: str, name: str, action: str) -> AcpPluginsError | None:
    """The error for a pattern (``subscribe``) or topic (``publish``) that is not one."""
    try:
        (check_pattern if action == "subscribe" else check_topic)(name)
    except ValueError as error:
        return AcpPluginsError(f"'{caller}' cannot {action}: {error}", plugin_id=caller)
    return None


class HostServices(Protocol):
    """What the host offers to contexts; every call names the plugin making it."""

    async def query_data(self, caller: str, source_id: str, query: DataQuery) -> DataResult: ...

    def data_sources(self) -> list[DataSourceDefinition]: ...

    async def send_message(self, caller: str, message: Message) -> MessageResponse: ...

    async def run_command_for(
        self, caller: str, command: str, args: Sequence[str]
    ) -> CommandResult: ...

    async def send_to_plugin(self, caller: str, target: str, payload: Any) -> Any: ...

    def subscribe(
        self, owner: PluginContext, pattern: str, handler: Callable[[Any], Any]
    ) -> object:
        """Deliver the events matching ``pattern`` to ``handler``; a token to unsubscribe."""

    def unsubscribe(self, token: object) -> None: ...

    def publish_event(self, caller: str, topic: str, data: Any) -> int: ...

    def topic_rules(self) -> dict[str, dict[str, list[str]]]: ...

    def check_topic(self, caller: str, pattern: str, action: str) -> None:
        """Raise (and audit) if ``caller`` may not ``action`` on ``pattern``."""

    def permission_denied(self, caller: str, permission: str, operation: str) -> None:
        """A context operation of ``caller`` was refused (the host audit-logs it)."""

    def record_metric(self, caller: str, name: str, value: object) -> None:
        """Add ``value`` to ``caller``'s own figure ``name`` (see :mod:`.figures`)."""


class PluginContext:
    """What a plugin receives in ``initialize``: its identity, settings and host services."""

    __slots__ = (
        "_data_dir",
        "_data_dir_made",
        "_feeds",
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
        self._feeds: list[object] = []

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

    def subscribe(self, pattern: str) -> Callable[[Handler], Handler]:
        """Decorator: call the handler with each event on a topic matching ``pattern``.

        ``@context.subscribe("user.*")`` on a function (sync or async) taking one
        :class:`~acp_plugins.events.bus.Event` (``.topic``, ``.data``, ``.publisher``,
        ``.sequence``, ``.at``). Events published from now on, once each, in the order
        they were published; needs ``read-messaging`` (and ``read-system-info`` for
        the host's own ``plugin:*`` topics); the host's policy may keep topics to
        some plugins. The subscription ends with the plugin instance.
        """
        self.require(Permission.READ_MESSAGING, f"subscribe to '{pattern}'")

        def register(handler: Handler) -> Handler:
            self.subscribe_handler(pattern, handler)
            return handler

        return register

    def subscribe_handler(self, pattern: str, handler: Callable[[Any], Any]) -> object:
        """:meth:`subscribe` without the decorator: the token that ends it (:meth:`unsubscribe`)."""
        self.require(Permission.READ_MESSAGING, f"subscribe to '{pattern}'")
        token = self._host.subscribe(self, pattern, handler)
        self._feeds.append(token)
        return token

    def unsubscribe(self, token: object) -> None:
        """End one subscription made by :meth:`subscribe_handler`."""
        if token in self._feeds:
            self._feeds.remove(token)
            self._host.unsubscribe(token)

    async def publish(self, topic: str, data: Any = None) -> int:
        """Publish ``data`` (JSON data) on ``topic``; how many subscriptions it reached.

        Needs ``write-messaging``; the ``plugin:`` topics are the host's own. The
        event's publisher is this plugin's id, set by the host.
        """
        self.require(Permission.WRITE_MESSAGING, f"publish on '{topic}'")
        what = f"'{self.plugin_id}' published on '{topic}' data"
        return self._host.publish_event(
            self.plugin_id, topic, json_data(data, what, self.plugin_id)
        )

    def record_metric(self, name: str, value: float) -> None:
        """Record ``value`` under this plugin's own metric ``name``.

        The host keeps each name's count, sum, lowest, highest and last value, stores
        them with its telemetry and exposes them to Prometheus as
        ``acp_plugin_metric{plugin, metric}``. ``name`` is a lowercase identifier, ``value``
        a finite number, and a plugin may use up to 100 names; anything else raises
        :class:`~acp_plugins.errors.AcpPluginsError` saying what is wrong. No permission
        is needed: a plugin records only its own figures.
        """
        self._host.record_metric(self.plugin_id, name, value)

    def check_topic(self, pattern: str, action: str) -> None:
        """Raise :class:`~acp_plugins.errors.PermissionDenied` (audited) if this plugin may
        not ``action`` (``subscribe``, ``publish``) on ``pattern``."""
        self._host.check_topic(self.plugin_id, pattern, action)

    def topic_rules(self) -> dict[str, dict[str, list[str]]]:
        """The host's per-topic grants (sent to an isolated plugin's worker with its context)."""
        return self._host.topic_rules()

    def close(self) -> None:
        """End this instance's subscriptions (the host calls it when the instance goes)."""
        for token in self._feeds:
            self._host.unsubscribe(token)
        self._feeds.clear()

    def __repr__(self) -> str:
        return f"<PluginContext {self.plugin_id}>"
