"""``/api/v1/events``: a WebSocket of the bus, after a snapshot of every plugin's state.

The client names the topics it wants with ``?topic=PATTERN`` (repeatable; default
``plugin:*``, the host's lifecycle events) and its token as for REST (the
``Authorization`` header, or ``?token=`` where a browser cannot set headers). The
first message is ``{"type": "snapshot", "plugins": [...]}``, then one
``{"type": "event", "topic", "data", "publisher", "sequence", "at"}`` per event.

Each client has a bounded queue on the bus. A client too slow to keep up (its
queue overflowed, or one send waited :data:`SEND_TIMEOUT` seconds) is closed with
code 1013 (try again later) and the reason, rather than slowing the host.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from acp_plugins.server.problems import Problem
from acp_plugins.server.state import ServerState, bearer, check_scope, server_state
from acp_plugins.server.tokens import READ
from acp_plugins.topics import check_pattern

__all__ = ["CLIENT_QUEUE", "SEND_TIMEOUT", "router"]

router = APIRouter()

#: Events held for one client before it counts as too slow.
CLIENT_QUEUE = 256
#: Seconds one send to a client may take.
SEND_TIMEOUT = 5.0
#: Close codes: the token is missing or not enough; a bad topic; too slow.
POLICY, BAD_DATA, TRY_AGAIN_LATER = 1008, 1007, 1013


def snapshot(state: ServerState) -> dict[str, Any]:
    """Every plugin's state, as the first message of each connection."""
    plugins = [
        {"plugin_id": r.plugin_id, "version": r.version, "state": r.state.value,
         "waiting": r.waiting, "reason": r.reason, "mode": (r.isolation() or {}).get("mode")}
        for _, r in sorted(state.host.records.items())
    ]  # fmt: skip
    return {"type": "snapshot", "plugins": plugins}


@router.websocket("/api/v1/events")
async def events(websocket: WebSocket) -> None:
    """The bus's events as they happen, after a snapshot of every plugin."""
    state = server_state(websocket)
    try:
        check_scope(state, bearer(websocket), READ)
    except Problem as refused:
        await websocket.close(code=POLICY, reason=_reason(refused.detail))
        return
    await websocket.accept()  # from here a close carries its code and reason to the client
    if not state.ready.is_set():
        reason = _reason(state.failed or "the host is starting; try again in a moment")
        await websocket.close(code=TRY_AGAIN_LATER, reason=reason)
        return
    patterns = websocket.query_params.getlist("topic") or ["plugin:*"]
    for pattern in patterns:
        try:
            check_pattern(pattern)
        except ValueError as error:
            await websocket.close(code=BAD_DATA, reason=_reason(f"topic {pattern!r}: {error}"))
            return
    bus = state.host.events
    feeds = [bus.subscribe(p, subscriber="websocket", limit=CLIENT_QUEUE) for p in patterns]
    merged: asyncio.Queue[Any] = asyncio.Queue(maxsize=CLIENT_QUEUE)

    async def pump(feed: Any) -> None:
        while True:
            await merged.put(await feed.get())  # full: the feed fills, then drops

    async def until_closed() -> None:
        # the client's messages are not read, but its close (or the server's, at
        # shutdown) must end this handler at once, not at the next event
        with contextlib.suppress(Exception):  # a receive after the close: closed too
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass

    pumps = [asyncio.ensure_future(pump(feed)) for feed in feeds]
    closed = asyncio.ensure_future(until_closed())
    try:
        await websocket.send_json(snapshot(state))
        while True:
            event = await _next_event(merged, closed)
            if event is None:
                return
            dropped = sum(feed.dropped for feed in feeds)
            if dropped:
                await websocket.close(code=TRY_AGAIN_LATER,
                                      reason=f"too slow: {dropped} events dropped")  # fmt: skip
                return
            message = {"type": "event", "topic": event.topic, "data": dict(event.data),
                       "publisher": event.publisher, "sequence": event.sequence,
                       "at": event.at.isoformat()}  # fmt: skip
            try:
                await asyncio.wait_for(websocket.send_json(message), SEND_TIMEOUT)
            except asyncio.TimeoutError:
                with contextlib.suppress(Exception):
                    await websocket.close(code=TRY_AGAIN_LATER, reason="too slow: a send timed out")
                return
    except (WebSocketDisconnect, RuntimeError, StopAsyncIteration):
        return  # the client went away, or the host is stopping
    finally:
        for task in (*pumps, closed):
            task.cancel()
        for feed in feeds:
            feed.close()


def _reason(text: str) -> str:
    """``text`` cut to what a close frame can carry (123 bytes of UTF-8)."""
    cut = text.encode("utf-8")[:123]
    return cut.decode("utf-8", errors="ignore")


async def _next_event(merged: asyncio.Queue[Any], closed: asyncio.Future[None]) -> Any:
    """The next event for the client, or None once the connection has closed."""
    getting = asyncio.ensure_future(merged.get())
    await asyncio.wait({getting, closed}, return_when=asyncio.FIRST_COMPLETED)
    if getting.done():
        return getting.result()
    getting.cancel()
    return None
