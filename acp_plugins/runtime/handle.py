"""Plugin handles: the host's only way to call into a plugin.

Host code never holds a plugin object; it goes through the plugin's handle.
:class:`InProcessHandle` calls a pluggy-registered object in this process; an
isolated handle (a worker process) implements the same protocol, so the router,
the command registry and the data and analytics calls never know the
difference.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import time
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, cast

import pluggy
from pluggy import HookimplOpts

from acp_plugins.errors import PluginRegistrationError
from acp_plugins.hookspecs import SPEC_MODULES
from acp_plugins.markers import PROJECT_NAME

if TYPE_CHECKING:
    from acp_plugins.config.layers import ResolvedConfig
    from acp_plugins.models import DataSourceDefinition
    from acp_plugins.runtime.record import PluginRecord

__all__ = [
    "HandleFactory",
    "HookRegistry",
    "InProcessHandle",
    "IsolatedHandle",
    "PluginHandle",
    "as_isolated",
]

_IMPL_MARK = PROJECT_NAME + "_impl"


def _static_attribute(plugin: object, name: str) -> object:
    """``name`` of ``plugin`` as stored, without running a property or ``__getattr__``."""
    if isinstance(plugin, ModuleType):
        return vars(plugin).get(name)
    namespace = getattr(plugin, "__dict__", None)
    if isinstance(namespace, dict) and name in namespace:
        return namespace[name]
    for klass in (plugin if isinstance(plugin, type) else type(plugin)).__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


class _Shard(pluggy.PluginManager):
    """One pluggy manager holding the registrations of a few plugins.

    It finds a plugin's implementations without running any of the plugin's code
    (no property is evaluated) and without looking at private names, and tells
    each registration which hooks it added.
    """

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        for module in SPEC_MODULES:
            self.add_hookspecs(module)
        self._collected: list[str] | None = None

    def parse_hookimpl_opts(self, plugin: object, name: str) -> HookimplOpts | None:
        if name.startswith("_"):
            return None
        attribute = _static_attribute(plugin, name)
        if isinstance(attribute, (staticmethod, classmethod)):
            attribute = attribute.__func__
        options = getattr(attribute, _IMPL_MARK, None) if callable(attribute) else None
        if not isinstance(options, dict):
            return None
        if self._collected is not None:
            self._collected.append(options.get("specname") or name)
        return cast(HookimplOpts, options)

    def register_plugin(self, plugin: object, plugin_id: str) -> list[str]:
        self._collected = []
        try:
            self.register(plugin, name=plugin_id)
            return self._collected
        except pluggy.PluginValidationError:
            # pluggy < 1.7 records the name before it validates: leave nothing behind
            if self.get_plugin(plugin_id) is plugin:
                self.unregister(name=plugin_id)
            raise
        finally:
            self._collected = None


class HookRegistry:
    """Registers plugins' hook implementations with pluggy, which validates them.

    The host calls each plugin through its own handle, never through a pluggy
    broadcast, so registrations are spread over managers of at most
    :attr:`SHARD_SIZE` plugins: pluggy scans every implementation of a hook each
    time it adds one, which over hundreds of plugins in one manager costs time
    that grows with the square of their number.
    """

    SHARD_SIZE = 64

    def __init__(self) -> None:
        self._shards: list[_Shard] = []

    def register_plugin(
        self, plugin: object, plugin_id: str
    ) -> tuple[pluggy.PluginManager, list[str]]:
        """Register ``plugin`` as ``plugin_id``: its manager and the hook names it implements.

        Raises :class:`pluggy.PluginValidationError` when an implementation does
        not match its hook specification.
        """
        shard = next(
            (s for s in reversed(self._shards) if len(s.list_name_plugin()) < self.SHARD_SIZE),
            None,
        )
        if shard is None:
            shard = _Shard()
            self._shards.append(shard)
        return shard, shard.register_plugin(plugin, plugin_id)

    def hook_names(self) -> list[str]:
        """The names of every specified hook."""
        shard = self._shards[0] if self._shards else _Shard()
        return [name for name, caller in vars(shard.hook).items() if caller.has_spec()]


class PluginHandle(Protocol):
    """Calls into one plugin, wherever it runs."""

    plugin_id: str
    #: Whether the plugin runs outside the host's process (then it is an :class:`IsolatedHandle`).
    isolated: bool

    def implements(self, hook: str) -> bool:
        """Whether the plugin implements ``hook``."""
        ...

    @property
    def hooks(self) -> frozenset[str]:
        """Every hook the plugin implements."""
        ...

    def invoke(self, hook: str, kwargs: Mapping[str, Any]) -> Any:
        """Start a call: return its result, or an awaitable of it; raise what the plugin raises."""
        ...

    def close(self) -> None:
        """Forget the plugin (unregister it); the handle is unusable afterwards."""
        ...


class IsolatedHandle(PluginHandle, Protocol):
    """A plugin that runs elsewhere: it can die and be revived, and keeps copies of host state."""

    @property
    def alive(self) -> bool:
        """Whether the plugin's process is running and serving calls."""
        ...

    async def revive(self) -> None:
        """Start the plugin's process again, up to where it was before activation."""
        ...

    def update_sources(self, sources: Sequence[DataSourceDefinition]) -> None:
        """Hand the plugin the data sources of the active plugins (its copy of them)."""
        ...

    async def resolve_config(self, inputs: Mapping[str, Any], timeout: float) -> ResolvedConfig:
        """Validate the configuration layers where the plugin's settings model is."""
        ...

    def describe(self) -> dict[str, Any]:
        """How the plugin runs, for listings."""
        ...


def as_isolated(handle: PluginHandle | None) -> IsolatedHandle | None:
    """``handle`` as an :class:`IsolatedHandle` if it is one, else ``None``."""
    return cast("IsolatedHandle", handle) if handle is not None and handle.isolated else None


class HandleFactory(Protocol):
    """Opens the handle a plugin runs behind (in-process or isolated, by the trust policy)."""

    async def prepare(self, records: Sequence[PluginRecord]) -> None:
        """Get ready to open these plugins' handles (start their workers together)."""
        ...

    async def open(self, record: PluginRecord) -> PluginHandle:
        """Import or start the plugin; raises :class:`~acp_plugins.errors.AcpPluginsError`."""
        ...

    def discard_prepared(self) -> None:
        """Drop whatever :meth:`prepare` made that no plugin opened."""
        ...


class InProcessHandle:
    """A plugin object registered with the host's pluggy manager, called in-process.

    With ``sync_in_thread`` a plain (non-async) hook runs in a worker thread, so a
    hook that hangs can be abandoned at its timeout; otherwise plain hooks run
    inline, which is fastest but cannot be interrupted.
    """

    __slots__ = ("_impls", "_manager", "_object", "loaded_at", "plugin_id", "sync_in_thread")

    isolated = False

    def __init__(
        self,
        plugin_id: str,
        plugin_object: object,
        registry: HookRegistry,
        *,
        sync_in_thread: bool = False,
        generation: int = 0,
    ) -> None:
        self.plugin_id = plugin_id
        self.sync_in_thread = sync_in_thread
        self._object = plugin_object
        #: When the plugin's code was imported (what changed on disk since is stale).
        self.loaded_at = time.time()
        # a reloaded instance registers beside the one still serving until the switch
        name = plugin_id if not generation else f"{plugin_id}@{generation}"
        try:
            self._manager, hook_names = registry.register_plugin(plugin_object, name)
        except pluggy.PluginValidationError as error:
            raise PluginRegistrationError(
                f"'{plugin_id}' has an invalid hook implementation: "
                + "; ".join(line.strip() for line in str(error).splitlines() if line.strip()),
                plugin_id=plugin_id,
            ) from None
        except ValueError as error:
            raise PluginRegistrationError(
                f"'{plugin_id}' could not be registered: {error}", plugin_id=plugin_id
            ) from None
        self._impls: dict[str, tuple[Any, tuple[str, ...], bool]] = {}
        unknown = []
        for name in hook_names:
            caller = getattr(self._manager.hook, name)
            if caller.spec is None:
                unknown.append(name)
                continue
            # the newest implementation is normally last: search from the end
            for impl in reversed(caller.get_hookimpls()):
                if impl.plugin is plugin_object:
                    is_async = inspect.iscoroutinefunction(impl.function)
                    self._impls[name] = (impl.function, tuple(impl.argnames), is_async)
                    break
        if unknown:
            self._manager.unregister(plugin_object)
            known = registry.hook_names()
            hints = []
            for name in sorted(unknown):
                close = difflib.get_close_matches(name, known, n=1)
                hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
            raise PluginRegistrationError(
                f"'{plugin_id}' implements unknown hooks: {', '.join(hints)}",
                plugin_id=plugin_id,
            )

    @property
    def hooks(self) -> frozenset[str]:
        return frozenset(self._impls)

    @property
    def plugin_object(self) -> object:
        """The registered object (for hints about hooks it has but did not mark)."""
        return self._object

    def implements(self, hook: str) -> bool:
        return hook in self._impls

    def is_async(self, hook: str) -> bool:
        """Whether the plugin's implementation of ``hook`` is a coroutine function."""
        return self._impls[hook][2]

    def invoke(self, hook: str, kwargs: Mapping[str, Any]) -> Any:
        function, argnames, is_async = self._impls[hook]
        # the host passes exactly a hook's arguments; an implementation may take fewer
        arguments = kwargs if len(argnames) == len(kwargs) else {n: kwargs[n] for n in argnames}
        if self.sync_in_thread and not is_async:
            return asyncio.to_thread(function, **arguments)
        return function(**arguments)

    def close(self) -> None:
        if self._manager.is_registered(self._object):
            self._manager.unregister(self._object)
        self._impls.clear()

    def __repr__(self) -> str:
        return f"<InProcessHandle {self.plugin_id}>"
