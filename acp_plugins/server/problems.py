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

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

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

__all__ = ["PROBLEM_JSON", "Problem", "install_problem_handlers", "problem", "status_of"]

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


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    """A problem details response."""
    body = {"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status,
            "detail": detail, **extra}  # fmt: skip
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


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

    async def http_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        return problem(error.status_code, str(error.detail))

    app.add_exception_handler(AcpPluginsError, library_error)
    app.add_exception_handler(Problem, server_problem)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(HTTPException, http_error)
