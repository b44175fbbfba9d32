"""The isolated worker: one process per untrusted plugin.

Started as ``python -I -m acp_plugins.isolation.worker FD``.

The host starts it with one end of a Unix socket pair as descriptor ``FD`` and
sends a ``start`` frame (see :mod:`acp_plugins.isolation.protocol`). The worker then, in
this order: lowers its resource limits, loads its seccomp filter, installs its
audit hook, and only then imports the plugin, registers it with pluggy (which
validates its hooks) and answers ``ready`` with the hooks it implements. From
then on it serves ``call`` frames, each as a task, and relays the plugin's
context operations to the host, which checks their permissions.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from importlib.metadata import EntryPoint
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from acp_plugins.config.layers import PluginConfig, ResolvedConfig, resolve_portable_config
from acp_plugins.errors import AcpPluginsError, ConfigError, PermissionDenied
from acp_plugins.isolation.landlock import restrict_self
from acp_plugins.isolation.protocol import (
    FrameReader,
    decode_value,
    encode_frame,
    encode_value,
)
from acp_plugins.isolation.sandbox import (
    SandboxSpec,
    SandboxViolation,
    apply_limits,
    die_with_the_host,
    install_audit_hook,
    install_seccomp,
)
from acp_plugins.isolation.worker_events import WorkerEvents
from acp_plugins.loading.discovery import ENTRY_POINT_GROUP, add_search_path, code_elsewhere
from acp_plugins.loading.manifest import Manifest
from acp_plugins.loading.permissions import Permission, PermissionPolicy
from acp_plugins.models import (
    CommandResult,
    DataQuery,
    DataResult,
    DataSourceDefinition,
    Message,
    MessageResponse,
)
from acp_plugins.runtime.context import json_data, topic_syntax_error
from acp_plugins.runtime.figures import check_figure
from acp_plugins.runtime.handle import HookRegistry, InProcessHandle

#: Hooks the worker takes part in itself (configuration, the context): never inline.
_WORKER_HOOKS = frozenset(
    {
        "initialize",
        "validate_config",
        "get_config_schema",
        "on_config_changed",
        "get_settings_model",
    }
)
#: Exit status of a worker that ran out of memory inside a call.
EXIT_OUT_OF_MEMORY = 70
#: Exit status of a worker whose plugin failed to import or register.
EXIT_LOAD_FAILED = 71


Handler = TypeVar("Handler", bound=Callable[..., Any])


class WorkerContext:
    """The isolated plugin's :class:`~acp_plugins.PluginContext`: the same face, over the channel.

    Every operation is sent to the host, which checks the permission and audit-logs
    a refusal; the checks made here only make the error come sooner.
    """

    def __init__(self, worker: Worker, manifest: Manifest, granted: Sequence[str]) -> None:
        self._worker = worker
        self.plugin_id = manifest.plugin_id
        self.manifest = manifest
        self.permissions = frozenset(Permission(name) for name in granted)
        self.config: Mapping[str, Any] = MappingProxyType({})
        self.settings: Any = None
        self._data_dir = Path(worker.spec.data_dir)
        #: The data sources of active plugins, as the host last sent them.
        self.sources: list[DataSourceDefinition] = []
        #: The host's per-topic grants, as sent with the context.
        self.topics = PermissionPolicy()
        #: The metric names recorded (the host checks the same limit again).
        self._figures: set[str] = set()
        self.logger = logging.getLogger(f"acp_plugins.plugin.{manifest.plugin_id}")

    @property
    def data_dir(self) -> Path:
        """A directory that belongs to this plugin alone, created when first asked for."""
        self._data_dir.mkdir(parents=True, exist_ok=True)
        return self._data_dir

    def has_permission(self, permission: Permission | str) -> bool:
        return Permission(permission) in self.permissions

    def require(self, permission: Permission, operation: str) -> None:
        if permission not in self.permissions:
            # refused here at once; the host checks again and audit-logs it (not awaited)
            args = encode_value({"permission": permission.value, "operation": operation})
            self._worker.send_soon({"op": "context", "id": 0, "method": "permission_refused",
                                    "args": args})  # fmt: skip
            raise PermissionDenied(self.plugin_id, permission.value, operation)

    async def query_data(self, source_id: str, query: DataQuery | None = None) -> DataResult:
        result = await self._worker.ask(
            "query_data", {"source_id": source_id, "query": query or DataQuery()}
        )
        return DataResult.model_validate(result)

    def data_sources(self) -> list[DataSourceDefinition]:
        """Every data source of active plugins (the host keeps the worker's copy current)."""
        if Permission.READ_DATA not in self.permissions:
            # the host decides and audit-logs the refusal; its answer is not awaited
            self._worker.send_soon({"op": "context", "id": 0, "method": "data_sources", "args": {}})
            raise PermissionDenied(self.plugin_id, Permission.READ_DATA.value, "list data sources")
        return list(self.sources)

    async def send_message(self, message: Message) -> MessageResponse:
        return MessageResponse.model_validate(
            await self._worker.ask("send_message", {"message": message})
        )

    async def run_command(self, command: str, args: Sequence[str] = ()) -> CommandResult:
        result = await self._worker.ask("run_command", {"command": command, "args": list(args)})
        return CommandResult.model_validate(result)

    async def send_to_plugin(self, target_id: str, payload: Any) -> Any:
        what = f"'{self.plugin_id}' sent plugin '{target_id}' a payload"
        data = json_data(payload, what, self.plugin_id)  # refused here as in-process
        return await self._worker.ask("send_to_plugin", {"target_id": target_id, "payload": data})

    def subscribe(self, pattern: str) -> Callable[[Handler], Handler]:
        """As in-process: the handler gets each event on a topic matching ``pattern``."""
        self.require(Permission.READ_MESSAGING, f"subscribe to '{pattern}'")

        def register(handler: Handler) -> Handler:
            self.subscribe_handler(pattern, handler)
            return handler

        return register

    def subscribe_handler(self, pattern: str, handler: Callable[[Any], Any]) -> int:
        """Subscribe ``handler``; refused here as in-process (the host checks again)."""
        self.require(Permission.READ_MESSAGING, f"subscribe to '{pattern}'")
        self._check_topic(pattern, "subscribe")
        return self._worker.events.subscribe(pattern, handler)

    def _check_topic(self, pattern: str, action: str) -> None:
        syntax = topic_syntax_error(self.plugin_id, pattern, action)
        if syntax is not None:
            raise syntax
        denial = self.topics.topic_denial(self.plugin_id, self.permissions, pattern, action)
        if denial is not None:  # the host decides and audit-logs it; not awaited
            args = encode_value({"pattern": pattern, "action": action})
            self._worker.send_soon({"op": "context", "id": 0, "method": "topic_refused",
                                    "args": args})  # fmt: skip
            raise denial

    def unsubscribe(self, token: int) -> None:
        self._worker.events.unsubscribe(token)

    def record_metric(self, name: str, value: float) -> None:
        """As in-process: checked here, sent to the host without waiting for an answer."""
        known = None if name in self._figures else len(self._figures)
        number = check_figure(self.plugin_id, name, value, known)
        self._figures.add(name)
        args = encode_value({"name": name, "value": number})
        self._worker.send_soon({"op": "context", "id": 0, "method": "record_metric",
                                "args": args})  # fmt: skip

    async def publish(self, topic: str, data: Any = None) -> int:
        self.require(Permission.WRITE_MESSAGING, f"publish on '{topic}'")
        self._check_topic(topic, "publish")
        what = f"'{self.plugin_id}' published on '{topic}' data"
        payload = json_data(data, what, self.plugin_id)
        return int(await self._worker.ask("publish", {"topic": topic, "data": payload}))

    def apply(self, resolved: ResolvedConfig | None) -> None:
        """Put a validated configuration in force (``None``: no settings)."""
        self.config = MappingProxyType(dict(resolved.values) if resolved else {})
        self.settings = resolved.settings if resolved else None

    def __repr__(self) -> str:
        return f"<PluginContext {self.plugin_id} (isolated)>"


class _ChannelLogHandler(logging.Handler):
    """Sends the plugin's log records to the host (which drops them without ``write-logs``)."""

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.worker.send_soon(
                {"op": "log", "level": record.levelno, "message": record.getMessage()}
            )
        except Exception:  # a log line must never break the plugin's call
            self.handleError(record)


class Worker:
    """Serves one plugin over one channel."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.calls: dict[int, asyncio.Task[None]] = {}
        self.asked: dict[int, asyncio.Future[Any]] = {}
        self.next_ask = 0
        self.spec: SandboxSpec
        self.handle: InProcessHandle
        self.context: WorkerContext
        self.model: type[BaseModel] | None = None
        #: The plugin's plain (not async) hooks that need nothing of the worker's own:
        #: answered as their frame is read (:meth:`run_plain`).
        self.plain_hooks: frozenset[str] = frozenset()
        self.started = False
        #: Set when the channel ends (``exit`` holds the status to exit with).
        self.finished: asyncio.Future[int] = self.loop.create_future()
        #: The configuration in force, and the one last validated (not yet in force).
        self.active: ResolvedConfig | None = None
        self.proposed: ResolvedConfig | None = None
        #: The plugin's subscriptions to the host's bus.
        self.events = WorkerEvents(self)

    def channel_fd(self) -> int | None:
        """The descriptor of the channel to the host."""
        channel = self.transport.get_extra_info("socket") if self.transport else None
        return channel.fileno() if channel is not None else None

    # -- sending ----------------------------------------------------------

    def send(self, message: Mapping[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(message))

    def send_soon(self, message: Mapping[str, Any]) -> None:
        """Send from any thread."""
        if threading_is_loop(self.loop):
            self.send(message)
        else:
            self.loop.call_soon_threadsafe(self.send, message)

    def report_violation(self, event: str, message: str) -> None:
        self.send_soon({"op": "violation", "event": event, "message": message})

    async def ask(self, method: str, args: Mapping[str, Any]) -> Any:
        """Ask the host for a context operation and wait for its reply."""
        self.next_ask += 1
        ask_id = self.next_ask
        future: asyncio.Future[Any] = self.loop.create_future()
        self.asked[ask_id] = future
        self.send({"op": "context", "id": ask_id, "method": method, "args": encode_value(args)})
        try:
            return await future
        finally:
            self.asked.pop(ask_id, None)

    # -- the channel ------------------------------------------------------

    def on_closed(self, error: BaseException | None) -> None:
        if error is not None:
            print(f"acp-plugins worker: the channel failed: {error}", file=sys.stderr)
        if not self.finished.done():
            self.finished.set_result(0 if error is None else 1)

    def on_frame(self, frame: dict[str, Any]) -> None:
        op = frame["op"]
        if not self.started:
            if op != "start":
                raise SystemExit(f"expected a start frame, got {op!r}")
            self.started = True
            starting = self.loop.create_task(self.start(frame))
            starting.add_done_callback(self._started)
        elif op == "call":
            call_id, hook = int(frame["id"]), str(frame["hook"])
            if hook in self.plain_hooks:
                self.run_plain(call_id, hook, frame.get("kwargs") or {})
                return
            task = self.loop.create_task(self.run_call(call_id, hook, frame.get("kwargs") or {}))
            if not task.done():
                self.calls[call_id] = task
        elif op == "cancel":
            running = self.calls.get(int(frame["id"]))
            if running is not None:
                running.cancel()
        elif op == "reply":
            future = self.asked.get(int(frame["id"]))
            if future is not None and not future.done():
                if "error" in frame:
                    future.set_exception(_remote_error(self.spec.plugin_id, frame["error"]))
                else:
                    future.set_result(decode_value(frame.get("value")))
        elif op == "sources":
            values = frame.get("value") or []
            self.context.sources = [
                DataSourceDefinition.model_validate(decode_value(v)) for v in values
            ]
        elif op == "stop":
            self.on_closed(None)

    def _started(self, task: asyncio.Task[bool]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            traceback.print_exception(type(error), error, error.__traceback__)
        if (
            task.cancelled() or error is not None or not task.result()
        ) and not self.finished.done():
            self.finished.set_result(EXIT_LOAD_FAILED)

    # -- starting ---------------------------------------------------------

    async def start(self, frame: Mapping[str, Any]) -> bool:
        self.spec = SandboxSpec.from_dict(frame["spec"])
        add_search_path(frame.get("search_path", ()))
        manifest = Manifest.model_validate(frame["manifest"])
        warnings, layers, missing = self.confine_self()
        arm = (
            install_audit_hook(self.spec, self.report_violation, self.channel_fd())
            if self.spec.python_layer
            else lambda: None
        )
        logging.getLogger().addHandler(_ChannelLogHandler(self))
        logging.getLogger().setLevel(logging.INFO)
        arm()
        try:
            plugin = _load(manifest.plugin_id, frame["entry_point"], frame.get("code_dir"))
            self.handle = InProcessHandle(manifest.plugin_id, plugin, HookRegistry())
            self.plain_hooks = frozenset(
                hook for hook in self.handle.hooks - _WORKER_HOOKS if not self.handle.is_async(hook)
            )
        except (AcpPluginsError, SandboxViolation) as error:
            self.send({"op": "failed", "message": str(error), "traceback": _traceback_of(error)})
            return False
        self.context = WorkerContext(self, manifest, self.spec.granted)
        if self.handle.implements("get_settings_model"):
            model = await _settle(self.handle.invoke("get_settings_model", {}))
            self.model = model if isinstance(model, type) and issubclass(model, BaseModel) else None
        if self.model is not None:
            self.active = resolve_portable_config(
                manifest.plugin_id, self.model, {"layers": [], "env": {}, "prefix": "-"}
            )  # the model's defaults, until the host sends the layers
        self.context.apply(self.active)
        hooks = set(self.handle.hooks - {"get_settings_model"}) | {"on_config_changed"}
        if self.model is not None:
            hooks.add("get_config_schema")
        ready = {"op": "ready", "hooks": sorted(hooks), "warnings": warnings, "pid": os.getpid()}
        self.send({**ready, "layers": layers, "missing": missing})
        return True

    def confine_self(self) -> tuple[list[str], list[str], dict[str, str]]:
        """Apply the layers a worker puts on itself: warnings, layers in force, missing ones."""
        spec = self.spec
        die_with_the_host(in_pid_namespace=spec.pid_namespace)
        apply_limits(spec)
        layers, missing = ["rlimits"], {}
        proc = "/proc" if spec.pid_namespace else f"/proc/{os.getpid()}"
        # in its own view, a private /var/tmp; else temporary files go in the data directory
        tmp = "/var/tmp" if spec.pid_namespace else spec.data_dir
        os.environ["TMPDIR"] = os.environ["SQLITE_TMPDIR"] = tmp
        if spec.landlock:
            problem = restrict_self(
                # a /proc of its own PID namespace shows the worker alone; else its own entry
                read=[*spec.read_roots, *_SYSTEM_READ, proc],
                write=[tmp]
                if spec.data_read_only and tmp != spec.data_dir
                else [spec.data_dir, tmp],
                clear=[spec.data_dir] if spec.data_read_only else [],
                allow_tcp=spec.allow_network,
            )
        else:
            problem = "Landlock is turned off in the host's isolation settings"
        if problem is None:
            layers.append("landlock")
        else:
            missing["landlock"] = problem
        problem = install_seccomp(spec)
        if problem is None:
            layers.append("seccomp")
        else:
            missing["seccomp"] = problem
        if spec.python_layer:
            layers.append("python")
        return [], layers, missing  # the host reports what is missing, with its own layers

    # -- serving ----------------------------------------------------------

    async def run_call(self, call_id: int, hook: str, encoded: Mapping[str, Any]) -> None:
        try:
            kwargs = self.arguments(encoded)
            value = await self.dispatch(hook, kwargs)
            await self.events.settled()
            self.send({"op": "result", "id": call_id, "value": encode_value(value)})
        except asyncio.CancelledError:
            self.send({"op": "error", "id": call_id, "type": "Cancelled", "message": "cancelled"})
        except (Exception, SystemExit) as error:  # MemoryError too: the frame, then the exit
            self.send_error(call_id, error)
        finally:
            self.calls.pop(call_id, None)

    def run_plain(self, call_id: int, hook: str, encoded: Mapping[str, Any]) -> None:
        """Answer a call of a plain (not async) hook at once, without a task of its own.

        Only the plugin's own plain hooks come here (see :attr:`plain_hooks`); one
        that returns an awaitable after all is awaited as a task like any call.
        """
        try:
            value = self.handle.invoke(hook, self.arguments(encoded))
            if inspect.isawaitable(value) or self.events.asking:
                task = self.loop.create_task(self._answer_later(call_id, value))
                self.calls[call_id] = task
                return
            self.send({"op": "result", "id": call_id, "value": encode_value(value)})
        except (Exception, SystemExit) as error:
            self.send_error(call_id, error)

    async def _answer_later(self, call_id: int, awaitable: Any) -> None:
        try:
            value = await awaitable if inspect.isawaitable(awaitable) else awaitable
            await self.events.settled()
            self.send({"op": "result", "id": call_id, "value": encode_value(value)})
        except asyncio.CancelledError:
            self.send({"op": "error", "id": call_id, "type": "Cancelled", "message": "cancelled"})
        except (Exception, SystemExit) as error:
            self.send_error(call_id, error)
        finally:
            self.calls.pop(call_id, None)

    def send_error(self, call_id: int, error: BaseException) -> None:
        """Answer a call with what it raised (a worker out of memory then exits)."""
        if isinstance(error, ConfigError):
            self.send(
                {
                    "op": "error",
                    "id": call_id,
                    "type": "ConfigError",
                    "message": error.summary,
                    "problems": [
                        to_jsonable_python(asdict(problem), fallback=str)
                        for problem in error.problems
                    ],
                }
            )
            return
        if isinstance(error, MemoryError):
            self.send(
                {
                    "op": "error",
                    "id": call_id,
                    "type": "MemoryError",
                    "message": f"ran out of memory (limit {self.spec.memory_bytes} bytes)",
                }
            )
            os._exit(EXIT_OUT_OF_MEMORY)
        error_frame: dict[str, Any] = {
            "op": "error",
            "id": call_id,
            "type": type(error).__name__,
            "message": str(error),
            "traceback": _traceback_of(error),
        }
        if isinstance(error, PermissionDenied):
            error_frame["permission"] = error.permission
            error_frame["message"] = error.message
        self.send(error_frame)

    async def dispatch(self, hook: str, kwargs: dict[str, Any]) -> Any:
        """Run one call: the worker's own configuration hooks, else the plugin's hook."""
        if hook == "$resolve_config":
            self.proposed = resolve_portable_config(
                self.spec.plugin_id, self.model, kwargs["inputs"]
            )
            return {
                "values": self.proposed.masked(),
                "origins": {
                    path: [origin.layer.value, origin.source]
                    for path, origin in self.proposed.origins.items()
                },
            }
        if hook == "$event":
            return await self.events.handle(int(kwargs["subscription"]), kwargs["event"])
        config = kwargs.get("config")
        if isinstance(config, PluginConfig) and self.proposed is not None:
            # the host holds masked secrets only: the plugin gets the real values
            kwargs["config"] = replace(config, settings=MappingProxyType(self.proposed.values))
        if hook == "get_config_schema" and not self.handle.implements(hook):
            return self.model.model_json_schema() if self.model is not None else {}
        if hook == "on_config_changed":
            return await self.change_config(kwargs)
        if hook == "initialize" and self.proposed is not None:
            self.active = self.proposed
            self.context.apply(self.active)
        return await _settle(self.handle.invoke(hook, kwargs))

    async def change_config(self, kwargs: dict[str, Any]) -> Any:
        """Put the proposed configuration in force; back to the old one if the plugin refuses."""
        previous, self.active = self.active, self.proposed or self.active
        self.context.apply(self.active)
        if not self.handle.implements("on_config_changed"):
            return True
        try:
            accepted = await _settle(self.handle.invoke("on_config_changed", kwargs))
        except BaseException:
            self.active = previous
            self.context.apply(previous)
            raise
        if accepted is False:
            self.active = previous
            self.context.apply(previous)
        return accepted

    def arguments(self, encoded: Mapping[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for name, value in encoded.items():
            if isinstance(value, dict) and "$context" in value:
                if isinstance(value.get("$topics"), dict):
                    self.context.topics = PermissionPolicy.from_topic_rules(value["$topics"])
                kwargs[name] = self.context
            else:
                kwargs[name] = decode_value(value)
        return kwargs


#: What the interpreter itself reads at run time, besides its own installation.
_SYSTEM_READ = ("/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/etc/localtime", "/etc/ssl")


def threading_is_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _settle(result: Any) -> Any:
    while asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        result = await result
    return result


def _remote_error(plugin_id: str, error: Mapping[str, Any]) -> Exception:
    message = str(error.get("message", "the host refused"))
    permission = error.get("permission")
    if isinstance(permission, str):
        denied = PermissionDenied(plugin_id, permission, str(error.get("operation", "")))
        denied.message = message
        denied.args = (message,)
        return denied
    return AcpPluginsError(message, plugin_id=plugin_id)


#: The most of a traceback a worker sends (the host shows it with --debug).
TRACEBACK_LIMIT = 16_000


def _traceback_of(error: BaseException) -> str:
    """The traceback of what the plugin raised (the cause, if the worker wrapped it)."""
    shown = error.__cause__ or error
    text = "".join(traceback.format_exception(type(shown), shown, shown.__traceback__))
    return text[-TRACEBACK_LIMIT:]


def _load(plugin_id: str, value: str, code_dir: str | None) -> object:
    entry_point = EntryPoint(plugin_id, value, ENTRY_POINT_GROUP)
    try:
        loaded = entry_point.load()
        elsewhere = code_elsewhere(plugin_id, value, Path(code_dir)) if code_dir else None
        if elsewhere:
            raise AcpPluginsError(elsewhere, plugin_id=plugin_id)
        return loaded() if isinstance(loaded, type) else loaded
    except SandboxViolation:
        raise
    except (Exception, SystemExit) as error:
        raise AcpPluginsError(
            f"importing '{value}' failed: {type(error).__name__}: {error}", plugin_id=plugin_id
        ) from error


async def _main(fd: int) -> int:
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):  # a call that never waits completes as it arrives
        loop.set_task_factory(asyncio.eager_task_factory)
    worker = Worker()
    channel = socket.socket(fileno=fd)
    transport, _ = await loop.connect_accepted_socket(
        lambda: FrameReader(worker.on_frame, worker.on_closed), sock=channel
    )
    worker.transport = transport
    status = await worker.finished
    transport.close()
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not args[0].isdigit():
        print(
            "usage: python -m acp_plugins.isolation.worker FD (started by the host)",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(_main(int(args[0])))
    except Exception:  # the host reports the exit; the traceback goes to the worker's stderr
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
