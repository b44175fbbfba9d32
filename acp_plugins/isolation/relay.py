"""The context relay: a worker's ``context`` requests, run against the plugin's host-side context.

An isolated plugin's ``context.query_data``, ``send_message`` and
``run_command`` travel to the host as ``context`` frames. They are answered
here by the plugin's :class:`~acp_plugins.runtime.context.PluginContext`, where
permissions are checked and refusals audited, exactly as for a trusted plugin;
the worker's own checks only make a refusal come sooner.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import ValidationError

from acp_plugins.errors import AcpPluginsError, PermissionDenied
from acp_plugins.isolation.protocol import decode_value, encode_value
from acp_plugins.loading.permissions import Permission
from acp_plugins.models import DataQuery, Message

__all__ = ["ContextRelay", "encode_kwargs"]

logger = logging.getLogger(__name__)


class ContextRelay:
    """Answers one worker's context requests with the plugin's host-side context."""

    __slots__ = ("call", "context", "feeds", "in_flight", "limit", "plugin_id")

    def __init__(
        self,
        plugin_id: str,
        limit: int = 64,
        call: Callable[[str, Mapping[str, Any]], Awaitable[Any]] | None = None,
    ) -> None:
        self.plugin_id = plugin_id
        #: Calls the worker (each subscribed event is a call its handler answers).
        self.call = call
        #: The worker's subscription ids -> the host-side subscriptions made for them.
        self.feeds: dict[int, object] = {}
        #: The plugin's :class:`~acp_plugins.runtime.context.PluginContext`, once initialized.
        self.context: Any = None
        #: Requests being answered now, and how many may be at once.
        self.in_flight = 0
        self.limit = limit

    def refusal(self, frame: Mapping[str, Any]) -> dict[str, Any] | None:
        """The reply refusing ``frame`` if the worker already has its limit in flight."""
        if self.in_flight < self.limit:
            return None
        message = (
            f"'{self.plugin_id}' already has {self.limit} context calls waiting for the "
            "host, the most it may; wait for their answers"
        )
        return {"op": "reply", "id": frame["id"], "error": {"message": message}}

    async def answer(self, frame: Mapping[str, Any]) -> dict[str, Any] | None:
        """The ``reply`` frame to a ``context`` frame (``None``: the request needs no reply)."""
        ask_id, method = frame["id"], frame["method"]
        if method == "data_sources":  # only ever sent to be refused: see update_sources
            with contextlib.suppress(AcpPluginsError):
                if self.context is not None:
                    self.context.data_sources()
            return None
        if method == "topic_refused":  # refused in the worker already: audited here
            args = decode_value(frame.get("args")) or {}
            with contextlib.suppress(AcpPluginsError, KeyError, TypeError):
                if self.context is not None:
                    self.context.check_topic(str(args["pattern"]), str(args["action"]))
            return None
        if method == "permission_refused":  # refused in the worker already: audited here
            args = decode_value(frame.get("args")) or {}
            with contextlib.suppress(AcpPluginsError, KeyError, TypeError, ValueError):
                if self.context is not None:
                    self.context.require(Permission(args["permission"]), str(args["operation"]))
            return None
        if method == "record_metric":  # checked in the worker already: not answered
            self._record_metric(frame.get("args"))
            return None
        reply: dict[str, Any] = {"op": "reply", "id": ask_id}
        self.in_flight += 1
        try:
            reply["value"] = encode_value(await self._call(method, frame.get("args")))
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
        finally:
            self.in_flight -= 1
        return reply

    async def _call(self, method: str, raw: Any) -> Any:
        context = self.context
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
        if method == "send_to_plugin":
            return await context.send_to_plugin(str(args["target_id"]), args.get("payload"))
        if method == "publish":
            return await context.publish(str(args["topic"]), args.get("data"))
        if method == "subscribe":
            return self._subscribe(context, str(args["pattern"]), int(args["subscription"]))
        if method == "unsubscribe":
            token = self.feeds.pop(int(args["subscription"]), None)
            if token is not None:
                context.unsubscribe(token)
            return None
        raise AcpPluginsError(f"no context operation {method!r}", plugin_id=self.plugin_id)

    def _record_metric(self, raw: Any) -> None:
        args = decode_value(raw) if isinstance(raw, dict) else {}
        if self.context is None or not isinstance(args, dict):
            return
        try:
            self.context.record_metric(args.get("name"), args.get("value"))
        except AcpPluginsError as error:  # a worker that skipped its own checks
            logger.warning("%s", error.message)

    def _subscribe(self, context: Any, pattern: str, subscription: int) -> int:
        call = self.call

        async def forward(event: Any) -> None:
            # the worker runs the plugin's handler and answers once it returned: the
            # host's feed delivers the next event then, so its bounded queue, its
            # timeout and its record of failures hold for isolated plugins too
            if call is not None:
                await call("$event", {"subscription": subscription, "event": {
                    "topic": event.topic, "data": dict(event.data),
                    "publisher": event.publisher, "sequence": event.sequence,
                    "at": event.at.isoformat(),
                }})  # fmt: skip

        self.feeds[subscription] = context.subscribe_handler(pattern, forward)
        return subscription

    def close_feeds(self) -> None:
        """End the subscriptions of a worker process that is gone (it subscribes anew)."""
        if self.context is not None:
            for token in self.feeds.values():
                self.context.unsubscribe(token)
        self.feeds.clear()


def encode_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A call's arguments for the wire; a context travels as its settings alone.

    The worker builds its own context around them: the host-side one, with the
    host's services, never leaves the host.
    """
    encoded = {}
    for name, value in kwargs.items():
        if name == "context":
            config = getattr(value, "config", {})
            rules: dict[str, Any] = getattr(value, "topic_rules", dict)()
            encoded[name] = {"$context": encode_value(dict(config)), "$topics": rules}
        else:
            encoded[name] = encode_value(value)
    return encoded
