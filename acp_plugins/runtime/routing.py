"""Message routing: every eligible handler scores the message, the best one answers.

Eligible handlers are the active plugins whose supported message types include
the message's type (or ``"*"``). They are asked ``can_handle`` concurrently; a
score must be a number in ``0.0 .. 1.0`` (anything else is recorded as an error
of that plugin and counts as no score). The highest score above zero wins; ties
go to the plugin id that sorts first. If the winner fails, the next best is
tried (failover): it gets the same message, with the same ``id`` and
``attempt`` counting up from 1. A handler that failed may have done part of the
work before it failed, so a message can be handled more than once; a handler
with side effects uses ``id`` as an idempotency key. When nobody scores above
zero the answer is an explicit "unhandled" response.

Scoring has a deadline of its own, shorter than a hook's timeout
(:attr:`MessageRouter.score_timeout`, at most 1 s), and a plugin whose
``can_handle`` times out ``MAX_SCORING_TIMEOUTS`` times in a row is left out
of routing for ``SCORING_PAUSE`` seconds, then tried again: one hung scorer
costs a few messages a short wait, not every message the full timeout.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from acp_plugins.errors import CallTimeout, PluginCallError
from acp_plugins.models import Message, MessageResponse
from acp_plugins.runtime.calls import CallGuard, invalid_return
from acp_plugins.runtime.record import PluginRecord

if TYPE_CHECKING:
    from acp_plugins.runtime.context import PluginContext

__all__ = ["MessageRouter", "RoutedMessage", "coerce_response"]


@dataclass(frozen=True, slots=True)
class RoutedMessage:
    """Which plugin answered a message (``None`` if none did), how sure it was, and the answer."""

    plugin_id: str | None
    confidence: float
    response: MessageResponse
    scores: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def handled(self) -> bool:
        return self.plugin_id is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin_id": self.plugin_id,
            "handled": self.handled,
            "confidence": self.confidence,
            "response": self.response.model_dump(mode="json"),
            "scores": self.scores,
            "errors": self.errors,
        }


def coerce_response(record: PluginRecord, value: Any) -> MessageResponse:
    """Accept a MessageResponse, a dict of its fields, or a string (the content)."""
    if isinstance(value, MessageResponse):
        return value
    if isinstance(value, str):
        return MessageResponse(content=value)
    if isinstance(value, dict):
        try:
            return MessageResponse.model_validate(value)
        except ValueError as error:
            raise invalid_return(
                record, "handle_message", f"an invalid response: {error}"
            ) from None
    raise invalid_return(record, "handle_message", f"{type(value).__name__}, not a MessageResponse")


def _valid_score(value: Any) -> bool:
    if type(value) is float or type(value) is int:
        return 0.0 <= value <= 1.0  # NaN fails both comparisons
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and not math.isnan(value)
        and 0.0 <= value <= 1.0
    )


#: Timeouts of ``can_handle`` in a row that leave a plugin out of routing for a while.
MAX_SCORING_TIMEOUTS = 3
#: How long (seconds) such a plugin is left out before it is asked again.
SCORING_PAUSE = 30.0


class MessageRouter:
    """Routes messages among message handler plugins."""

    __slots__ = ("_by_type", "_declared", "_guard", "_handlers", "_paused_until", "_timeouts")

    #: How many message types' candidate lists are remembered at once.
    MAX_CACHED_TYPES = 1024

    def __init__(self, guard: CallGuard) -> None:
        self._guard = guard
        self._handlers: list[PluginRecord] = []
        self._by_type: dict[str, list[PluginRecord]] = {}
        #: message type -> whether a handler names it (not only "*"): usage labels.
        self._declared: dict[str, bool] = {}
        self._timeouts: dict[str, int] = {}  # can_handle timeouts in a row, by plugin id
        self._paused_until: dict[str, float] = {}  # left out of routing until (monotonic)

    @property
    def score_timeout(self) -> float:
        """How long a ``can_handle`` may take: the call timeout, but at most one second."""
        return min(self._guard.timeout, 1.0)

    def _scorers(
        self, candidates: Sequence[PluginRecord], errors: dict[str, str]
    ) -> list[PluginRecord]:
        if not self._paused_until:
            return list(candidates)
        now = time.monotonic()
        asked = []
        for record in candidates:
            until = self._paused_until.get(record.plugin_id)
            if until is not None and now < until:
                errors[record.plugin_id] = (
                    f"'{record.plugin_id}' is left out of routing for {until - now:.0f} s more: "
                    f"its can_handle timed out {MAX_SCORING_TIMEOUTS} times in a row"
                )
                continue
            asked.append(record)
        return asked

    def _scored(self, record: PluginRecord, outcome: object) -> None:
        plugin_id = record.plugin_id
        if not isinstance(outcome, CallTimeout):
            self._timeouts.pop(plugin_id, None)
            self._paused_until.pop(plugin_id, None)
            return
        count = self._timeouts[plugin_id] = self._timeouts.get(plugin_id, 0) + 1
        if count >= MAX_SCORING_TIMEOUTS:
            self._timeouts[plugin_id] = MAX_SCORING_TIMEOUTS - 1  # one more after the pause
            self._paused_until[plugin_id] = time.monotonic() + SCORING_PAUSE

    @property
    def handlers(self) -> list[PluginRecord]:
        """The active message handlers, in plugin id order."""
        return list(self._handlers)

    def add(self, record: PluginRecord) -> None:
        """Route to one more (just activated) handler."""
        bisect.insort(self._handlers, record, key=lambda r: r.plugin_id)
        self._by_type.clear()
        self._declared.clear()

    def reset(self, records: Iterable[PluginRecord]) -> None:
        """Route to exactly ``records`` from now on."""
        self._handlers = sorted(records, key=lambda r: r.plugin_id)
        self._by_type.clear()
        self._declared.clear()

    def eligible(self, message_type: str) -> list[PluginRecord]:
        """The handlers that accept ``message_type``, in plugin id order."""
        found = self._by_type.get(message_type)
        if found is None:
            if len(self._by_type) >= self.MAX_CACHED_TYPES:
                self._by_type.clear()
            found = self._by_type[message_type] = [
                record
                for record in self._handlers
                if message_type in record.message_types or "*" in record.message_types
            ]
        return found

    def declares(self, message_type: str) -> bool:
        """Whether an active handler names ``message_type`` among its types (``*`` does not)."""
        known = self._declared.get(message_type)
        if known is None:  # once per type between changes of the handlers
            if len(self._declared) >= self.MAX_CACHED_TYPES:
                self._declared.clear()
            known = self._declared[message_type] = any(
                message_type in record.message_types for record in self._handlers
            )
        return known

    async def route(
        self,
        message: Message,
        context_for: Callable[[PluginRecord], PluginContext],
    ) -> RoutedMessage:
        """Offer ``message`` to the eligible handlers and return the answer."""
        candidates = self.eligible(message.type)
        scores: dict[str, float] = {}
        errors: dict[str, str] = {}
        asked = self._scorers(candidates, errors)
        outcomes = await self._guard.call_many(
            asked, "can_handle", {"message": message}, timeout=self.score_timeout
        )
        ranked: list[tuple[float, str, PluginRecord]] = []
        watching = bool(self._timeouts)  # a plugin's timeouts in a row are being counted
        for record, outcome in zip(asked, outcomes, strict=True):
            if watching or isinstance(outcome, CallTimeout):
                self._scored(record, outcome)
            if isinstance(outcome, PluginCallError):
                errors[record.plugin_id] = outcome.message
                continue
            if not _valid_score(outcome):
                error = invalid_return(
                    record, "can_handle", f"{outcome!r}, not a confidence between 0.0 and 1.0"
                )
                errors[record.plugin_id] = error.message
                continue
            score = float(outcome)
            scores[record.plugin_id] = score
            if score > 0.0:
                ranked.append((-score, record.plugin_id, record))
        ranked.sort()  # best score first, then plugin id (unique: records are never compared)
        for attempt, (negative, plugin_id, record) in enumerate(ranked, start=1):
            offered = message if attempt == 1 else message.model_copy(update={"attempt": attempt})
            try:
                answer = await self._guard.call(
                    record,
                    "handle_message",
                    {"message": offered, "context": context_for(record)},
                )
                response = coerce_response(record, answer)
            except PluginCallError as error:
                errors[plugin_id] = error.message
                continue
            return RoutedMessage(plugin_id, -negative, response, scores, errors)
        unhandled = self._unhandled(message, candidates, ranked)
        return RoutedMessage(None, 0.0, unhandled, scores, errors)

    @staticmethod
    def _unhandled(
        message: Message, candidates: Sequence[PluginRecord], ranked: Sequence[object]
    ) -> MessageResponse:
        if ranked:
            text = f"every plugin that could handle this '{message.type}' message failed"
        elif candidates:
            text = f"no plugin is confident it can handle this '{message.type}' message"
        else:
            text = f"no active plugin handles messages of type '{message.type}'"
        return MessageResponse(content=text, handled=False)
