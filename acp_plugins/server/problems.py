"""Errors as RFC 9457 problem details (``application/problem+json``).

The body carries the same one-line message as the command line (``detail``),
the error's kind, and the plugin it is about. Statuses: 400 bad input (a bad
configuration value, a command's bad arguments, an unknown report format), 401
no valid token, 403 the token's scope is not enough, 404 an unknown plugin,
command or data source, 409 the plugin is not in a state for it or the same
operation on it is already running, 422 a request body or query that does not
fit its model, 502 a plugin failed while being called, 503 the host is starting,
504 a plugin did not answer in time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from acp_plugins.errors import (
    AcpPluginsError,
    CallTimeout,
    CommandConflictError,
    CommandUsageError,
    ConfigError,
    DataSourceConflictError,
    IllegalTransition,
    PluginCallError,
    PluginNotActive,
    PluginNotFound,
    UnknownCommand,
    UnknownDataSource,
    UnsupportedReportFormat,
)

__all__ = [
    "PROBLEM_JSON",
    "Problem",
    "install_problem_handlers",
    "problem",
    "problem_responses",
    "status_of",
]

PROBLEM_JSON = "application/problem+json"

_STATUS: tuple[tuple[type[AcpPluginsError], int], ...] = (
    (PluginNotFound, 404),
    (UnknownCommand, 404),
    (UnknownDataSource, 404),
    (CommandUsageError, 400),
    (CommandConflictError, 400),
    (DataSourceConflictError, 400),
    (UnsupportedReportFormat, 400),
    (ConfigError, 400),
    (PluginNotActive, 409),
    (IllegalTransition, 409),
    (CallTimeout, 504),
    (PluginCallError, 502),
)

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Unprocessable content",
    502: "A plugin failed",
    503: "Starting",
    504: "A plugin did not answer in time",
}


class Problem(Exception):
    """An error the server answers with, as a problem document."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


def status_of(error: AcpPluginsError) -> int:
    """The HTTP status for a library error (400 if nothing more specific fits)."""
    return next((status for kind, status in _STATUS if isinstance(error, kind)), 400)


def problem(
    status: int, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A problem details response."""
    body = {"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status,
            "detail": detail, **extra}  # fmt: skip
    sent = dict(headers or {})
    if status == 401:
        sent["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=sent or None)


#: Where the OpenAPI schema keeps :class:`~acp_plugins.server.schemas.ProblemDetails`.
PROBLEM_SCHEMA_REF = "#/components/schemas/ProblemDetails"


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route that may answer with these problems; 401, 422
    and 503 always (every route but ``/api/v1/health`` needs a token and waits for the
    host, and FastAPI checks each request against its models)."""
    return {
        status: {
            "description": _TITLES[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
        }
        for status in sorted({401, 422, 503, *statuses})
    }


def _allowed_methods(request: Request) -> str | None:
    """Every method the OpenAPI schema documents for the request's path (a 405's
    ``Allow``; Starlette's names only the methods of the first route it tried)."""
    for template, operations in request.app.openapi()["paths"].items():
        if compile_path(template)[0].match(request.scope["path"]):
            return ", ".join(sorted(method.upper() for method in operations))
    return None


def install_problem_handlers(app: Any) -> None:
    """Answer every error of ``app`` with a problem document, never a traceback."""

    async def library_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, AcpPluginsError)
        return problem(status_of(error), error.message, kind=type(error).__name__,
                       plugin_id=error.plugin_id)  # fmt: skip

    async def server_problem(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, Problem)
        return problem(error.status, error.detail, **error.extra)

    async def bad_request(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        errors = [
            {"location": ".".join(str(part) for part in item.get("loc", ())),
             "message": str(item.get("msg", ""))}
            for item in error.errors()
        ]  # fmt: skip
        where = "; ".join(f"{e['location']}: {e['message']}" for e in errors)
        return problem(422, f"the request does not fit: {where}", errors=errors)

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        headers = dict(error.headers or {})
        allowed = _allowed_methods(request) if error.status_code == 405 else None
        if allowed is not None:
            headers["Allow"] = allowed
        return problem(error.status_code, str(error.detail), headers=headers)

    app.add_exception_handler(AcpPluginsError, library_error)
    app.add_exception_handler(Problem, server_problem)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(HTTPException, http_error)
