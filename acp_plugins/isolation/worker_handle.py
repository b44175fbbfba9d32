"""The host's side of an isolated plugin: a handle whose plugin runs in a worker process.

:class:`WorkerHandle` implements the same :class:`~acp_plugins.runtime.handle.PluginHandle`
protocol as the in-process handle, so the router, the command registry and the
data and analytics calls cannot tell them apart. Behind it:

* the worker is started with an empty environment, ``-I`` (no user site, no
  ``PYTHON*`` variables), and, where the system allows, no-new-privs, no
  capabilities and a network namespace of its own;
* every call is a ``call`` frame; the plugin's context operations come back as
  ``context`` frames and run against the plugin's host-side
  :class:`~acp_plugins.runtime.context.PluginContext`, where permissions are checked;
* a worker that exits, is killed, writes a bad frame, runs out of memory or does
  not end a cancelled call within its grace is restarted after a backoff and
  replayed to where it was (on_discover ... activate); calls in flight fail with
  :class:`~acp_plugins.errors.WorkerError` saying why. After ``max_failures``
  failures within ``failure_window`` seconds the handle gives up and the host
  suspends the plugin (the circuit breaker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from acp_plugins.config.layers import ResolvedConfig
from acp_plugins.errors import (
    AcpPluginsError,
    PluginCallError,
    PluginImportError,
    WorkerError,
    WorkerProtocolError,
)
from acp_plugins.isolation.answers import answer_within, read_ready, resolved_config
from acp_plugins.isolation.cgroups import WorkerCgroup, cgroup_name
from acp_plugins.isolation.confinement import layer_refusal, prepare_confinement
from acp_plugins.isolation.cpu_governor import CpuGovernor
from acp_plugins.isolation.forking import Zygote
from acp_plugins.isolation.inbound import FrameBudget, WorkerReports
from acp_plugins.isolation.launch import (
    WorkerProcess,
    privilege_wrapper,
    sandbox_spec,
    spawn_worker,
)
from acp_plugins.isolation.pending import PendingCalls
from acp_plugins.isolation.protocol import (
    HEADER,
    WORKER_OPS,
    FrameReader,
    encode_frame,
    encode_value,
)
from acp_plugins.isolation.quota import DiskQuota, why_it_ended
from acp_plugins.isolation.relay import ContextRelay, encode_kwargs
from acp_plugins.isolation.restarts import FailureWindow, LifecycleReplay, WorkerEvents
from acp_plugins.loading.manifest import Manifest
from acp_plugins.loading.permissions import Permission
from acp_plugins.loading.trust import IsolationPolicy, WorkerLimits
from acp_plugins.models import DataSourceDefinition

__all__ = ["WorkerEvents", "WorkerHandle", "privilege_wrapper"]

logger = logging.getLogger(__name__)

#: Hooks whose callers do not wait for a restarting worker (they fail at once).
#: An event is not held for a new process either: its subscription ends with the old one.
_ANSWER_NOW = frozenset({"can_handle", "$event"})


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class WorkerHandle:
    """A plugin running in a worker process of its own, called over a socket."""

    isolated = True

    def __init__(
        self,
        plugin_id: str,
        *,
        manifest: Manifest,
        entry_point: str,
        granted: frozenset[Permission],
        data_dir: Path,
        search_path: Sequence[str | Path] | None,
        policy: IsolationPolicy,
        events: WorkerEvents,
        own_packages: frozenset[str],
        dependency_modules: frozenset[str] = frozenset(),
        code_dirs: Sequence[Path] = (),
        hidden: Sequence[Path] | None = None,
        zygote: Zygote | None = None,
    ) -> None:
        self.plugin_id = plugin_id
        self.manifest = manifest
        self.entry_point = entry_point
        self.granted = granted
        self.data_dir = data_dir
        self.search_path = [str(Path(p).resolve()) for p in search_path or ()]
        self.policy = policy
        self.limits: WorkerLimits = policy.limits_for(plugin_id)
        self.events = events
        self.own_packages = own_packages
        self.dependency_modules = dependency_modules
        #: Where the plugin's own code is (an editable install's source folder, say).
        self.code_dirs = [str(Path(d).resolve()) for d in code_dirs]
        #: Folders the worker must not see (the host's data root, by default the parent
        #: of the data directory) even if a folder it may read holds them.
        self.hidden = list(hidden) if hidden is not None else [data_dir.parent]
        #: The host's zygote, when workers are forked from one.
        self.zygote = zygote
        self.pid: int | None = None
        #: The isolation layers in force for the running worker, and why any is missing.
        self.layers: list[str] = []
        self.missing: dict[str, str] = {}
        self._cgroup: WorkerCgroup | None = None
        self._quota = DiskQuota(self.data_dir, self.limits.disk_mb, self._kill)
        self._read_only = False
        self.restarts = 0
        self.warnings: list[str] = []
        self._hooks: frozenset[str] = frozenset()
        self._process: WorkerProcess | None = None
        self._transport: asyncio.Transport | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._pending = PendingCalls(plugin_id)
        self._generation = 0
        self._alive = False
        self._closed = False
        self._last_reason = "the worker has not started"
        self._failures = FailureWindow(policy)
        self._restarting: asyncio.Task[None] | None = None
        self._replay = LifecycleReplay()
        self._relay = ContextRelay(plugin_id, self.limits.context_calls, self._call)
        self._reports = WorkerReports(plugin_id, granted, events)
        self._budget = FrameBudget(self.limits.frames_per_second)
        self._sources: list[Any] = []
        self.governor: CpuGovernor | None = None

    # -- the PluginHandle protocol -----------------------------------------------

    @property
    def hooks(self) -> frozenset[str]:
        return self._hooks

    def implements(self, hook: str) -> bool:
        return hook in self._hooks

    def invoke(self, hook: str, kwargs: Mapping[str, Any]) -> Any:
        return self._call(hook, kwargs)

    def close(self) -> None:
        """Stop the worker (politely, then by force) and forget it."""
        self._closed = True
        self._hooks = frozenset()
        self._relay.close_feeds()
        if self._restarting is not None:
            self._restarting.cancel()
        self._stop_process("the plugin was unloaded")

    @property
    def alive(self) -> bool:
        """Whether the worker is running and serving calls."""
        return self._alive

    async def revive(self) -> None:
        """Start a worker that gave up again, up to where it was before activation.

        Used when a suspended plugin is resumed; the failure count starts over.
        Raises :class:`PluginImportError` or :class:`PluginCallError`.
        """
        self._failures.clear()
        self._closed = False
        await self.start()
        await self._replay_lifecycle(("activate", "on_activate"))

    async def _replay_lifecycle(self, skip: tuple[str, ...] = ()) -> None:
        for hook, kwargs in self._replay.calls(self._hooks, skip):
            call = self._call(hook, kwargs, replaying=True)
            result = await asyncio.wait_for(call, self.limits.start_timeout)
            if result is False:
                raise PluginCallError(
                    f"'{self.plugin_id}' refused to restart: {hook} returned False",
                    plugin_id=self.plugin_id,
                    hook=hook,
                )

    # -- starting --------------------------------------------------------------

    async def start(self) -> None:
        """Start the worker and load the plugin in it; raises :class:`PluginImportError`."""
        try:
            await self._spawn()
        except (
            OSError,
            WorkerProtocolError,
            asyncio.IncompleteReadError,
            asyncio.TimeoutError,
        ) as error:
            if isinstance(error, asyncio.TimeoutError):
                self._kill(f"did not start within {self.limits.start_timeout:g} s")
            reason = await self._exit_reason() if self._process is not None else str(error)
            self._stop_process(reason)
            raise PluginImportError(
                f"the worker of '{self.plugin_id}' did not start: {reason}",
                plugin_id=self.plugin_id,
            ) from None

    async def _spawn(self) -> None:
        self._generation += 1
        generation = self._generation
        self._process = None  # a failure before the new one starts is not the old one's
        self._relay.close_feeds()  # a new process subscribes anew as it initializes
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._read_only = self._quota.over()
        spec, confinement, self._cgroup = prepare_confinement(
            sandbox_spec(
                self.plugin_id,
                granted=self.granted,
                requested=frozenset(self.manifest.permissions),
                data_dir=self.data_dir,
                read_roots=[*self.search_path, *self.code_dirs],
                own_packages=self.own_packages,
                dependency_modules=self.dependency_modules,
                policy=self.policy,
                data_read_only=self._read_only,
            ),
            policy=self.policy,
            limits=self.limits,
            cgroup_name=cgroup_name(self.plugin_id),
            hidden=self.hidden,
        )
        self.layers, self.missing = list(confinement.layers), dict(confinement.missing)
        self._refuse_missing_layers()
        if self.zygote is not None and confinement.view and await self.zygote.usable(confinement):
            self._process, parent = await self.zygote.fork(confinement)
        else:
            self._process, parent = spawn_worker(confinement.command, self.data_dir)
        self._budget = FrameBudget(self.limits.frames_per_second)
        self.pid = self._process.pid
        loop = asyncio.get_running_loop()
        handshake: asyncio.Future[dict[str, Any]] = loop.create_future()

        def on_frame(frame: dict[str, Any]) -> None:
            if handshake.done() or frame["op"] in ("log", "violation"):
                self._dispatch(frame)  # the start's logs and refusals come before 'ready'
            else:
                handshake.set_result(frame)

        def on_closed(error: BaseException | None) -> None:
            if not handshake.done():
                handshake.set_exception(error or asyncio.IncompleteReadError(b"", HEADER.size))
            else:
                self._channel_closed(generation, error)

        transport, _ = await loop.connect_accepted_socket(
            lambda: FrameReader(on_frame, on_closed), sock=parent
        )
        self._transport = transport
        self._write(
            {
                "op": "start",
                "spec": spec.to_dict(),
                "entry_point": self.entry_point,
                "code_dir": self.code_dirs[0] if self.code_dirs else None,
                "search_path": self.search_path,
                "manifest": self.manifest.model_dump(mode="json"),
            }
        )
        frame = await asyncio.wait_for(handshake, self.limits.start_timeout)
        try:
            ready = read_ready(self.plugin_id, frame)
        except PluginImportError as error:
            self._stop_process(error.message)
            raise
        self._hooks, self.layers = ready.hooks, self.layers + ready.layers
        self.missing.update(ready.missing)
        self._refuse_missing_layers()
        self.warnings = [f"no {layer}: {why}" for layer, why in self.missing.items()]
        for warning in self.warnings + ready.warnings:
            logger.warning("%s: %s", self.plugin_id, warning)
        self._alive = True
        self._send_sources()
        self._tasks = []
        kernel_cpu = self._cgroup is not None and self._cgroup.hold_cpu()
        if self.limits.cpu_share is not None and not kernel_cpu:  # the fallback: SIGSTOP
            self.governor = CpuGovernor.reporting(
                self._process.leaf_pid(), self.limits.cpu_share, self.limits.cpu_window,
                lambda detail: self.events.worker_event(self.plugin_id, "throttled", detail),
            )  # fmt: skip
            self._tasks.append(loop.create_task(self.governor.run()))
        if not self._read_only:
            self._tasks.append(loop.create_task(self._quota.run()))
        self.events.worker_event(self.plugin_id, "started", f"pid {self.pid}")
        self.events.worker_layers(self.plugin_id, self.layers, self.missing)

    def _refuse_missing_layers(self) -> None:
        refusal = layer_refusal(self.plugin_id, self.policy, self.missing)
        if refusal is not None:
            self._stop_process(refusal.message)
            raise refusal

    @property
    def worker_pid(self) -> int | None:
        """The pid of the worker's interpreter (``pid`` is that of its launcher)."""
        return self._process.leaf_pid() if self._process is not None and self._alive else None

    def _write(self, message: Mapping[str, Any]) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(encode_frame(message))

    def update_sources(self, sources: Sequence[DataSourceDefinition]) -> None:
        """Send the data sources of active plugins to a worker granted ``read-data``."""
        if Permission.READ_DATA in self.granted:
            self._sources = [encode_value(source) for source in sources]
            self._send_sources()

    def _send_sources(self) -> None:
        if self._sources:
            with contextlib.suppress(WorkerProtocolError, OSError, RuntimeError):
                self._write({"op": "sources", "value": self._sources})

    # -- calling ---------------------------------------------------------------

    async def _call(self, hook: str, kwargs: Mapping[str, Any], *, replaying: bool = False) -> Any:
        # While a restart runs (the new worker starting, then its lifecycle replayed), an
        # outside call waits for it: the plugin is not itself again until the replay ends.
        # Scoring a message is not worth waiting for: routing goes on without this plugin.
        restarting = self._restarting
        if not replaying and restarting is not None and not self._closed:
            if hook in _ANSWER_NOW:
                raise WorkerError(
                    f"'{self.plugin_id}' cannot answer {hook} now: its worker is restarting",
                    plugin_id=self.plugin_id,
                    hook=hook,
                )
            await asyncio.wait([restarting])  # not shield: a cancelled restart is no error here
        if not self._alive or self._transport is None:
            raise WorkerError(
                f"'{self.plugin_id}' cannot answer {hook}: its worker is down "
                f"({self._last_reason})",
                plugin_id=self.plugin_id,
                hook=hook,
            )
        if "context" in kwargs:
            self._relay.context = kwargs["context"]
        call_id, future = self._pending.open(hook)
        try:
            self._write(
                {"op": "call", "id": call_id, "hook": hook, "kwargs": encode_kwargs(kwargs)}
            )
            result = await future
        except asyncio.CancelledError:
            # cancelling this task cancels the future it waits on: no answer came
            if future.cancelled() or not future.done():
                self._cancel(call_id, hook)
            raise
        finally:
            self._pending.close(call_id)
        self._replay.remember(hook, kwargs, result)
        return result

    async def resolve_config(self, inputs: Mapping[str, Any], timeout: float) -> ResolvedConfig:
        """Have the worker validate the configuration layers (see :func:`resolved_config`)."""
        call = self._call("$resolve_config", {"inputs": inputs})
        return resolved_config(self.plugin_id, await answer_within(call, timeout, self.plugin_id))

    def _cancel(self, call_id: int, hook: str) -> None:
        if self._transport is None or not self._alive:
            return
        self._pending.cancelled.add(call_id)
        with contextlib.suppress(WorkerProtocolError, OSError, RuntimeError):
            self._write({"op": "cancel", "id": call_id})
        generation = self._generation
        asyncio.get_running_loop().call_later(
            self.limits.cancel_grace, self._check_hung, call_id, hook, generation
        )

    def _check_hung(self, call_id: int, hook: str, generation: int) -> None:
        if generation != self._generation or call_id not in self._pending.cancelled:
            return
        if self.governor is not None and self.governor.paused:
            asyncio.get_running_loop().call_later(
                self.limits.cancel_grace, self._check_hung, call_id, hook, generation
            )
            return
        self._kill(
            f"did not end {hook} within its timeout and {self.limits.cancel_grace:g} s of grace"
        )

    # -- reading the worker ------------------------------------------------------

    def _channel_closed(self, generation: int, error: BaseException | None) -> None:
        """The channel ended: the worker exited, or sent what this side cannot use.

        A worker this side stopped on purpose (a failed start, an unload) is not
        restarted: only one that was serving and ended on its own, or was killed.
        """
        if generation != self._generation or self._closed or not self._alive:
            return
        if error is not None and not isinstance(error, OSError):
            self._kill(f"broke the protocol ({error})")
        task = asyncio.ensure_future(self._died(generation))
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    def _dispatch(self, frame: dict[str, Any]) -> None:
        op = frame["op"]
        if op not in WORKER_OPS:
            raise WorkerProtocolError(f"unknown op {op!r}")
        flood = self._budget.spend()
        if flood is not None:
            self._kill(flood)
            raise WorkerProtocolError(flood)
        if op in ("result", "error"):
            self._pending.answer(frame)
        elif op == "context":
            if not isinstance(frame.get("id"), int) or not isinstance(frame.get("method"), str):
                raise WorkerProtocolError("a context request without an id and a method")
            refusal = self._relay.refusal(frame)
            if refusal is not None:  # too many in flight: answered at once, not queued
                self._write(refusal)
                return
            task = asyncio.ensure_future(self._serve_context(frame))
            self._tasks.append(task)
            task.add_done_callback(self._forget_task)
        elif op in ("log", "violation"):
            self._reports.take(frame)
        else:
            raise WorkerProtocolError(f"{op!r} out of place")

    def _forget_task(self, task: asyncio.Task[Any]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    async def _serve_context(self, frame: Mapping[str, Any]) -> None:
        reply = await self._relay.answer(frame)
        if reply is not None and self._alive:
            with contextlib.suppress(WorkerProtocolError, OSError, RuntimeError):
                self._write(reply)

    # -- failures ----------------------------------------------------------------

    def _kill(self, reason: str) -> None:
        if self._process is not None:
            self._process.kill(reason)

    def _stop_process(self, reason: str) -> None:
        self._alive = False
        self._last_reason = reason
        current = asyncio.current_task() if _in_loop() else None
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self._tasks = []
        if self._transport is not None:
            with contextlib.suppress(Exception):
                self._write({"op": "stop"})
                self._transport.close()
            self._transport = None
        if self._process is not None:
            self._process.stop(reason)
        if self._cgroup is not None:
            self._cgroup.remove()
            self._cgroup = None
        self._pending.fail_all(reason)

    async def _exit_reason(self) -> str:
        if self._process is None:
            return "was never started"
        quota = None if self._read_only else self._quota
        return await why_it_ended(self._process, self.limits, self._cgroup, quota)

    async def _died(self, generation: int) -> None:
        reason = await self._exit_reason()
        self._stop_process(reason)
        if self._closed:
            return
        delay = self._failures.failed()
        self.events.worker_event(self.plugin_id, "failed", f"worker {reason}", failure=True)
        if delay is None:
            self._last_reason = (
                f"{reason}; {len(self._failures)} failures within "
                f"{self.policy.failure_window:g} s, not restarted again"
            )
            self.events.worker_gave_up(self.plugin_id, self._last_reason)
            return
        self._restarting = asyncio.ensure_future(self._restart(delay, reason))

    async def _restart(self, delay: float, reason: str) -> None:
        await asyncio.sleep(delay)
        if self._closed:
            return
        try:
            await self._spawn()
            await self._replay_lifecycle()
        except asyncio.CancelledError:  # unloaded while restarting: no worker left behind
            self._stop_process("the plugin was unloaded")
            raise
        except (
            AcpPluginsError,
            OSError,
            asyncio.TimeoutError,
            asyncio.IncompleteReadError,
        ) as error:
            message = getattr(error, "message", None) or str(error) or type(error).__name__
            self._stop_process(f"could not be restarted: {message}")
            self.events.worker_gave_up(self.plugin_id, f"{reason}; restart failed: {message}")
            return
        finally:
            self._restarting = None
        self.restarts += 1
        self.events.worker_event(self.plugin_id, "restarted", f"after: {reason}")

    def describe(self) -> dict[str, Any]:
        """What the record shows of the worker."""
        return _view(self)

    def __repr__(self) -> str:
        return f"<WorkerHandle {self.plugin_id} pid={self.pid}>"


def _view(handle: WorkerHandle) -> dict[str, Any]:
    """What the record shows of a worker (``WorkerHandle.describe``)."""
    governor = handle.governor
    return {
        "mode": "isolated",
        "pid": handle.pid if handle.alive else None,
        "alive": handle.alive,
        "restarts": handle.restarts,
        "last_failure": None if handle.alive else handle._last_reason,
        "memory_mb": handle.limits.memory_mb,
        "cpu_share": handle.limits.cpu_share,
        "cpu_paused_seconds": round(governor.paused_seconds, 3) if governor else 0.0,
        "warnings": list(handle.warnings),
        "layers": list(handle.layers),
        "missing_layers": dict(handle.missing),
    }
