"""``PluginHarness``: a real host over the plugins a test installed, driven from sync code.

What the ``acp_host`` fixture gives a test. The host discovers only the folders it
is given, grants each plugin exactly what its manifest requests (nothing by default),
runs every plugin in-process (``mode="trusted"``) or each in its own sandboxed worker
(``mode="isolated"``), and keeps every event published on its bus and every audit
entry it wrote for the test to read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from acp_plugins.audit import AuditEntry, read_audit_log
from acp_plugins.config.settings import TelemetrySettings
from acp_plugins.events.bus import Event
from acp_plugins.host import PluginHost
from acp_plugins.loading.discovery import discover
from acp_plugins.loading.permissions import PermissionPolicy
from acp_plugins.loading.trust import TRUST_ALL, IsolationPolicy
from acp_plugins.models import CommandResult, DataQuery, DataResult, Message
from acp_plugins.runtime.routing import RoutedMessage

__all__ = ["MODES", "Mode", "PluginHarness"]

Mode = Literal["trusted", "isolated"]
#: The two ways a plugin runs: in the host's process, or in a worker of its own.
MODES: tuple[Mode, ...] = ("trusted", "isolated")
#: A topic no one publishes on: subscribing to it keeps the bus publishing.
_NOBODY = "acp-testing.never"

T = TypeVar("T")


class PluginHarness:
    """A :class:`PluginHost` on its own event loop, with the events and audit kept.

    ``folders``: where the plugins are installed (``pip install --target``); ``mode``:
    ``trusted`` or ``isolated``; ``settings``: ``{plugin_id: {key: value}}`` as a config
    file would give them. Start it with :meth:`start` (or use it as a context manager).
    """

    def __init__(
        self,
        folders: Sequence[Path],
        data_root: Path,
        *,
        mode: Mode = "trusted",
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        timeout: float = 10.0,
        telemetry: bool = True,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: use 'trusted' or 'isolated'")
        self.mode: Mode = mode
        self.folders = list(folders)
        self.data_root = data_root
        self.settings = dict(settings or {})
        self.timeout = timeout
        self.telemetry = telemetry
        #: Every event published on the host's bus since it started, in order.
        self.events: list[Event] = []
        self._loop = asyncio.new_event_loop()
        self._host: PluginHost | None = None

    # -- the host -----------------------------------------------------------------

    @property
    def host(self) -> PluginHost:
        """The running host (started on first use)."""
        if self._host is None:
            self.start()
        assert self._host is not None
        return self._host

    def _policy(self) -> PermissionPolicy:
        """Each plugin in the folders granted exactly what its manifest requests."""
        found = discover(self.folders)
        grants = {d.plugin_id: [p.value for p in d.manifest.permissions]
                  for d in found if d.manifest is not None}  # fmt: skip
        return PermissionPolicy.from_names(grants=grants, defaults=())

    def _build(self) -> PluginHost:
        isolation = TRUST_ALL if self.mode == "trusted" else IsolationPolicy()
        host = PluginHost(
            search_path=self.folders,
            data_root=self.data_root,
            policy=self._policy(),
            isolation=isolation,
            settings=self.settings,
            timeout=self.timeout,
            telemetry=TelemetrySettings(enabled=self.telemetry),
        )
        publish = host.events.publish

        def keeping(topic: str, data: Mapping[str, Any], publisher: str = "host") -> int:
            reached = publish(topic, data, publisher)
            self.events.append(Event(topic, dict(data), publisher, len(self.events) + 1))
            return reached

        host.events.publish = keeping  # type: ignore[method-assign]
        host.events.subscribe(_NOBODY, subscriber="acp-testing")
        return host

    def start(self) -> PluginHarness:
        """Discover, load, initialize and activate every plugin in the folders."""
        if self._host is None:
            self._host = self._build()
            self.run(self._host.start())
        return self

    def stop(self) -> None:
        """Stop the host (every plugin unloaded, every worker gone) and close the loop."""
        if self._host is not None:
            self.run(self._host.stop())
            self._host = None
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def __enter__(self) -> PluginHarness:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine (``harness.run(harness.host.reload("x"))``) to its end."""
        return self._loop.run_until_complete(coroutine)

    def rescan(self) -> None:
        """Pick up plugins installed into the folders since the host started."""
        if self._host is not None:
            self._host.policy = self._policy()
            self.run(self._host.rescan())

    # -- calls --------------------------------------------------------------------

    def send(self, type: str, content: str = "", **fields: Any) -> RoutedMessage:
        """Route a message; who answered and the answer."""
        return self.run(self.host.send(Message(type=type, content=content, **fields)))

    def run_command(self, name: str, *args: str) -> CommandResult:
        """Run a command with a command line (``run_command("add", "2", "3")``)."""
        return self.run(self.host.run_command(name, list(args)))

    def query(self, source: str, **query: Any) -> DataResult:
        """Query a data source (``query("agents", limit=5)``)."""
        return self.run(self.host.query(source, DataQuery(**query)))

    def state(self, plugin_id: str) -> str:
        """Where a plugin is in its lifecycle: ``active``, ``suspended``, ``failed``..."""
        return self.host.record(plugin_id).state.value

    # -- what happened ------------------------------------------------------------

    def topics(self) -> list[str]:
        """The topics of the events published so far, in order."""
        return [event.topic for event in self.events]

    def audit(self, plugin_id: str | None = None, action: str | None = None) -> list[AuditEntry]:
        """The audit entries the host wrote, optionally of one plugin and one action."""
        path = self.host.audit.path
        entries, _ = read_audit_log(path, plugin_id=plugin_id) if path else ([], 0)
        return [e for e in entries if action is None or e.action == action]

    def refusals(self, plugin_id: str | None = None) -> list[AuditEntry]:
        """What was refused: denied context operations, refused loads, sandbox refusals."""
        return [
            e for e in self.audit(plugin_id)
            if e.outcome in ("denied", "refused") or e.action in ("deny", "refuse", "sandbox")
        ]  # fmt: skip
