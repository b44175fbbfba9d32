"""The configuration service: resolve, apply, change and persist a running plugin's settings.

It merges a plugin's layers (:mod:`acp_plugins.config.layers`) with its runtime
overrides, validates them against the plugin's settings model (in the worker,
for an isolated plugin), puts the result in force on the record and the
context, and handles ``set``/``unset`` while the plugin runs: a change is
validated before it is saved, and rolled back if the plugin refuses it.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

from acp_plugins.audit import AuditLog
from acp_plugins.config.layers import (
    ConfigSources,
    PluginConfig,
    ResolvedConfig,
    plugin_env_prefix,
    portable_config_inputs,
    resolve_plugin_config,
)
from acp_plugins.config.overrides import OverrideStore
from acp_plugins.errors import AcpPluginsError, ConfigError, PluginNotActive
from acp_plugins.runtime.calls import CallGuard, call_lifecycle_hook, invalid_return
from acp_plugins.runtime.catalog import PluginCatalog
from acp_plugins.runtime.event_sink import EventSink
from acp_plugins.runtime.handle import as_isolated
from acp_plugins.runtime.lifecycle import PluginState
from acp_plugins.runtime.record import PluginRecord

__all__ = ["ConfigurationService"]


class ConfigurationService:
    """The settings of every plugin: what is in force, and changes to it while it runs."""

    def __init__(
        self,
        *,
        catalog: PluginCatalog,
        guard: CallGuard,
        sources: ConfigSources,
        overrides: OverrideStore,
        audit: AuditLog,
        disabled: Iterable[str] = (),
        events: EventSink | None = None,
    ) -> None:
        self.catalog = catalog
        #: Told of each change applied (``plugin:configured``): the event bus.
        self.events = events
        self.guard = guard
        self.sources = sources
        self.overrides = overrides
        self.audit = audit
        self.disabled = frozenset(disabled)
        self._changing = asyncio.Lock()

    def config_of(self, plugin_id: str) -> ResolvedConfig:
        """The effective configuration of an initialized plugin and where each value came from."""
        record = self.catalog.record(plugin_id)
        if record.resolved_config is None:
            raise PluginNotActive(
                f"'{plugin_id}' has no configuration in force ({record.state.value}"
                + (f": {record.reason}" if record.reason else "")
                + ")",
                plugin_id=plugin_id,
            )
        return record.resolved_config

    async def resolve(self, record: PluginRecord) -> ResolvedConfig | None:
        """Build and validate the plugin's configuration; ``None`` (recorded) if it is invalid."""
        try:
            return await self._resolve_with(record, self.overrides.get(record.plugin_id))
        except AcpPluginsError as error:
            record.fail("configure", error.message)
            return None
        except RecursionError:  # JSON in an environment variable, nested without end
            record.fail(
                "configure",
                f"a setting of '{record.plugin_id}' is nested too deeply to read (check its "
                f"{plugin_env_prefix(record.plugin_id)}* variables and config tables)",
            )
            return None
        except OSError as error:  # e.g. the overrides file cannot be read or set aside
            record.fail(
                "configure",
                f"cannot read the runtime overrides in {self.overrides.path}: {error}; "
                "fix the file's permissions or point overrides_file elsewhere",
            )
            return None

    async def change(
        self, plugin_id: str, path: str, value: Any, *, remove: bool
    ) -> ResolvedConfig:
        """Set (or with ``remove``, unset) a runtime override; audited, applied live."""
        what = f"{'unset' if remove else 'set'} {path}"  # never the value: it may be a secret
        try:
            resolved = await self._try_change(plugin_id, path, value, remove=remove)
        except ConfigError as error:
            self.audit.record(plugin_id, "config", "refused", detail=f"{what}: {error.summary}")
            raise
        self.audit.record(plugin_id, "config", "applied", detail=what)
        if self.events is not None and self.events.listening:  # the key, never the value
            action = "unset" if remove else "set"
            self.events.publish("plugin:configured", {"plugin_id": plugin_id, "key": path,
                                                      "action": action})  # fmt: skip
        return resolved

    async def _try_change(
        self, plugin_id: str, path: str, value: Any, *, remove: bool
    ) -> ResolvedConfig:
        record = self.catalog.record(plugin_id)
        current = self.config_of(plugin_id)
        async with self._changing:  # one change at a time in this process
            # The one change is applied to the entry as it is in the file now and validated
            # while the file is locked: a change another process made meanwhile is kept.
            with self.overrides.editing() as data:
                proposed = copy.deepcopy(data.get(plugin_id, {}))
                before = _get_path(proposed, path)
                if remove:
                    if not _remove_path(proposed, path):
                        raise ConfigError(
                            f"'{plugin_id}' has no runtime override of '{path}' to remove",
                            plugin_id=plugin_id,
                        )
                else:
                    _set_path(proposed, path, value)
                resolved = await self._resolve_with(record, proposed)  # ConfigError: no write
                _replace_entry(data, plugin_id, proposed)
            if await self._apply(record, resolved):
                return resolved
            with self.overrides.editing() as data:  # undo this change only
                entry = copy.deepcopy(data.get(plugin_id, {}))
                if before is _MISSING:
                    _remove_path(entry, path)
                else:
                    _set_path(entry, path, before)
                _replace_entry(data, plugin_id, entry)
        self.install(record, current)
        raise ConfigError(
            f"'{plugin_id}' refused the new configuration ({record.reason}); "
            "the previous one is in force again",
            plugin_id=plugin_id,
        )

    async def _apply(self, record: PluginRecord, resolved: ResolvedConfig) -> bool:
        self.install(record, resolved)
        if record.state not in (PluginState.INITIALIZED, PluginState.ACTIVE):
            return True
        config = self.plugin_config(record, resolved)
        reason = record.reason
        accepted = await call_lifecycle_hook(
            self.guard, record, "on_config_changed", {"config": config}, "configure"
        )
        if accepted:
            record.reason = reason
        return accepted

    def install(self, record: PluginRecord, resolved: ResolvedConfig) -> None:
        """Put ``resolved`` in force on the record and the plugin's context."""
        record.resolved_config = resolved
        record.config = self.plugin_config(record, resolved)
        context = record.context
        if context is not None:
            context.config = MappingProxyType(resolved.values)
            context.settings = resolved.settings

    def plugin_config(self, record: PluginRecord, resolved: ResolvedConfig) -> PluginConfig:
        """The spec's ``PluginConfig`` of a resolved configuration."""
        assert record.manifest is not None
        prefix = plugin_env_prefix(record.plugin_id)
        environ = self.sources.environ
        return PluginConfig(
            plugin_id=record.plugin_id,
            version=record.manifest.version,
            enabled=record.plugin_id not in self.disabled,
            settings=MappingProxyType(resolved.values),
            environment={k: v for k, v in environ.items() if k.upper().startswith(prefix)},
        )

    async def schema(self, plugin_id: str) -> dict[str, Any]:
        """The JSON Schema of a loaded plugin's settings (``{}`` when it declares none)."""
        record = self.catalog.record(plugin_id)
        if record.handle is None:
            raise PluginNotActive(
                f"'{plugin_id}' is {record.state.value}; only a loaded plugin can say "
                "what its settings are",
                plugin_id=plugin_id,
            )
        if not record.handle.implements("get_config_schema"):
            model = await self._settings_model(record)
            return model.model_json_schema() if model is not None else {}
        schema = await self.guard.call(record, "get_config_schema", {})
        if not isinstance(schema, dict):
            raise invalid_return(
                record, "get_config_schema", f"{type(schema).__name__}, not a JSON Schema object"
            )
        return schema

    async def _settings_model(self, record: PluginRecord) -> type[BaseModel] | None:
        if record.handle is None or not record.handle.implements("get_settings_model"):
            return None
        model = await self.guard.call(record, "get_settings_model", {})
        if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise invalid_return(
                record, "get_settings_model", f"{model!r}, not a pydantic model class or None"
            )
        return model

    async def _resolve_with(
        self, record: PluginRecord, runtime: Mapping[str, Any] | None
    ) -> ResolvedConfig:
        """Merge and validate the plugin's layers with ``runtime`` as its overrides.

        An isolated plugin's model is in its worker: the layers go there to be
        validated by the same code (:func:`~acp_plugins.config.layers.resolve_portable_config`).
        """
        isolated = as_isolated(record.handle)
        if isolated is not None:
            inputs = portable_config_inputs(record.plugin_id, self.sources, runtime)
            return await isolated.resolve_config(inputs, self.guard.timeout)
        model = await self._settings_model(record)
        return resolve_plugin_config(record.plugin_id, model, self.sources, runtime=runtime)


_MISSING: Any = object()


def _get_path(tree: dict[str, Any], path: str) -> Any:
    """A deep copy of the value at ``path``, or ``_MISSING``."""
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return copy.deepcopy(node)


def _set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        child = tree.get(part)
        if not isinstance(child, dict):
            child = tree[part] = {}
        tree = child
    tree[leaf] = value


def _remove_path(tree: dict[str, Any], path: str) -> bool:
    *parents, leaf = path.split(".")
    chain = [tree]
    for part in parents:
        child = chain[-1].get(part)
        if not isinstance(child, dict):
            return False
        chain.append(child)
    if leaf not in chain[-1]:
        return False
    del chain[-1][leaf]
    for parent, part in zip(reversed(chain[:-1]), reversed(parents), strict=True):
        if not parent[part]:
            del parent[part]  # prune tables left empty
    return True


def _replace_entry(data: dict[str, dict[str, Any]], plugin_id: str, entry: dict[str, Any]) -> None:
    if entry:
        data[plugin_id] = copy.deepcopy(entry)
    else:
        data.pop(plugin_id, None)
