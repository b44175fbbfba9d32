"""``MockPluginContext``: a plugin's context without a host, for unit tests.

It is a real :class:`~acp_plugins.PluginContext` (the same permission checks, the
same refusal texts) over a recording stand-in for the host: every call the plugin
makes is kept in :attr:`MockPluginContext.calls`, answers come from what the test
set (:meth:`~MockPluginContext.answer_message`, ``answer_command``,
``answer_query``, ``answer_plugin``), and events reach the plugin's subscriptions
with :meth:`~MockPluginContext.deliver`.
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acp_plugins.errors import AcpPluginsError, PermissionDenied
from acp_plugins.events.bus import Event
from acp_plugins.loading.manifest import Manifest, parse_manifest, read_manifest
from acp_plugins.loading.permissions import Permission, PermissionPolicy
from acp_plugins.models import (
    CommandResult,
    DataQuery,
    DataResult,
    DataSourceDefinition,
    Message,
    MessageResponse,
)
from acp_plugins.runtime.context import PluginContext, topic_syntax_error
from acp_plugins.runtime.figures import PluginFigures
from acp_plugins.topics import matcher

__all__ = ["Call", "MockPluginContext"]

Answer = Any  # a value, or a callable of the call's arguments returning it


@dataclass(frozen=True)
class Call:
    """One thing the plugin asked of its host: ``kind`` and the arguments it gave."""

    kind: str
    arguments: dict[str, Any]


@dataclass
class _Subscription:
    pattern: str
    handler: Callable[[Any], Any]


@dataclass
class _Recorder:
    """The host side of a :class:`MockPluginContext` (what ``HostServices`` offers)."""

    policy: PermissionPolicy
    granted: frozenset[Permission]
    calls: list[Call] = field(default_factory=list)
    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)
    offered_sources: list[DataSourceDefinition] = field(default_factory=list)
    subscriptions: list[_Subscription] = field(default_factory=list)
    figures: PluginFigures = field(default_factory=PluginFigures)
    sequence: int = 0

    def _answer(self, kind: str, key: str, how: str, *arguments: Any) -> Any:
        answer = self.answers.get((kind, key), self.answers.get((kind, "*"), _MISSING))
        if answer is _MISSING:
            raise AcpPluginsError(
                f"MockPluginContext has no answer for {kind} {key!r}; set one with "
                f"context.{how}(...)"
            )
        return answer(*arguments) if callable(answer) else answer

    async def query_data(self, caller: str, source_id: str, query: DataQuery) -> DataResult:
        self.calls.append(Call("query", {"source_id": source_id, "query": query}))
        answer = await _settled(self._answer("query", source_id, "answer_query", query))
        if isinstance(answer, list):
            return DataResult(source_id=source_id, rows=answer, total=len(answer))
        return DataResult.model_validate(answer)

    def data_sources(self) -> list[DataSourceDefinition]:
        self.calls.append(Call("data_sources", {}))
        return list(self.offered_sources)

    async def send_message(self, caller: str, message: Message) -> MessageResponse:
        self.calls.append(Call("message", {"message": message}))
        answer = await _settled(self._answer("message", message.type, "answer_message", message))
        if isinstance(answer, str):
            return MessageResponse(content=answer)
        return MessageResponse.model_validate(answer)

    async def run_command_for(
        self, caller: str, command: str, args: Sequence[str]
    ) -> CommandResult:
        self.calls.append(Call("command", {"command": command, "args": list(args)}))
        answer = await _settled(self._answer("command", command, "answer_command", list(args)))
        if isinstance(answer, str):
            return CommandResult(output=answer)
        return CommandResult.model_validate(answer)

    async def send_to_plugin(self, caller: str, target: str, payload: Any) -> Any:
        self.calls.append(Call("plugin_message", {"target": target, "payload": payload}))
        return await _settled(self._answer("plugin_message", target, "answer_plugin", payload))

    def subscribe(
        self, owner: PluginContext, pattern: str, handler: Callable[[Any], Any]
    ) -> object:
        self._refuse(owner.plugin_id, pattern, "subscribe")
        self.calls.append(Call("subscribe", {"pattern": pattern}))
        subscription = _Subscription(pattern, handler)
        self.subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, token: object) -> None:
        if token in self.subscriptions:
            self.subscriptions.remove(token)

    def publish_event(self, caller: str, topic: str, data: Any) -> int:
        self._refuse(caller, topic, "publish")
        payload = data if isinstance(data, dict) else {"value": data}
        self.calls.append(Call("publish", {"topic": topic, "data": payload}))
        return 0

    def topic_rules(self) -> dict[str, dict[str, list[str]]]:
        return self.policy.topic_rules()

    def check_topic(self, caller: str, pattern: str, action: str) -> None:
        self._refuse(caller, pattern, action)

    def _refuse(self, caller: str, name: str, action: str) -> None:
        error = topic_syntax_error(caller, name, action) or self.policy.topic_denial(
            caller, self.granted, name, action
        )
        if error is not None:
            if isinstance(error, PermissionDenied):
                denial = {"permission": error.permission, "operation": error.operation}
                self.calls.append(Call("denied", denial))
            raise error

    def permission_denied(self, caller: str, permission: str, operation: str) -> None:
        self.calls.append(Call("denied", {"permission": permission, "operation": operation}))

    def record_metric(self, caller: str, name: str, value: object) -> None:
        self.figures.record(caller, name, value)  # checks the name and value as the host does
        self.calls.append(Call("metric", {"name": name, "value": value}))


_MISSING = object()


async def _settled(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _manifest(source: Manifest | Mapping[str, Any] | str | Path) -> Manifest:
    if isinstance(source, Manifest):
        return source
    if isinstance(source, Path):
        return read_manifest(source)
    if isinstance(source, str):
        return parse_manifest(source)
    import json

    return parse_manifest(json.dumps(dict(source)))


class MockPluginContext(PluginContext):
    """A context for one plugin with no host: records calls, answers from fixtures.

    ``manifest`` (a :class:`Manifest`, its JSON text, a dict, or the path of a
    ``manifest.json``) says who the plugin is and what it requested; the context is
    granted exactly that (``granted`` to test with less) and refuses anything else
    with the :class:`~acp_plugins.errors.PermissionDenied` a host would raise.
    """

    def __init__(
        self,
        manifest: Manifest | Mapping[str, Any] | str | Path,
        *,
        settings: Any = None,
        config: Mapping[str, Any] | None = None,
        data_dir: Path | None = None,
        granted: Iterable[Permission | str] | None = None,
        policy: PermissionPolicy | None = None,
    ) -> None:
        parsed = _manifest(manifest)
        permissions = frozenset(
            Permission(p) for p in (granted if granted is not None else parsed.permissions)
        )
        self.recorder = _Recorder(policy=policy or PermissionPolicy(), granted=permissions)
        if data_dir is None:
            self._temporary = tempfile.TemporaryDirectory(prefix=f"acp-{parsed.plugin_id}-")
            data_dir = Path(self._temporary.name)
        if config is None:
            config = settings.model_dump() if hasattr(settings, "model_dump") else {}
        super().__init__(manifest=parsed, permissions=permissions, config=config,
                         data_dir=data_dir, host=self.recorder, settings=settings)  # fmt: skip

    # -- what the plugin did ----------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Everything the plugin asked of its host, in order (refusals as ``denied``)."""
        return self.recorder.calls

    def calls_of(self, kind: str) -> list[dict[str, Any]]:
        """The arguments of the calls of one kind: ``message``, ``command``, ``query``,
        ``plugin_message``, ``publish``, ``subscribe``, ``metric``, ``denied``..."""
        return [call.arguments for call in self.recorder.calls if call.kind == kind]

    @property
    def sent_messages(self) -> list[Message]:
        return [arguments["message"] for arguments in self.calls_of("message")]

    @property
    def published(self) -> list[tuple[str, dict[str, Any]]]:
        return [(a["topic"], a["data"]) for a in self.calls_of("publish")]

    @property
    def metrics(self) -> dict[str, list[float]]:
        """Each metric name the plugin recorded, with its values in order."""
        found: dict[str, list[float]] = {}
        for arguments in self.calls_of("metric"):
            found.setdefault(arguments["name"], []).append(float(arguments["value"]))
        return found

    @property
    def denied(self) -> list[dict[str, Any]]:
        """What was refused: the permission and the operation."""
        return self.calls_of("denied")

    # -- what the host answers --------------------------------------------------

    def answer_message(self, answer: Answer, message_type: str = "*") -> None:
        """What ``send_message`` returns (text, a MessageResponse, or a callable of it)."""
        self.recorder.answers[("message", message_type)] = answer

    def answer_command(self, command: str, answer: Answer) -> None:
        """What ``run_command(command, ...)`` returns (text, a CommandResult, a callable)."""
        self.recorder.answers[("command", command)] = answer

    def answer_query(self, source_id: str, answer: Answer) -> None:
        """What ``query_data(source_id, ...)`` returns (rows, a DataResult, a callable)."""
        self.recorder.answers[("query", source_id)] = answer

    def answer_plugin(self, target: str, answer: Answer) -> None:
        """What ``send_to_plugin(target, ...)`` returns (a value, or a callable of payload)."""
        self.recorder.answers[("plugin_message", target)] = answer

    def offer_sources(self, *sources: DataSourceDefinition) -> None:
        """What ``data_sources()`` lists."""
        self.recorder.offered_sources = list(sources)

    async def deliver(self, topic: str, data: Mapping[str, Any] | None = None,
                      publisher: str = "host") -> int:  # fmt: skip
        """Give an event to the plugin's subscriptions that match ``topic``; how many."""
        recorder = self.recorder
        recorder.sequence += 1
        event = Event(topic, dict(data or {}), publisher, recorder.sequence)
        reached = 0
        for subscription in list(recorder.subscriptions):
            if matcher(subscription.pattern).match(topic):
                await _settled(subscription.handler(event))
                reached += 1
        return reached
