"""The command line as a client of a running ``acp-plugins serve``.

With ``--server URL`` (or ``ACP_SERVER_URL``), the commands in :data:`REMOTE_COMMANDS`
ask that server instead of starting a host of their own: the same handlers run
against :class:`RemoteHost`, which offers the part of ``PluginHost`` they use over
the REST API, so the output and the exit statuses are the same. A server's error
comes back as the library error it was (its ``kind``), or, for the server's own
errors, as one line with the status that fits. The token is ``ACP_SERVER_TOKEN``,
else the server's token file in the data directory (``server.token``).

Only the standard library is used (``urllib``): the client needs no extra.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acp_plugins import errors
from acp_plugins.cli.exits import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_PLUGIN_ERROR,
    EXIT_USAGE,
    CliError,
)
from acp_plugins.config.origins import DEFAULT_ORIGIN, Layer, ValueOrigin
from acp_plugins.config.trees import leaves
from acp_plugins.models import DataQuery, Message, MessageResponse, TimeRange
from acp_plugins.runtime.lifecycle import PluginState
from acp_plugins.runtime.reload import ReloadResult
from acp_plugins.runtime.routing import RoutedMessage
from acp_plugins.telemetry import PluginHealth, TelemetryReport

__all__ = [
    "LOCAL_COMMANDS",
    "REMOTE_COMMANDS",
    "RemoteHost",
    "RemoteViews",
    "check_remote",
    "remote_audit",
    "run_remote",
    "server_token",
]

#: The commands that go to a server with ``--server`` (config ones with their action).
REMOTE_COMMANDS = frozenset({
    "list", "info", "send", "run", "commands", "query", "sources", "report", "metrics",
    "audit", "health", "telemetry", "reload", "config show", "config get", "config set",
    "config unset", "config schema",
})  # fmt: skip
#: Commands that never ask a host (they read files here): the same with ``--server``.
LOCAL_COMMANDS = frozenset({"schema", "test", "new"})
#: Why the rest cannot go to a server.
_WHY_NOT = {
    "serve": "it runs a host of its own",
    "dev": "it watches this machine's plugin folders with a host of its own",
    "validate": "checking an installed plugin by its id starts a host here; give a project "
    "folder instead",
    "config validate": "it checks a config file on this machine against the plugins installed here",
    "config show": "the server does not show its host's own settings",
    "config get": "the server does not show its host's own settings",
}


def command_key(args: Any) -> str:
    """``list``, or ``config set``: how :data:`REMOTE_COMMANDS` names a command line."""
    return f"{args.name} {args.action}" if args.name == "config" else str(args.name)


def check_remote(args: Any) -> None:
    """Refuse, in one line, a command that does not go through ``--server``."""
    key = command_key(args)
    if key in LOCAL_COMMANDS or (key == "validate" and Path(args.target).exists()):
        return
    if key in REMOTE_COMMANDS and not (
        key in ("config show", "config get") and args.plugin_id == "host"
    ):
        return
    why = _WHY_NOT.get(key, "it needs a host of its own")
    raise CliError(
        f"'{key}' does not go through --server ({why}); run it without --server and ACP_SERVER_URL",
        EXIT_USAGE,
    )


def _library_kinds() -> dict[str, type[errors.AcpPluginsError]]:
    """Every library error by name: what a server's problem may name as its ``kind``."""
    found: dict[str, type[errors.AcpPluginsError]] = {}
    pending: list[type[errors.AcpPluginsError]] = [errors.AcpPluginsError]
    while pending:
        kind = pending.pop()
        found[kind.__name__] = kind
        pending += kind.__subclasses__()
    return found


_STATUS = {400: EXIT_USAGE, 404: EXIT_NOT_FOUND, 422: EXIT_USAGE, 502: EXIT_PLUGIN_ERROR,
           504: EXIT_PLUGIN_ERROR}  # fmt: skip


def server_token(data_dir: Path, environ: Mapping[str, str] = os.environ) -> str | None:
    """The admin token: ``ACP_SERVER_TOKEN``, else the server's token file."""
    given = environ.get("ACP_SERVER_TOKEN", "").strip()
    if given:
        return given
    try:
        return (data_dir / "server.token").read_text(encoding="ascii").strip() or None
    except OSError:
        return None


@dataclass
class RemoteRecord:
    """A plugin as the server describes it: what the command handlers read of a record."""

    data: dict[str, Any]
    plugin_id: str = field(init=False)
    version: str = field(init=False)
    state: PluginState = field(init=False)
    waiting: bool = field(init=False)
    reason: str | None = field(init=False)
    interfaces: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.plugin_id = str(self.data["plugin_id"])
        self.version = str(self.data["version"])
        self.state = PluginState(self.data["state"])
        self.waiting = bool(self.data.get("waiting"))
        self.reason = self.data.get("reason")
        self.interfaces = list(self.data.get("interfaces") or [])

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


@dataclass(frozen=True)
class RemoteConfig:
    """A plugin's configuration as the server shows it: what ``config`` commands read."""

    values: dict[str, Any]
    origins: dict[str, ValueOrigin]

    def explain(self) -> list[tuple[str, Any, ValueOrigin]]:
        """``(dotted path, masked value, origin)`` of every value, sorted by path."""
        return sorted(
            (path, value, self.origins.get(path, DEFAULT_ORIGIN))
            for path, value in leaves(self.values)
        )


@dataclass(frozen=True)
class _Overrides:
    path: str


class RemoteHost:
    """The part of ``PluginHost`` the remote commands use, answered by a server."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.telemetry = _RemoteTelemetry(self)
        self.views = RemoteViews(self)
        self.overrides = _Overrides("(the server's)")
        self._records: dict[str, RemoteRecord] | None = None

    def _config(self, view: dict[str, Any]) -> RemoteConfig:
        self.overrides = _Overrides(str(view.get("overrides_file") or self.overrides.path))
        origins = {
            path: ValueOrigin(Layer(origin["layer"]), str(origin["source"]))
            for path, origin in view["origins"].items()
        }
        return RemoteConfig(values=view["values"], origins=origins)

    def config_of(self, plugin_id: str) -> RemoteConfig:
        quoted = urllib.parse.quote(plugin_id, safe="")
        return self._config(self.request("GET", f"/api/v1/plugins/{quoted}/config"))

    async def set_config(self, plugin_id: str, path: str, value: Any) -> RemoteConfig:
        """Put the change in force in the server's running plugin (saved there)."""
        quoted = urllib.parse.quote(plugin_id, safe="")
        view = self.request(
            "PUT", f"/api/v1/plugins/{quoted}/config", {"key": path, "value": value}
        )
        return self._config(view)

    async def unset_config(self, plugin_id: str, path: str) -> RemoteConfig:
        quoted, key = urllib.parse.quote(plugin_id, safe=""), urllib.parse.quote(path, safe="")
        return self._config(self.request("DELETE", f"/api/v1/plugins/{quoted}/config/{key}"))

    def request(self, method: str, path: str, body: Any = None, *, raw: bool = False) -> Any:
        """One call to the server; its problem raised as a library error or a CliError."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=600) as answer:
                payload = answer.read()
        except urllib.error.HTTPError as error:
            raise _problem(error) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise CliError(f"cannot reach the server at {self.url}: {reason}; is `acp-plugins "
                           "serve` running there?", EXIT_FAILED) from None  # fmt: skip
        if raw:
            return payload
        try:
            return json.loads(payload)
        except ValueError:
            raise CliError(f"the server at {self.url} did not answer {method} {path} with "
                           f"JSON; {_NOT_OURS}", EXIT_FAILED) from None  # fmt: skip

    @property
    def records(self) -> dict[str, RemoteRecord]:
        if self._records is None:
            listed = self.request("GET", "/api/v1/plugins")
            self._records = {item["plugin_id"]: RemoteRecord(item) for item in listed}
        return self._records

    def record(self, plugin_id: str) -> RemoteRecord:
        quoted = urllib.parse.quote(plugin_id, safe="")
        return RemoteRecord(self.request("GET", f"/api/v1/plugins/{quoted}"))

    async def start_plugin(self, plugin_id: str) -> None:
        """Nothing to do: the server starts what it is asked about."""

    async def send(self, message: Message) -> RoutedMessage:
        answer = self.request("POST", "/api/v1/messages", message.model_dump(mode="json"))
        return RoutedMessage(
            plugin_id=answer["plugin_id"], confidence=answer["confidence"],
            response=MessageResponse.model_validate(answer["response"]),
            scores=answer["scores"], errors=answer["errors"],
        )  # fmt: skip

    async def reload(self, plugin_id: str, *, suspend_dependents: bool = False) -> ReloadResult:
        quoted = urllib.parse.quote(plugin_id, safe="")
        flag = "true" if suspend_dependents else "false"
        answer = self.request("POST", f"/api/v1/plugins/{quoted}/reload?suspend_dependents={flag}")
        answer.pop("ok", None)
        return ReloadResult(**answer)


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


class RemoteViews:
    """The server's answers for ``info``, ``commands``, ``run``, ``query``... (see
    :class:`acp_plugins.views.HostViews`, which makes them on the server)."""

    def __init__(self, host: RemoteHost) -> None:
        self.host = host

    async def plugin_info(self, plugin_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.host.request("GET", f"/api/v1/plugins/{_quote(plugin_id)}")
        return answer

    async def commands(self) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = self.host.request("GET", "/api/v1/commands")
        return answer

    async def command(self, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.host.request("GET", f"/api/v1/commands/{_quote(name)}")
        return answer

    async def run_command(self, name: str, args: Sequence[str]) -> dict[str, Any]:
        body = {"args": list(args)}
        answer: dict[str, Any] = self.host.request("POST", f"/api/v1/commands/{_quote(name)}", body)
        return answer

    async def sources(self) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = self.host.request("GET", "/api/v1/sources")
        return answer

    async def query(self, source: str, query: DataQuery | None) -> dict[str, Any]:
        body = query.model_dump(mode="json") if query is not None else None
        answer: dict[str, Any] = self.host.request(
            "POST", f"/api/v1/sources/{_quote(source)}/query", body
        )
        return answer

    async def reports(
        self, plugin_id: str | None, format: str, window: TimeRange
    ) -> list[dict[str, Any]]:
        seconds = max(1.0, (window.end - window.start).total_seconds())
        asked = {"format": format, "since_seconds": f"{seconds:g}"}
        if plugin_id is not None:
            asked["plugin"] = plugin_id
        answer: list[dict[str, Any]] = self.host.request(
            "GET", f"/api/v1/reports?{urllib.parse.urlencode(asked)}"
        )
        return answer

    async def metric_definitions(self) -> dict[str, list[dict[str, Any]]]:
        answer: dict[str, list[dict[str, Any]]] = self.host.request(
            "GET", "/api/v1/analytics/metrics"
        )
        return answer

    async def config_schema(self, plugin_id: str) -> dict[str, Any]:
        path = f"/api/v1/plugins/{_quote(plugin_id)}/config/schema"
        answer: dict[str, Any] = self.host.request("GET", path)
        return answer

    def audit(self, plugin_id: str | None, actions: Sequence[str], last: int | None) -> Any:
        """The audit page ``acp-plugins audit`` prints, fetched 1,000 entries at a time."""
        asked: list[tuple[str, str]] = [("action", action) for action in actions]
        if plugin_id is not None:
            asked.append(("plugin", plugin_id))

        def page(offset: int) -> dict[str, Any]:
            query = urllib.parse.urlencode([*asked, ("offset", str(offset)), ("limit", "1000")])
            answer: dict[str, Any] = self.host.request("GET", f"/api/v1/audit?{query}")
            return answer

        first = page(0)
        total = int(first["total"])
        offset = max(0, total - last) if last is not None else 0
        entries: list[dict[str, Any]] = []
        while offset < total:
            current = first if offset == 0 else page(offset)
            if not current["entries"]:
                break
            entries += current["entries"]
            offset += len(current["entries"])
        return {**first, "entries": entries}


def remote_audit(args: Any, server: str) -> dict[str, Any]:
    """``acp-plugins audit`` through the server at ``server``."""
    from acp_plugins.cli.hosting import host_settings

    settings, _ = host_settings(args)
    views = RemoteHost(server, server_token(settings.data_dir)).views
    page: dict[str, Any] = views.audit(args.plugin, args.action, args.last)
    return page


class _RemoteTelemetry:
    def __init__(self, host: RemoteHost) -> None:
        self.host = host

    async def get_plugin_health(self, plugin_id: str) -> PluginHealth:
        quoted = urllib.parse.quote(plugin_id, safe="")
        return PluginHealth.model_validate(
            self.host.request("GET", f"/api/v1/plugins/{quoted}/health")
        )

    async def generate_telemetry_report(self, time_range: TimeRange) -> TelemetryReport:
        seconds = max(1.0, (time_range.end - time_range.start).total_seconds())
        answer = self.host.request("GET", f"/api/v1/telemetry?since_seconds={seconds:g}")
        return TelemetryReport.model_validate(answer)

    def prometheus(self) -> bytes:
        payload: bytes = self.host.request("GET", "/metrics", raw=True)
        return payload


#: What a client says of an answer that is not one of acp-plugins serve's.
_NOT_OURS = "is it an `acp-plugins serve` (check --server or ACP_SERVER_URL)?"


def _problem(error: urllib.error.HTTPError) -> Exception:
    try:
        body = json.loads(error.read())
    except (ValueError, OSError):
        body = None
    if not isinstance(body, dict) or "status" not in body:
        return CliError(f"the server answered {error.code} ({error.reason}) without a problem "
                        f"document; {_NOT_OURS}", EXIT_FAILED)  # fmt: skip
    detail = str(body.get("detail") or error.reason)
    kind = _library_kinds().get(str(body.get("kind")))
    if kind is not None:
        # raised again as it was on the server: the same message and the same exit status
        # (built without its own __init__, whose arguments differ from kind to kind)
        again = kind.__new__(kind)
        errors.AcpPluginsError.__init__(again, detail, plugin_id=body.get("plugin_id"))
        return again
    return CliError(f"the server answered {error.code}: {detail}",
                    _STATUS.get(error.code, EXIT_FAILED))  # fmt: skip


async def run_remote(handler: Any, args: Any, server: str) -> int:
    """Run a command's handler against the server at ``server``."""
    from acp_plugins.cli.hosting import host_settings

    check_remote(args)
    settings, _ = host_settings(args)
    result: int = await handler(RemoteHost(server, server_token(settings.data_dir)), args)
    return result
