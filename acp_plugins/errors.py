"""The one error hierarchy of acp-plugins.

Every error carries the id of the plugin it concerns (when there is one) and a
message that says what is wrong and what to do about it. Failures while loading
are recorded on the plugin's record rather than raised through the host; the
errors below are what callers of the host API and the CLI see.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AcpPluginsError",
    "CallTimeout",
    "CommandConflictError",
    "CommandUsageError",
    "ConfigError",
    "ConfigProblem",
    "DataSourceConflictError",
    "DependencyError",
    "FieldError",
    "IllegalTransition",
    "InterfaceMismatch",
    "ManifestError",
    "PermissionDenied",
    "PermissionNotGranted",
    "PluginCallError",
    "PluginImportError",
    "PluginNotActive",
    "PluginNotFound",
    "PluginRegistrationError",
    "TopicDenied",
    "UnknownCommand",
    "UnknownDataSource",
    "UnsupportedReportFormat",
    "WorkerError",
    "WorkerProtocolError",
]


_short = reprlib.Repr()
_short.maxstring = 80
_short.maxother = 80


class AcpPluginsError(Exception):
    """Base of every error raised by acp-plugins."""

    def __init__(self, message: str, *, plugin_id: str | None = None) -> None:
        super().__init__(message)
        self.plugin_id = plugin_id
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field of a manifest: where it is, what it held, what is wrong."""

    path: str
    value: object
    problem: str

    def __str__(self) -> str:
        return f"{self.path or '<manifest>'}: {self.problem} (got {_short.repr(self.value)})"


class ManifestError(AcpPluginsError):
    """A manifest is missing, unreadable or invalid; ``errors`` lists each bad field."""

    def __init__(
        self,
        message: str,
        *,
        plugin_id: str | None = None,
        errors: Sequence[FieldError] = (),
        source: str | None = None,
    ) -> None:
        details = "".join(f"\n  - {error}" for error in errors)
        super().__init__(message + details, plugin_id=plugin_id)
        self.summary = message
        self.errors = tuple(errors)
        self.source = source


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One bad setting: whose, where in the settings, which layer set it, what is wrong."""

    plugin_id: str
    path: str
    layer: str
    source: str
    problem: str
    value: object = None

    def __str__(self) -> str:
        where = f"setting '{self.path}'" if self.path else "settings"
        got = "" if self.value is None else f" (got {_short.repr(self.value)})"
        return f"'{self.plugin_id}' {where}: {self.problem}{got} [from {self.source}]"


class ConfigError(AcpPluginsError):
    """Configuration is invalid; ``problems`` names each bad setting and where it came from.

    Secret values never appear in the message: whoever builds the problems masks them.
    """

    def __init__(
        self, message: str, *, plugin_id: str | None = None, problems: Sequence[ConfigProblem] = ()
    ) -> None:
        details = "".join(f"\n  - {problem}" for problem in problems)
        super().__init__(message + details, plugin_id=plugin_id)
        self.summary = message
        self.problems = tuple(problems)


class DependencyError(AcpPluginsError):
    """A dependency is missing, has the wrong version, failed itself, or forms a cycle."""


class PermissionNotGranted(AcpPluginsError):
    """A plugin requests permissions the host's policy does not grant (refused before import)."""

    def __init__(self, plugin_id: str, missing: Sequence[str]) -> None:
        names = ", ".join(f"'{name}'" for name in missing)
        noun = "permission" if len(missing) == 1 else "permissions"
        super().__init__(
            f"{noun} {names} requested by '{plugin_id}' {'is' if len(missing) == 1 else 'are'} "
            f"not granted; grant {'it' if len(missing) == 1 else 'them'} to '{plugin_id}' in the "
            f"host's permission policy or remove {'it' if len(missing) == 1 else 'them'} "
            "from the manifest",
            plugin_id=plugin_id,
        )
        self.missing = tuple(missing)


class PermissionDenied(AcpPluginsError):
    """A plugin called a context operation guarded by a permission it was not granted."""

    def __init__(self, plugin_id: str, permission: str, operation: str) -> None:
        super().__init__(
            f"'{plugin_id}' may not {operation}: permission '{permission}' was not granted",
            plugin_id=plugin_id,
        )
        self.permission = permission
        self.operation = operation


class TopicDenied(PermissionDenied):
    """The host's policy keeps an event topic to other plugins (or to the host)."""

    def __init__(self, plugin_id: str, topic: str, why: str) -> None:
        AcpPluginsError.__init__(
            self, f"'{plugin_id}' may not use topic '{topic}': {why}", plugin_id=plugin_id
        )
        self.permission = "topic"
        self.operation = f"use topic '{topic}'"


class PluginImportError(AcpPluginsError):
    """Importing or instantiating a plugin's entry point failed."""


class PluginRegistrationError(AcpPluginsError):
    """Pluggy refused a plugin's hook implementations, or a hook name is unknown."""


class InterfaceMismatch(AcpPluginsError):
    """The interfaces a manifest declares differ from the hooks the plugin implements."""


class IllegalTransition(AcpPluginsError):
    """A lifecycle operation is not allowed from the plugin's current state."""


class PluginNotFound(AcpPluginsError):
    """No plugin with this id was discovered."""


class PluginNotActive(AcpPluginsError):
    """The operation needs an active plugin."""


class PluginCallError(AcpPluginsError):
    """A call into a plugin raised, returned something invalid, or took too long."""

    def __init__(self, message: str, *, plugin_id: str, hook: str) -> None:
        super().__init__(message, plugin_id=plugin_id)
        self.hook = hook


class CallTimeout(PluginCallError):
    """A call into a plugin did not finish within its timeout."""


class UnknownCommand(AcpPluginsError):
    """No active plugin offers this command."""


class CommandConflictError(AcpPluginsError):
    """Several plugins offer a command name; the namespaced form picks one."""


class CommandUsageError(AcpPluginsError):
    """A command was given bad arguments; the message carries its usage."""


class UnknownDataSource(AcpPluginsError):
    """No active plugin provides this data source."""


class DataSourceConflictError(AcpPluginsError):
    """Several plugins provide a source id; the namespaced form picks one."""


class UnsupportedReportFormat(AcpPluginsError):
    """A report was asked for in a format that is not supported."""


class WorkerError(PluginCallError):
    """An isolated plugin's worker process failed: it exited, was killed or was stopped."""


class WorkerProtocolError(AcpPluginsError):
    """A frame on a worker's channel was malformed, too large or out of place."""
