"""What the server's routes share: the host, the tokens, readiness, operations running.

Every route reaches the host through :func:`server_state` and checks its caller with
:func:`require`: a valid bearer token (``Authorization: Bearer TOKEN``; a WebSocket
may give ``?token=`` instead), whose scope is enough for the route.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from acp_plugins.config.settings import ServerSettings
from acp_plugins.host import PluginHost
from acp_plugins.server.problems import Problem
from acp_plugins.server.tokens import ADMIN, Scope, ServerTokens

__all__ = ["ServerState", "require", "server_state"]

T = TypeVar("T")


@dataclass(eq=False)
class ServerState:
    """The running server's host and what it keeps about it."""

    host: PluginHost
    tokens: ServerTokens
    #: The host has started (requests other than /api/v1/health wait for it: 503).
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    #: Why the host could not start (the server then answers 503 with it).
    failed: str | None = None
    #: plugin id -> the operation (install, reload...) running on it now.
    running: dict[str, str] = field(default_factory=dict)
    #: What may be installed, from where, into which folder.
    settings: ServerSettings = field(default_factory=ServerSettings)

    async def single_flight(self, plugin_id: str, operation: str, work: Awaitable[T]) -> T:
        """Run ``work`` unless an operation on ``plugin_id`` is running: then 409."""
        if plugin_id in self.running:
            close = getattr(work, "close", None)
            if callable(close):
                close()  # never started: no "coroutine was never awaited" warning
            raise Problem(
                409,
                f"'{plugin_id}' is busy: a {self.running[plugin_id]} of it is running; "
                "try again when it is done",
                plugin_id=plugin_id,
            )
        self.running[plugin_id] = operation
        try:
            return await work
        finally:
            del self.running[plugin_id]


def server_state(connection: HTTPConnection) -> ServerState:
    """The state of the server handling ``connection``."""
    state: ServerState = connection.app.state.acp
    return state


def bearer(connection: HTTPConnection) -> str | None:
    """The token a request carries (``Authorization: Bearer``, or ``?token=``)."""
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return connection.query_params.get("token") or None


def check_scope(state: ServerState, token: str | None, needed: Scope) -> Scope:
    """The scope ``token`` grants, or the 401/403 problem saying what is missing."""
    granted = state.tokens.scope_of(token)
    if granted is None:
        raise Problem(
            401,
            "a valid token is needed: send 'Authorization: Bearer TOKEN' (the token files "
            "are named when the server starts; ACP_SERVER_TOKEN sets the admin one)",
        )
    if needed == ADMIN and granted != ADMIN:
        raise Problem(403, "this needs the admin token; the read token may only read")
    return granted


def require(needed: Scope) -> Any:
    """A route dependency: the caller's token grants at least ``needed``."""

    async def check(request: Request) -> Scope:
        return check_scope(server_state(request), bearer(request), needed)

    return Depends(check)


@asynccontextmanager
async def running_host(state: ServerState) -> AsyncIterator[None]:
    """Start the host in the background (503 until it is up); stop it at shutdown."""

    async def start() -> None:
        try:
            await state.host.start()
        except Exception as error:  # told by /api/v1/health and every 503
            state.failed = f"the host did not start: {error}"
            raise
        state.ready.set()

    starting = asyncio.ensure_future(start())
    try:
        yield
    finally:
        if not starting.done():
            starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await state.host.stop()


Lifespan = Callable[[Any], Any]
