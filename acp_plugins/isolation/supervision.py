"""Supervision: which handle a plugin runs behind, and what the host does when a worker fails.

:class:`WorkerSupervisor` is the host's
:class:`~acp_plugins.runtime.handle.HandleFactory`: a plugin the trust policy
trusts is imported in-process, every other one gets a worker of its own
(started together with the others when several start at once). It also hears
every worker's events: each goes to the audit log, failures go on the plugin's
record, and a worker that gave up (the circuit breaker of
:class:`~acp_plugins.isolation.worker_handle.WorkerHandle`) has its plugin
suspended with the reason.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from acp_plugins.audit import AuditLog
from acp_plugins.config.settings import plugin_data_dir
from acp_plugins.errors import AcpPluginsError
from acp_plugins.isolation.forking import Zygote
from acp_plugins.isolation.worker_handle import WorkerHandle
from acp_plugins.loading.distributions import dependency_modules
from acp_plugins.loading.trust import IsolationPolicy
from acp_plugins.runtime.catalog import PluginCatalog
from acp_plugins.runtime.handle import HookRegistry, InProcessHandle, PluginHandle
from acp_plugins.runtime.importing import import_plugin
from acp_plugins.runtime.lifecycle import PluginState
from acp_plugins.runtime.record import PluginFailure, PluginRecord

__all__ = ["WorkerSupervisor"]

#: Sandbox refusals audited one by one per plugin within each window of seconds.
_REFUSALS_LOGGED, _REFUSAL_WINDOW = 20, 10.0


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class WorkerSupervisor:
    """Opens each plugin's handle by the trust policy, and answers for its workers."""

    def __init__(
        self,
        *,
        catalog: PluginCatalog,
        policy: IsolationPolicy,
        audit: AuditLog,
        data_root: Path,
        suspend: Callable[[str], Awaitable[bool]],
        sync_in_thread: bool = False,
    ) -> None:
        self.catalog = catalog
        self.policy = policy
        self.audit = audit
        self.data_root = data_root
        self.sync_in_thread = sync_in_thread
        self._suspend = suspend
        self._registry = HookRegistry()
        self._background: set[asyncio.Task[Any]] = set()
        #: Per plugin: when its refusal window started, refusals audited and not.
        self._refusals: dict[str, tuple[float, int, int]] = {}
        #: Workers started ahead of their plugin's load (or why they did not start).
        self._prepared: dict[str, WorkerHandle | AcpPluginsError] = {}
        #: Forks the workers, once the first one starts (see :mod:`.forking`).
        self.zygote: Zygote | None = Zygote() if policy.zygote else None

    # -- HandleFactory --------------------------------------------------------------

    async def prepare(self, records: Sequence[PluginRecord]) -> None:
        """Start the workers of every isolated plugin among ``records``, one per CPU at a time.

        A worker's start is mostly its interpreter's: done concurrently, N isolated
        plugins start in about the time of one per CPU. More at once than there are
        CPUs would not start them sooner, only share the CPUs among more starts, and
        each worker's ``start_timeout`` would run out while it waits its turn: so at
        most one start per usable CPU runs, and a worker's timeout counts from its
        turn. Each plugin still loads, initializes and activates in dependency
        order; starting a worker only imports the plugin in its own process.
        """
        handles = {
            r.plugin_id: self._worker_handle(r)
            for r in records
            if not self.policy.is_trusted(r.plugin_id)
        }
        if len(handles) < 2:
            return
        turns = asyncio.Semaphore(usable_cpus())

        async def start(handle: WorkerHandle) -> None:
            async with turns:
                await handle.start()

        started = await asyncio.gather(*map(start, handles.values()), return_exceptions=True)
        for (plugin_id, handle), outcome in zip(handles.items(), started, strict=True):
            if isinstance(outcome, AcpPluginsError):
                self._prepared[plugin_id] = outcome
            elif isinstance(outcome, BaseException):
                handle.close()
            else:
                self._prepared[plugin_id] = handle

    async def open(self, record: PluginRecord) -> PluginHandle:
        """Import a trusted plugin, or start (or take the prepared) worker of an isolated one."""
        plugin_id = record.plugin_id
        if self.policy.is_trusted(plugin_id):
            return InProcessHandle(
                plugin_id,
                import_plugin(record),
                self._registry,
                sync_in_thread=self.sync_in_thread,
                generation=record.generation,
            )
        prepared = self._prepared.pop(plugin_id, None)
        if isinstance(prepared, AcpPluginsError):
            raise prepared
        if prepared is None:
            prepared = self._worker_handle(record)
            await prepared.start()
        return prepared

    def discard_prepared(self) -> None:
        for unused in self._prepared.values():
            if isinstance(unused, WorkerHandle):
                unused.close()
        self._prepared.clear()

    def _worker_handle(self, record: PluginRecord) -> WorkerHandle:
        assert record.manifest is not None
        own = record.entry_point.partition(":")[0].strip().partition(".")[0]
        return WorkerHandle(
            record.plugin_id,
            manifest=record.manifest,
            entry_point=record.entry_point,
            granted=record.granted,
            data_dir=plugin_data_dir(self.data_root, record.plugin_id),
            hidden=(self.data_root,),
            search_path=self.catalog.search_path,
            policy=self.policy,
            events=self,
            own_packages=frozenset({own}),
            code_dirs=(record.manifest_path.parent,) if record.manifest_path else (),
            dependency_modules=dependency_modules(record.distribution),
            zygote=self.zygote,
        )

    def close(self) -> None:
        """Stop the zygote (after the workers: a worker dies with it)."""
        if self.zygote is not None:
            self.zygote.stop()

    # -- WorkerEvents ---------------------------------------------------------------

    def worker_event(
        self, plugin_id: str, outcome: str, detail: str, *, failure: bool = False
    ) -> None:
        self.audit.record(plugin_id, "worker", outcome, detail=detail)
        record = self.catalog.records.get(plugin_id)
        if failure and record is not None:
            record.failures.append(PluginFailure("isolation", detail))

    def worker_layers(
        self, plugin_id: str, layers: Sequence[str], missing: Mapping[str, str]
    ) -> None:
        detail = ", ".join(layers)
        if missing:
            detail += "; missing: " + "; ".join(f"{k} ({v})" for k, v in missing.items())
        self.audit.record(plugin_id, "isolation", "partial" if missing else "ok", detail=detail)

    def sandbox_refused(self, plugin_id: str, event: str, message: str) -> None:
        # a worker may report refusals by the thousand: a few are audited one by one,
        # the rest of each window are counted and audited as one entry
        now = time.monotonic()
        started, logged, unlogged = self._refusals.get(plugin_id, (now, 0, 0))
        if now - started > _REFUSAL_WINDOW:
            if unlogged:
                detail = f"{unlogged} more refusals in {_REFUSAL_WINDOW:g} s, counted only"
                self.audit.record(plugin_id, "sandbox", "denied", detail=detail)
            started, logged, unlogged = now, 0, 0
        if logged < _REFUSALS_LOGGED:
            self.audit.record(plugin_id, "sandbox", "denied", detail=message)
            logged += 1
        else:
            if not unlogged:
                detail = f"more than {_REFUSALS_LOGGED} refusals in {_REFUSAL_WINDOW:g} s: "
                self.audit.record(plugin_id, "sandbox", "denied", detail=detail + "counting")
            unlogged += 1
        self._refusals[plugin_id] = (started, logged, unlogged)
        record = self.catalog.records.get(plugin_id)
        if record is not None:
            record.call_errors.append(PluginFailure("sandbox", message))

    def worker_gave_up(self, plugin_id: str, reason: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the host's loop is gone: nothing left to suspend it with
            self.catalog.records[plugin_id].fail("isolation", f"'{plugin_id}' worker {reason}")
            return
        task = loop.create_task(self._open_circuit(plugin_id, reason))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _open_circuit(self, plugin_id: str, reason: str) -> None:
        record = self.catalog.records[plugin_id]
        self.audit.record(plugin_id, "circuit", "open", detail=reason)
        if record.state is PluginState.ACTIVE:
            await self._suspend(plugin_id)
        record.fail("isolation", f"'{plugin_id}' was suspended: its worker {reason}")

    async def settle(self) -> None:
        """Wait for background work (suspending plugins whose workers gave up)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
