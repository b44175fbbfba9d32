"""Lazy activation: a plugin that declares what it contributes is started on first use.

A manifest's ``contributes`` block (message types, command names, data source
ids; cf. VS Code's activation events and napari's npe2 contributions) lets the
host leave the plugin unstarted until a request needs it: a message of one of
its types, one of its commands, a query of one of its sources, or a request to
its interface as a whole (listing every command, every analytics provider). The
plugin is then started with its dependencies, in dependency order, once; a
plugin that fails to start is not tried again by later requests. At activation
what its hooks return must be exactly what it declared
(:func:`check_contributions`), or it fails to activate. Plugins that declare
nothing are started with the host, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence

from acp_plugins.errors import InterfaceMismatch
from acp_plugins.loading.interfaces import Interface
from acp_plugins.runtime.catalog import PluginCatalog
from acp_plugins.runtime.lifecycle import PluginState
from acp_plugins.runtime.record import PluginRecord

__all__ = ["OnDemand", "check_contributions", "declares_contributions"]


def declares_contributions(record: PluginRecord) -> bool:
    """Whether the plugin may wait for its first use (its manifest has ``contributes``)."""
    return record.manifest is not None and record.manifest.contributes is not None


def check_contributions(
    record: PluginRecord,
    message_types: Iterable[str],
    commands: Iterable[str],
    sources: Iterable[str],
) -> None:
    """Raise :class:`InterfaceMismatch` unless the plugin offers exactly what it declared."""
    declared = record.manifest.contributes if record.manifest is not None else None
    if declared is None:
        return
    problems = []
    for kind, promised, offered in (
        ("message types", set(declared.message_types), set(message_types)),
        ("commands", set(declared.commands), set(commands)),
        ("data sources", set(declared.data_sources), set(sources)),
    ):
        if promised - offered:
            problems.append(f"declares {kind} {_names(promised - offered)} it does not offer")
        if offered - promised:
            problems.append(f"offers {kind} {_names(offered - promised)} it does not declare")
    if problems:
        raise InterfaceMismatch(
            f"'{record.plugin_id}' does not match its manifest's contributes: "
            + "; ".join(problems)
            + " (list exactly what its hooks return in manifest.json)",
            plugin_id=record.plugin_id,
        )


def _names(names: set[str]) -> str:
    return ", ".join(repr(name) for name in sorted(names))


class OnDemand:
    """The plugins waiting for their first use, and starting those a request needs."""

    def __init__(
        self, catalog: PluginCatalog, start: Callable[[Sequence[str]], Awaitable[None]]
    ) -> None:
        self.catalog = catalog
        self._start = start
        #: Plugin ids that declared their contributions and have not been started.
        self.waiting: set[str] = set()
        self._lock = asyncio.Lock()
        #: Being started by a request: another request for one of them waits for it.
        self._starting: set[str] = set()

    @property
    def pending(self) -> bool:
        """Whether any plugin is still waiting or being started (else nothing to do)."""
        return bool(self.waiting or self._starting)

    def wait(self, plugin_ids: Iterable[str]) -> None:
        """Leave these plugins unstarted until a request needs one."""
        for plugin_id in list(plugin_ids):
            self.waiting.add(plugin_id)
            self.catalog.records[plugin_id].waiting = True

    def forget(self, plugin_id: str) -> None:
        """Stop waiting for a plugin that is no longer installed."""
        self.waiting.discard(plugin_id)

    async def for_message(self, message_type: str) -> None:
        """Start the waiting plugins that handle ``message_type`` (or every type)."""
        await self._wake(
            r.plugin_id
            for r in self._waiting()
            if message_type in _declared(r, "message_types") or "*" in _declared(r, "message_types")
        )

    async def for_command(self, name: str) -> None:
        """Start the plugin a command (``plugin_id:command`` or a plain name) needs."""
        await self._wake(self._owners(name, "commands"))

    async def for_source(self, source: str) -> None:
        """Start the plugin a data source (``plugin_id:source_id`` or a plain id) needs."""
        await self._wake(self._owners(source, "data_sources"))

    async def for_interface(self, interface: Interface | None) -> None:
        """Start every waiting plugin that declares ``interface`` (``None``: every one)."""
        await self._wake(
            r.plugin_id
            for r in self._waiting()
            if interface is None or (r.manifest is not None and interface in r.manifest.interfaces)
        )

    async def for_plugin(self, plugin_id: str) -> None:
        """Start one plugin by id, if it is waiting."""
        await self._wake([plugin_id])

    def _waiting(self) -> list[PluginRecord]:
        """Waiting plugins, and those being started (a request for one waits for its start)."""
        return [self.catalog.records[pid] for pid in sorted(self.waiting | self._starting)]

    def _owners(self, name: str, kind: str) -> list[str]:
        owner, _, plain = name.rpartition(":")
        return [
            r.plugin_id
            for r in self._waiting()
            if (not owner or owner == r.plugin_id) and plain in _declared(r, kind)
        ]

    async def _wake(self, plugin_ids: Iterable[str]) -> None:
        wanted = [pid for pid in plugin_ids if pid in self.waiting or pid in self._starting]
        if not wanted:
            return
        # one start at a time: a request for a plugin that another request is starting
        # waits here until that start is over, then finds it no longer waiting
        async with self._lock:
            wanted = still_discovered(self.catalog, [p for p in wanted if p in self.waiting])
            for plugin_id in wanted:  # with the dependencies that were waiting too
                self.waiting.discard(plugin_id)  # tried once: a failure is not retried
                self.catalog.records[plugin_id].waiting = False
            if wanted:
                self._starting.update(wanted)
                try:
                    await self._start(wanted)
                finally:
                    self._starting.difference_update(wanted)


def _declared(record: PluginRecord, kind: str) -> list[str]:
    contributes = record.manifest.contributes if record.manifest is not None else None
    return list(getattr(contributes, kind)) if contributes is not None else []


def still_discovered(catalog: PluginCatalog, plugin_ids: Iterable[str]) -> list[str]:
    """The ids, with their dependencies, that have not been started yet, in load order."""
    needed: set[str] = set()
    stack = list(plugin_ids)
    while stack:
        plugin_id = stack.pop()
        record = catalog.records.get(plugin_id)
        if plugin_id in needed or record is None or record.manifest is None:
            continue
        needed.add(plugin_id)
        stack.extend(record.manifest.plugin_dependencies())
    return [
        pid
        for pid in catalog.order
        if pid in needed and catalog.records[pid].state is PluginState.DISCOVERED
    ]
