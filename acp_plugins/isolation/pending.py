"""The calls sent to a worker and not answered yet, by call id."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from acp_plugins.errors import WorkerError, WorkerProtocolError
from acp_plugins.isolation.answers import remote_error
from acp_plugins.isolation.protocol import decode_value

__all__ = ["PendingCalls"]


class PendingCalls:
    """Futures of calls in flight to one worker, and the ones the host cancelled."""

    __slots__ = ("_calls", "_next_id", "cancelled", "plugin_id")

    def __init__(self, plugin_id: str) -> None:
        self.plugin_id = plugin_id
        self._calls: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._next_id = 0
        #: Calls the host cancelled whose end the worker has not reported yet.
        self.cancelled: set[int] = set()

    def open(self, hook: str) -> tuple[int, asyncio.Future[Any]]:
        """A new call id and the future its answer will settle."""
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[self._next_id] = (hook, future)
        return self._next_id, future

    def close(self, call_id: int) -> None:
        """Forget a call (answered, failed or given up)."""
        self._calls.pop(call_id, None)

    def answer(self, frame: Mapping[str, Any]) -> None:
        """Settle the call a ``result`` or ``error`` frame answers."""
        call_id = frame["id"]
        if not isinstance(call_id, int):
            raise WorkerProtocolError("a result without an integer id")
        self.cancelled.discard(call_id)
        hook, future = self._calls.get(call_id, ("", None))
        if future is None or future.done():
            return  # the answer to a call that was given up
        if frame["op"] == "result":
            future.set_result(decode_value(frame.get("value")))
        else:
            future.set_exception(remote_error(self.plugin_id, hook, frame))

    def fail_all(self, reason: str) -> None:
        """Fail every call in flight: the worker ``reason`` (exited, was killed...)."""
        for call_id, (hook, future) in list(self._calls.items()):
            if not future.done():
                future.set_exception(
                    WorkerError(
                        f"'{self.plugin_id}' failed in {hook}: its worker {reason}",
                        plugin_id=self.plugin_id,
                        hook=hook,
                    )
                )
            self._calls.pop(call_id, None)
        self.cancelled.clear()
