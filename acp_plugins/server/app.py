"""The management server's application: ``create_app(host, tokens)``.

FastAPI, served by uvicorn (``acp-plugins serve``). The host starts in the
background as the server starts (every route but ``/api/v1/health`` answers 503
until it is up) and stops when the server stops. The OpenAPI schema is at
``/api/v1/openapi.json``, its pages at ``/api/v1/docs``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from acp_plugins.config.settings import ServerSettings
from acp_plugins.host import PluginHost
from acp_plugins.server import events, host_routes, plugin_routes
from acp_plugins.server.problems import install_problem_handlers, problem
from acp_plugins.server.schemas import ProblemDetails
from acp_plugins.server.state import ServerState, running_host
from acp_plugins.server.tokens import ServerTokens
from acp_plugins.telemetry.exposition import CONTENT_TYPE

__all__ = ["create_app"]

#: Routes answered before the host is up.
_ALWAYS = frozenset({"/", "/api/v1/health", "/api/v1/openapi.json", "/api/v1/docs"})


class _WaitForTheHost:
    """Answer 503 until the host is up (a plain ASGI middleware: Starlette's
    ``BaseHTTPMiddleware`` streams every response in pieces, which costs each
    request Nagle's and delayed ACK's 40 ms)."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        if scope["type"] == "http" and not state.ready.is_set() and scope["path"] not in _ALWAYS:
            response = problem(503, state.failed or "the host is starting; try again in a moment")
            response.headers["Retry-After"] = "1"
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _MetricsPort:
    """On the metrics port (``server.metrics_port``), ``GET /metrics`` without a token and
    nothing else; the main port is left as it is."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state
        self.port = state.settings.metrics_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        local = scope.get("server")
        if self.port is None or scope["type"] == "lifespan" or not local or local[1] != self.port:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response: Response
        if scope["path"] != "/metrics":
            response = problem(404, f"only GET /metrics is served on port {self.port}")
        elif scope["method"] not in ("GET", "HEAD"):
            response = problem(405, "GET /metrics", headers={"Allow": "GET, HEAD"})
        elif not self.state.ready.is_set():
            response = problem(503, self.state.failed or "the host is starting")
        else:
            response = Response(self.state.host.telemetry.prometheus(), media_type=CONTENT_TYPE)
        await response(scope, receive, send)


def _document_problems(app: FastAPI) -> None:
    """Put the problem document's model in the OpenAPI schema's components, where every
    route's error responses refer to it (:func:`problem_responses`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # made once, then kept by FastAPI
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ProblemDetails", ProblemDetails.model_json_schema())
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    host: PluginHost, tokens: ServerTokens, settings: ServerSettings | None = None
) -> FastAPI:
    """The server's application over ``host`` (not started: the server's lifespan does it)."""
    state = ServerState(host=host, tokens=tokens, settings=settings or ServerSettings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with running_host(state):
            yield

    app = FastAPI(
        title="acp-plugins",
        version=version("acp-plugins"),
        description="Manage the plugins of a running acp-plugins host.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.acp = state
    install_problem_handlers(app)
    _document_problems(app)

    app.add_middleware(_WaitForTheHost, state=state)
    app.add_middleware(_MetricsPort, state=state)  # added last: it runs first

    app.include_router(host_routes.router)
    app.include_router(plugin_routes.router)
    app.include_router(host_routes.metrics_router)
    app.include_router(events.router)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        """The dashboard: the plugins, live, and buttons (it asks for the token)."""
        page = files("acp_plugins.server").joinpath("static/dashboard.html").read_text("utf-8")
        return HTMLResponse(page)

    return app
