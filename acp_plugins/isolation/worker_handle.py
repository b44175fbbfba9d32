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
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import IO, Any, Protocol

from pydantic import ValidationError

from acp_plugins.config.layers import Layer, ResolvedConfig, ValueOrigin
from acp_plugins.errors import (
    AcpPluginsError,
    ConfigError,
    ConfigProblem,
    PermissionDenied,
    PluginCallError,
    PluginImportError,
    WorkerError,
    WorkerProtocolError,
)
from acp_plugins.isolation.cpu_governor import CpuGovernor
from acp_plugins.isolation.protocol import (
    HEADER,
    WORKER_OPS,
    FrameReader,
    decode_value,
    encode_frame,
    encode_value,
)
from acp_plugins.isolation.sandbox import BASE_ALLOWED_MODULES, PERMISSION_MODULES, SandboxSpec
from acp_plugins.isolation.worker import EXIT_LOAD_FAILED, EXIT_OUT_OF_MEMORY
from acp_plugins.loading.manifest import Manifest
from acp_plugins.loading.permissions import Permission
from acp_plugins.loading.trust import MIB, IsolationPolicy, WorkerLimits
from acp_plugins.models import DataQuery, Message

__all__ = ["WorkerEvents", "WorkerHandle", "privilege_wrapper"]

logger = logging.getLogger(__name__)

#: The folder acp_plugins is imported from (workers import the package from there too).
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])

#: The lifecycle hooks a restarted worker is taken through again, in order.
REPLAYED = (
    "$resolve_config",
    "on_discover",
    "on_load",
    "validate_config",
    "initialize",
    "on_initialize",
    "activate",
    "on_activate",
)

_BOOT = (
    "import sys\n"
    "if sys.argv[2] not in sys.path: sys.path.append(sys.argv[2])\n"
    "from acp_plugins.isolation.worker import main\n"
    "sys.exit(main(sys.argv[1:2]))\n"
)


class WorkerEvents(Protocol):
    """What the host hears from its workers."""

    def worker_event(
        self, plugin_id: str, outcome: str, detail: str, *, failure: bool = False
    ) -> None:
        """Something happened to a worker (``failure``: record it on the plugin)."""
        ...

    def sandbox_refused(self, plugin_id: str, event: str, message: str) -> None:
        """A worker's sandbox refused an operation."""
        ...

    def worker_gave_up(self, plugin_id: str, reason: str) -> None:
        """The worker failed too often; the host should suspend the plugin."""
        ...


@cache
def privilege_wrapper(network: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The command prefix that drops privileges on this system, and warnings for what cannot be.

    Tried once per process: ``unshare --net`` (a network namespace without
    interfaces) for workers without ``network``, and ``setpriv`` for
    no-new-privs and an empty capability set.
    """
    prefix: list[str] = []
    warnings: list[str] = []
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if not network:
        if unshare and _runs([unshare, "--net", "true"]):
            prefix += [unshare, "--net", "--"]
        else:
            warnings.append("no network namespace for workers (unshare --net is not permitted)")
    if setpriv:
        full = [setpriv, "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]
        if _runs([*full, "true"]):
            prefix += full
        elif _runs([setpriv, "--no-new-privs", "true"]):
            prefix += [setpriv, "--no-new-privs", "--"]
            warnings.append("workers keep their capabilities (setpriv cannot drop them here)")
        else:
            warnings.append("workers run without no-new-privs (setpriv is not permitted)")
    else:
        warnings.append("workers run without no-new-privs (setpriv is not installed)")
    return tuple(prefix), tuple(warnings)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _runs(command: Sequence[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=5, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


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
        self.pid: int | None = None
        self.restarts = 0
        self.warnings: list[str] = []
        self._hooks: frozenset[str] = frozenset()
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._transport: asyncio.Transport | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._cancelled: set[int] = set()
        self._next_id = 0
        self._generation = 0
        self._alive = False
        self._closed = False
        self._kill_reason: str | None = None
        self._last_reason = "the worker has not started"
        self._failures: deque[float] = deque()
        self._restarting: asyncio.Task[None] | None = None
        self._replay: dict[str, Mapping[str, Any]] = {}
        self._context: Any = None
        self._sources: list[Any] = []
        self._proposed_inputs: dict[str, Any] | None = None
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
        for hook in REPLAYED:
            wanted = hook in self._hooks or hook == "$resolve_config"
            if hook in self._replay and wanted and hook not in skip:
                result = await asyncio.wait_for(
                    self._call(hook, self._replay[hook]), self.limits.start_timeout
                )
                if result is False:
                    raise PluginCallError(
                        f"'{self.plugin_id}' refused to restart: {hook} returned False",
                        plugin_id=self.plugin_id,
                        hook=hook,
                    )

    # -- starting --------------------------------------------------------------

    def sandbox_spec(self) -> SandboxSpec:
        names = {p.value for p in self.granted}
        allowed = set(BASE_ALLOWED_MODULES) | set(self.dependency_modules)
        for name in names:
            allowed |= PERMISSION_MODULES.get(name, frozenset())
        allowed |= set(self.policy.allowed_modules.get(self.plugin_id, frozenset()))
        roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *self.search_path, *self.code_dirs}
        roots |= {p for p in sys.path if p and os.path.isabs(p) and "site-packages" in p}
        roots.add(_PACKAGE_ROOT)
        return SandboxSpec(
            plugin_id=self.plugin_id,
            data_dir=str(self.data_dir),
            read_roots=tuple(sorted(roots)),
            allowed_modules=frozenset(allowed),
            own_packages=self.own_packages,
            memory_bytes=self.limits.memory_mb * MIB,
            open_files=self.limits.open_files,
            file_bytes=self.limits.file_mb * MIB,
            processes=self.limits.processes,
            allow_network="network" in names,
            allow_processes="run-processes" in names,
            seccomp=self.policy.seccomp,
            granted=tuple(sorted(names)),
        )

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
        self._kill_reason = None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        spec = self.sandbox_spec()
        prefix: tuple[str, ...] = ()
        if self.policy.drop_privileges:
            prefix, warnings = privilege_wrapper(spec.allow_network)
            self.warnings = list(warnings)
        parent, child = socket.socketpair()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (kept for the worker's life)
        package_root = _PACKAGE_ROOT
        try:
            self._process = subprocess.Popen(
                [
                    *prefix,
                    sys.executable,
                    "-I",
                    "-B",
                    "-c",
                    _BOOT,
                    str(child.fileno()),
                    package_root,
                ],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=self._stderr,
                stderr=self._stderr,
                env={"PATH": os.defpath, "LC_ALL": "C.UTF-8"},
                cwd=str(self.data_dir),
                start_new_session=True,
            )
        finally:
            child.close()
        self.pid = self._process.pid
        # a host dropped without stop() must not leave its workers behind
        self._reaper = weakref.finalize(self, _kill_group, self._process.pid)
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
                "search_path": self.search_path,
                "manifest": self.manifest.model_dump(mode="json"),
            }
        )
        frame = await asyncio.wait_for(handshake, self.limits.start_timeout)
        if frame["op"] == "failed":
            message = str(frame.get("message", "the plugin could not be loaded"))
            self._stop_process(message)
            raise PluginImportError(message, plugin_id=self.plugin_id)
        if frame["op"] != "ready" or not isinstance(frame.get("hooks"), list):
            raise WorkerProtocolError(f"expected 'ready', the worker sent {frame['op']!r}")
        self._hooks = frozenset(str(h) for h in frame["hooks"])
        self.warnings += [str(w) for w in frame.get("warnings", ())]
        for warning in self.warnings:
            logger.warning("%s: %s", self.plugin_id, warning)
        self._alive = True
        self._send_sources()
        self._tasks = []
        if self.limits.cpu_share is not None:
            self.governor = CpuGovernor(
                self.pid, self.limits.cpu_share, self.limits.cpu_window, on_throttle=self._throttled
            )
            self._tasks.append(loop.create_task(self.governor.run()))
        self.events.worker_event(self.plugin_id, "started", f"pid {self.pid}")

    def _write(self, message: Mapping[str, Any]) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(encode_frame(message))

    def update_sources(self, sources: Sequence[Any]) -> None:
        """Send the data sources of active plugins to a worker granted ``read-data``."""
        if Permission.READ_DATA in self.granted:
            self._sources = [encode_value(source) for source in sources]
            self._send_sources()

    def _send_sources(self) -> None:
        if self._sources:
            with contextlib.suppress(WorkerProtocolError, OSError, RuntimeError):
                self._write({"op": "sources", "value": self._sources})

    # -- calling ---------------------------------------------------------------

    async def _call(self, hook: str, kwargs: Mapping[str, Any]) -> Any:
        if not self._alive and self._restarting is not None and not self._closed:
            await asyncio.shield(self._restarting)
        if not self._alive or self._transport is None:
            raise WorkerError(
                f"'{self.plugin_id}' cannot answer {hook}: its worker is down "
                f"({self._last_reason})",
                plugin_id=self.plugin_id,
                hook=hook,
            )
        if "context" in kwargs:
            self._context = kwargs["context"]
        self._next_id += 1
        call_id = self._next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = (hook, future)
        try:
            self._write({"op": "call", "id": call_id, "hook": hook, "kwargs": self._encode(kwargs)})
            result = await future
        except asyncio.CancelledError:
            # cancelling this task cancels the future it waits on: no answer came
            if future.cancelled() or not future.done():
                self._cancel(call_id, hook)
            raise
        finally:
            self._pending.pop(call_id, None)
        self._remember(hook, kwargs, result)
        return result

    def _encode(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        encoded = {}
        for name, value in kwargs.items():
            if name == "context":
                config = getattr(value, "config", {})
                encoded[name] = {"$context": encode_value(dict(config))}
            else:
                encoded[name] = encode_value(value)
        return encoded

    async def resolve_config(self, inputs: Mapping[str, Any], timeout: float) -> ResolvedConfig:
        """Have the worker validate the configuration layers against the plugin's model.

        The values come back with secrets masked (the worker keeps the real ones);
        raises :class:`ConfigError` naming every bad setting.
        """
        try:
            answer = await asyncio.wait_for(
                self._call("$resolve_config", {"inputs": inputs}), timeout
            )
        except asyncio.TimeoutError:  # not the builtin one before Python 3.11
            raise WorkerError(
                f"'{self.plugin_id}' did not validate its settings within {timeout:g} s",
                plugin_id=self.plugin_id,
                hook="$resolve_config",
            ) from None
        if not isinstance(answer, dict):
            raise WorkerProtocolError("the answer to $resolve_config is not an object")
        origins = {
            str(path): ValueOrigin(Layer(origin[0]), str(origin[1]))
            for path, origin in dict(answer.get("origins") or {}).items()
        }
        return ResolvedConfig(self.plugin_id, None, dict(answer.get("values") or {}), origins)

    def _remember(self, hook: str, kwargs: Mapping[str, Any], result: Any) -> None:
        """Keep what a restarted worker must be taken through again."""
        if result is False:
            return
        if hook == "$resolve_config":
            self._proposed_inputs = dict(kwargs)
            if "$resolve_config" not in self._replay:
                self._replay[hook] = dict(kwargs)  # the first: it is put in force at initialize
            return
        if hook in ("on_config_changed", "initialize") and self._proposed_inputs is not None:
            self._replay["$resolve_config"] = self._proposed_inputs
        if hook in REPLAYED:
            self._replay[hook] = dict(kwargs)
        elif hook == "on_config_changed":
            self._replay["validate_config"] = dict(kwargs)
        elif hook in ("deactivate", "on_suspend"):
            self._replay.pop("activate", None)
            self._replay.pop("on_activate", None)

    def _cancel(self, call_id: int, hook: str) -> None:
        if self._transport is None or not self._alive:
            return
        self._cancelled.add(call_id)
        with contextlib.suppress(WorkerProtocolError, OSError, RuntimeError):
            self._write({"op": "cancel", "id": call_id})
        generation = self._generation
        asyncio.get_running_loop().call_later(
            self.limits.cancel_grace, self._check_hung, call_id, hook, generation
        )

    def _check_hung(self, call_id: int, hook: str, generation: int) -> None:
        if generation != self._generation or call_id not in self._cancelled:
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
        """The channel ended: the worker exited, or sent what this side cannot use."""
        if generation != self._generation or self._closed:
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
        if op in ("result", "error"):
            call_id = frame["id"]
            if not isinstance(call_id, int):
                raise WorkerProtocolError("a result without an integer id")
            self._cancelled.discard(call_id)
            hook, future = self._pending.get(call_id, ("", None))
            if future is None or future.done():
                return  # the answer to a call that was given up
            if op == "result":
                future.set_result(decode_value(frame.get("value")))
            else:
                future.set_exception(self._remote_error(hook, frame))
        elif op == "context":
            if not isinstance(frame.get("id"), int) or not isinstance(frame.get("method"), str):
                raise WorkerProtocolError("a context request without an id and a method")
            task = asyncio.ensure_future(self._serve_context(frame))
            self._tasks.append(task)
            task.add_done_callback(self._forget_task)
        elif op == "log":
            if Permission.WRITE_LOGS in self.granted:
                level = frame.get("level")
                logging.getLogger(f"acp_plugins.plugin.{self.plugin_id}").log(
                    level if isinstance(level, int) else logging.INFO,
                    "%s",
                    str(frame.get("message", ""))[:2000],
                )
        elif op == "violation":
            self.events.sandbox_refused(
                self.plugin_id, str(frame.get("event", "?")), str(frame.get("message", ""))[:500]
            )
        else:
            raise WorkerProtocolError(f"{op!r} out of place")

    def _forget_task(self, task: asyncio.Task[Any]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    def _remote_error(self, hook: str, frame: Mapping[str, Any]) -> Exception:
        kind, message = str(frame.get("type", "Error")), str(frame.get("message", ""))[:2000]
        if kind == "MemoryError":
            return WorkerError(
                f"'{self.plugin_id}' failed in {hook}: {message}",
                plugin_id=self.plugin_id,
                hook=hook,
            )
        if kind == "ConfigError":
            problems = []
            for item in frame.get("problems") or []:
                if isinstance(item, dict):
                    with contextlib.suppress(TypeError):
                        problems.append(ConfigProblem(**item))
            return ConfigError(message, plugin_id=self.plugin_id, problems=problems)
        if kind == "Cancelled":
            return PluginCallError(
                f"'{self.plugin_id}' cancelled {hook}", plugin_id=self.plugin_id, hook=hook
            )
        if kind == "PermissionDenied":
            return PluginCallError(
                f"'{self.plugin_id}' failed in {hook}: {message}",
                plugin_id=self.plugin_id,
                hook=hook,
            )
        return PluginCallError(
            f"'{self.plugin_id}' failed in {hook}: {kind}: {message}",
            plugin_id=self.plugin_id,
            hook=hook,
        )

    async def _serve_context(self, frame: Mapping[str, Any]) -> None:
        ask_id, method = frame["id"], frame["method"]
        if method == "data_sources":  # only ever sent to be refused: see update_sources
            with contextlib.suppress(AcpPluginsError):
                if self._context is not None:
                    self._context.data_sources()
            return
        reply: dict[str, Any] = {"op": "reply", "id": ask_id}
        try:
            reply["value"] = encode_value(await self._context_call(method, frame.get("args")))
        except PermissionDenied as error:
            reply["error"] = {
                "message": error.message,
                "permission": error.permission,
                "operation": error.operation,
            }
        except AcpPluginsError as error:
            reply["error"] = {"message": error.message}
        except (ValidationError, TypeError, KeyError, ValueError) as error:
            reply["error"] = {"message": f"bad arguments to context.{method}: {error}"}
        if self._alive:
            with contextlib.suppress(WorkerProtocolError, OSError, RuntimeError):
                self._write(reply)

    async def _context_call(self, method: str, raw: Any) -> Any:
        context = self._context
        if context is None:
            raise AcpPluginsError(
                f"'{self.plugin_id}' has no context before initialize", plugin_id=self.plugin_id
            )
        args = decode_value(raw) if isinstance(raw, dict) else {}
        if method == "query_data":
            query = DataQuery.model_validate(args.get("query") or {})
            return await context.query_data(str(args["source_id"]), query)
        if method == "send_message":
            return await context.send_message(Message.model_validate(args["message"]))
        if method == "run_command":
            command_args = args.get("args") or []
            if not isinstance(command_args, list):
                raise TypeError("args must be a list of strings")
            return await context.run_command(str(args["command"]), [str(a) for a in command_args])
        raise AcpPluginsError(f"no context operation {method!r}", plugin_id=self.plugin_id)

    # -- failures ----------------------------------------------------------------

    def _throttled(self, usage: float, pause: float) -> None:
        if self.governor is not None and self.governor.pauses % 50 == 0:
            self.events.worker_event(
                self.plugin_id,
                "throttled",
                f"used {usage:.0%} of a CPU (share {self.limits.cpu_share:.0%}); "
                f"paused {pause:.2f} s",
            )

    def _kill(self, reason: str) -> None:
        if self._kill_reason is None:
            self._kill_reason = reason
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)

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
        process = self._process
        if process is not None and process.poll() is None:
            try:
                process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                self._kill(reason)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
        self._fail_pending(reason)
        reaper = getattr(self, "_reaper", None)
        if reaper is not None and process is not None and process.poll() is not None:
            reaper.detach()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _fail_pending(self, reason: str) -> None:
        for call_id, (hook, future) in list(self._pending.items()):
            if not future.done():
                future.set_exception(
                    WorkerError(
                        f"'{self.plugin_id}' failed in {hook}: its worker {reason}",
                        plugin_id=self.plugin_id,
                        hook=hook,
                    )
                )
            self._pending.pop(call_id, None)
        self._cancelled.clear()

    async def _exit_reason(self) -> str:
        """Why the worker ended, once it has (a worker that will not end is killed)."""
        process = self._process
        if process is None:
            return "was never started"
        deadline = time.monotonic() + 1.0
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if process.poll() is None:
            self._kill(self._kill_reason or "closed its channel but did not exit")
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        code = process.returncode
        tail = self._stderr_tail()
        if self._kill_reason is not None:
            return f"was killed: {self._kill_reason}" + (f" ({tail})" if tail else "")
        if code == EXIT_OUT_OF_MEMORY:
            return f"ran out of memory (limit {self.limits.memory_mb} MiB) and exited"
        if code == EXIT_LOAD_FAILED:
            return "could not load the plugin"
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            return f"was killed by {name}"
        return f"exited with status {code}" + (f": {tail}" if tail else "")

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            lines = self._stderr.read()[-4000:].decode(errors="replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return lines[-1][:300] if lines else ""

    async def _died(self, generation: int) -> None:
        reason = await self._exit_reason()
        self._stop_process(reason)
        if self._closed:
            return
        now = time.monotonic()
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.policy.failure_window:
            self._failures.popleft()
        self.events.worker_event(self.plugin_id, "failed", f"worker {reason}", failure=True)
        if len(self._failures) >= self.policy.max_failures:
            self._last_reason = (
                f"{reason}; {len(self._failures)} failures within "
                f"{self.policy.failure_window:g} s, not restarted again"
            )
            self.events.worker_gave_up(self.plugin_id, self._last_reason)
            return
        delay = min(
            self.policy.restart_backoff * 2 ** (len(self._failures) - 1), self.policy.max_backoff
        )
        self._restarting = asyncio.ensure_future(self._restart(delay, reason))

    async def _restart(self, delay: float, reason: str) -> None:
        await asyncio.sleep(delay)
        if self._closed:
            return
        try:
            await self._spawn()
            self._restarting = None  # the replayed calls must not wait for themselves
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
        governor = self.governor
        return {
            "mode": "isolated",
            "pid": self.pid if self._alive else None,
            "alive": self._alive,
            "restarts": self.restarts,
            "last_failure": None if self._alive else self._last_reason,
            "memory_mb": self.limits.memory_mb,
            "cpu_share": self.limits.cpu_share,
            "cpu_paused_seconds": round(governor.paused_seconds, 3) if governor else 0.0,
            "warnings": list(self.warnings),
        }

    def __repr__(self) -> str:
        return f"<WorkerHandle {self.plugin_id} pid={self.pid}>"
