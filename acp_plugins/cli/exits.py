"""What the command line's exit statuses mean, and the error that carries one."""

from __future__ import annotations

from acp_plugins.errors import (
    AcpPluginsError,
    CommandConflictError,
    CommandUsageError,
    DataSourceConflictError,
    PluginCallError,
    PluginNotActive,
    PluginNotFound,
    UnknownCommand,
    UnknownDataSource,
    UnsupportedReportFormat,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERNAL",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_PLUGIN_ERROR",
    "EXIT_TEXT",
    "EXIT_USAGE",
    "CliError",
    "status_of",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_PLUGIN_ERROR = 0, 1, 2, 3, 4
#: A bug of acp-plugins itself (EX_SOFTWARE); the message asks for a report.
EXIT_INTERNAL = 70
EXIT_TEXT = (
    "Exit status: 0 ok, 1 failed, 2 bad usage or bad input, 3 not found, 4 a plugin failed, "
    "70 an internal error of acp-plugins (please report it), 130 interrupted."
)


class CliError(Exception):
    """An error to print as one line, with the exit status to use."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


_STATUS: tuple[tuple[type[AcpPluginsError], int], ...] = (
    (CommandUsageError, EXIT_USAGE),
    (PluginNotFound, EXIT_NOT_FOUND),
    (UnknownCommand, EXIT_NOT_FOUND),
    (UnknownDataSource, EXIT_NOT_FOUND),
    (CommandConflictError, EXIT_USAGE),
    (DataSourceConflictError, EXIT_USAGE),
    (UnsupportedReportFormat, EXIT_USAGE),
    (PluginNotActive, EXIT_FAILED),
    (PluginCallError, EXIT_PLUGIN_ERROR),
)


def status_of(error: AcpPluginsError) -> int:
    """The exit status for a library error."""
    return next((status for kind, status in _STATUS if isinstance(error, kind)), EXIT_FAILED)
