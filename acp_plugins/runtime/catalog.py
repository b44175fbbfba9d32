"""The catalog: one record per discovered plugin, the load order, and who depends on whom.

Discovery, manifest validation, permission checks and dependency resolution all
happen here, before any plugin code runs; a plugin refused at any of them keeps
its record, with the reason, and never loads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from packaging.version import Version

from acp_plugins.audit import AuditLog
from acp_plugins.errors import AcpPluginsError, PermissionNotGranted, PluginNotFound
from acp_plugins.loading.discovery import Discovery, discover
from acp_plugins.loading.interfaces import INTERFACE_PERMISSIONS
from acp_plugins.loading.manifest import CORE_DEPENDENCY
from acp_plugins.loading.permissions import PermissionPolicy
from acp_plugins.loading.resolution import resolve
from acp_plugins.runtime.lifecycle import PluginState
from acp_plugins.runtime.record import PluginRecord

__all__ = ["LOADED_STATES", "PluginCatalog"]

_LOOKALIKE = re.compile(r"[-_.]")

#: The states in which a plugin's code is loaded.
LOADED_STATES = (
    PluginState.LOADED,
    PluginState.INITIALIZED,
    PluginState.ACTIVE,
    PluginState.SUSPENDED,
)


class PluginCatalog:
    """Every discovered plugin's record, by plugin id, and the order they load in."""

    def __init__(
        self,
        *,
        policy: PermissionPolicy,
        audit: AuditLog,
        core_version: Version,
        python: tuple[int, int],
        search_path: Sequence[str | Path] | None,
        disabled: Iterable[str] = (),
    ) -> None:
        self.policy = policy
        self.audit = audit
        self.core_version = core_version
        self.python = python
        self.search_path = list(search_path) if search_path is not None else None
        self.disabled = frozenset(disabled)
        self.records: dict[str, PluginRecord] = {}
        #: New records count calls into latency histograms (the host's telemetry is on).
        self.histograms = True
        self.order: list[str] = []
        #: Plugin id -> its place in :attr:`order` (only resolved plugins have one).
        self.position: dict[str, int] = {}
        #: Plugin id -> the resolved plugins that name it as a dependency.
        self._direct_dependents: dict[str, list[str]] = {}
        self.discovered = False

    def record(self, plugin_id: str) -> PluginRecord:
        """The record of ``plugin_id``; raises :class:`PluginNotFound`."""
        try:
            return self.records[plugin_id]
        except KeyError:
            known = ", ".join(sorted(self.records)) or "none"
            raise PluginNotFound(
                f"no plugin '{plugin_id}' is installed (installed: {known})", plugin_id=plugin_id
            ) from None

    def active(self) -> list[PluginRecord]:
        """Active plugins, in load order."""
        return [
            self.records[pid] for pid in self.order if self.records[pid].state is PluginState.ACTIVE
        ]

    def discover(self) -> list[PluginRecord]:
        """Find plugins, validate manifests and permissions, resolve dependencies.

        No plugin code is imported. Refused plugins stay Discovered with the reason.
        Discovering again is allowed only while no plugin is loaded.
        """
        loaded = [
            pid
            for pid, rec in self.records.items()
            if rec.state not in (PluginState.DISCOVERED, PluginState.UNLOADED)
        ]
        if loaded:
            raise AcpPluginsError(
                f"cannot discover again while plugins are loaded ({', '.join(sorted(loaded))}); "
                "stop the host first, or use host.rescan() to take in what was installed "
                "or removed since"
            )
        self.records = {}
        for item in discover(self.search_path):
            self._admit(item)
        self._refuse_lookalike_ids()
        manifests = {
            pid: rec.manifest
            for pid, rec in self.records.items()
            if rec.manifest is not None and rec.reason is None
        }
        refused = {pid: rec.reason for pid, rec in self.records.items() if rec.reason is not None}
        resolution = resolve(
            manifests, core_version=self.core_version, python=self.python, unavailable=refused
        )
        for pid, failure in resolution.failures.items():
            self.records[pid].fail("resolve", failure.message)
        self._set_order(list(resolution.order))
        self.discovered = True
        return list(self.records.values())

    def _refuse_lookalike_ids(self) -> None:
        """Refuse plugin ids that differ only by ``-``, ``_``, ``.`` or case.

        They would share an environment prefix (``ACP_PLUGIN_VICTIM_VAULT__``), so one
        plugin would receive the other's settings and secrets.
        """
        groups: dict[str, list[str]] = {}
        for plugin_id in self.records:
            groups.setdefault(_LOOKALIKE.sub("_", plugin_id.upper()), []).append(plugin_id)
        for ids in groups.values():
            if len(ids) < 2:
                continue
            names = " and ".join(f"'{plugin_id}'" for plugin_id in sorted(ids))
            for plugin_id in ids:
                self.records[plugin_id].fail(
                    "discover",
                    f"plugin ids {names} differ only by '-', '_', '.' or case, so they would "
                    "share settings and environment variables; neither is loaded until one "
                    "is renamed or uninstalled",
                )

    def _admit(self, item: Discovery) -> None:
        """Record one discovered plugin, refusing it if its manifest or permissions fail."""
        existing = self.records.get(item.plugin_id)
        if existing is not None and item.error is not None:
            existing.fail("discover", item.error.message)  # two distributions, one id: refuse both
            return
        self.records[item.plugin_id] = self.admission(item)

    def admission(self, item: Discovery) -> PluginRecord:
        """A new record for ``item``, refused (with the reason) if its manifest or permissions fail.

        The catalog is not changed: a reload checks a new version this way before
        anything of it runs.
        """
        record = PluginRecord(
            plugin_id=item.plugin_id,
            entry_point=item.entry_point,
            distribution=item.distribution,
            distribution_version=item.distribution_version,
            manifest_path=item.manifest_path,
            manifest=item.manifest,
            histograms=self.histograms,
        )
        if item.error is not None:
            record.fail("manifest", item.error.message)
            return record
        assert item.manifest is not None
        if item.plugin_id in self.disabled:
            record.fail("disabled", f"'{item.plugin_id}' is disabled in the host's settings")
            return record
        record.granted = self.policy.granted(item.plugin_id)
        needed = [
            f"{interface.value} needs permission '{INTERFACE_PERMISSIONS[interface].value}'"
            for interface in item.manifest.interfaces
            if interface in INTERFACE_PERMISSIONS
            and INTERFACE_PERMISSIONS[interface] not in item.manifest.permissions
        ]
        if needed:
            record.fail(
                "permissions",
                f"'{item.plugin_id}' declares {'; '.join(needed)}: add it to the manifest's "
                "permissions",
            )
            return record
        missing = self.policy.missing(item.plugin_id, item.manifest.permissions)
        if missing:
            error = PermissionNotGranted(item.plugin_id, [p.value for p in missing])
            record.fail("permissions", error.message)
            for permission in missing:
                self.audit.record(
                    item.plugin_id, "refuse", "denied", permission=permission.value,
                    detail=error.message,
                )  # fmt: skip
            return record
        requested = ",".join(p.value for p in item.manifest.permissions) or None
        self.audit.record(item.plugin_id, "grant", "allowed", permission=requested)
        return record

    def scan(self) -> dict[str, Discovery]:
        """What is installed now, by plugin id (no plugin code runs; the catalog is not changed)."""
        found: dict[str, Discovery] = {}
        for item in discover(self.search_path):
            if item.plugin_id in found and item.error is not None:
                found[item.plugin_id] = item  # one id, two distributions: the error wins
            else:
                found.setdefault(item.plugin_id, item)
        return found

    def resolution_with(self, replaced: Mapping[str, PluginRecord]) -> dict[str, str]:
        """Why plugins could not load if ``replaced`` took their ids' places (id -> why).

        Every plugin the catalog holds (with a manifest and no refusal) is resolved
        again with these records in place of their namesakes; only the ones that
        resolve now and would not then are named.
        """
        records = {**self.records, **replaced}
        manifests = {
            pid: rec.manifest
            for pid, rec in records.items()
            if rec.manifest is not None and (pid in replaced or pid in self.position)
        }
        refused = {pid: rec.reason for pid, rec in replaced.items() if rec.reason is not None}
        for pid in refused:
            manifests.pop(pid, None)
        resolution = resolve(
            manifests, core_version=self.core_version, python=self.python, unavailable=refused
        )
        return {
            pid: failure.message
            for pid, failure in resolution.failures.items()
            if pid in replaced or pid in self.position
        }

    def put(self, record: PluginRecord) -> None:
        """Hold ``record`` (a plugin installed since discovery, or a new version of one)."""
        self.records[record.plugin_id] = record
        self._reorder()

    def forget(self, plugin_id: str) -> None:
        """Drop the record of a plugin that is no longer installed (it must not be loaded)."""
        assert self.records[plugin_id].state not in LOADED_STATES
        del self.records[plugin_id]
        self._reorder()

    def _reorder(self) -> None:
        """Resolve the load order again; a plugin loaded keeps going, whatever it says now."""
        manifests = {
            pid: rec.manifest
            for pid, rec in self.records.items()
            if rec.manifest is not None
            and (
                rec.reason is None
                or rec.state in LOADED_STATES
                or pid in self.position
                or (rec.failures and rec.failures[-1].stage == "resolve")  # may resolve now
            )
        }
        refused = {
            pid: rec.reason
            for pid, rec in self.records.items()
            if rec.reason is not None and pid not in manifests
        }
        resolution = resolve(
            manifests, core_version=self.core_version, python=self.python, unavailable=refused
        )
        for pid, failure in resolution.failures.items():
            record = self.records[pid]
            if record.state not in LOADED_STATES and record.reason != failure.message:
                record.fail("resolve", failure.message)
        self._set_order(
            list(resolution.order)
            + [p for p in self.order if p in resolution.failures and p in self.records
               and self.records[p].state in LOADED_STATES]
        )  # fmt: skip

    def _set_order(self, order: list[str]) -> None:
        self.order = order
        self.position = {pid: index for index, pid in enumerate(order)}
        self._direct_dependents = {}
        for pid in order:
            manifest = self.records[pid].manifest
            for dependency in manifest.dependencies if manifest else ():
                if dependency != CORE_DEPENDENCY:
                    self._direct_dependents.setdefault(dependency, []).append(pid)

    def dependents(self, plugin_id: str, states: tuple[PluginState, ...]) -> list[str]:
        """Plugins in ``states`` that depend on ``plugin_id``, directly or not, dependents first."""
        found: set[str] = set()
        stack = [plugin_id]
        while stack:
            for dependent in self._direct_dependents.get(stack.pop(), ()):
                if dependent not in found:
                    found.add(dependent)
                    stack.append(dependent)
        return sorted(
            (pid for pid in found if self.records[pid].state in states),
            key=self.position.__getitem__,
            reverse=True,
        )

    def inactive_dependency(self, record: PluginRecord, needed: PluginState) -> str | None:
        """Why one of ``record``'s dependencies is not yet ``needed`` (``None``: all are)."""
        assert record.manifest is not None
        for dep in sorted(record.manifest.plugin_dependencies()):
            other = self.records.get(dep)
            if other is None:
                return f"'{record.plugin_id}' needs plugin '{dep}', which is not installed"
            good = other.state is needed or (
                needed is PluginState.LOADED
                and other.state in (PluginState.INITIALIZED, PluginState.ACTIVE)
            )
            if not good:
                why = f": {other.reason}" if other.reason else ""
                return (
                    f"'{record.plugin_id}' depends on '{dep}', which is {other.state.value} "
                    f"(needs {needed.value}){why}"
                )
        return None
