"""The server's request and response models (what the OpenAPI schema documents).

Responses about plugins are the same JSON the command line prints with ``--json``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from acp_plugins.models import MessageResponse

__all__ = [
    "AuditPage",
    "CommandAnswer",
    "CommandInfo",
    "CommandRequest",
    "ConfigChange",
    "ConfigView",
    "InstallOutcome",
    "InstallRequest",
    "PluginDetail",
    "PluginStatus",
    "PluginView",
    "ProblemDetails",
    "ReloadOutcome",
    "RoutedAnswer",
    "ServerHealth",
    "UninstallOutcome",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class PluginView(_Out):
    """Everything known about one plugin (``acp-plugins info ID --json``)."""

    plugin_id: str
    name: str | None
    version: str
    state: str
    waiting: bool
    generation: int
    reloading: bool
    reason: str | None
    distribution: str
    interfaces: list[str]
    permissions: list[str]
    granted: list[str]
    dependencies: dict[str, str]
    message_types: list[str]
    commands: list[str]
    data_sources: list[str]
    config: dict[str, Any] | None
    failures: list[dict[str, Any]]
    call_errors: list[dict[str, Any]]
    metrics: dict[str, dict[str, float | int]]
    isolation: dict[str, Any] | None


class PluginDetail(PluginView):
    """One plugin once started, with its settings and subscriptions (``info ID --json``)."""

    author: str | None
    license: str | None
    homepage: str | None
    distribution_version: str
    subscriptions: list[dict[str, Any]]
    settings: list[dict[str, Any]] = Field(description="path, value (masked), layer, source.")


class PluginStatus(_Out):
    """Where one plugin is in its lifecycle."""

    plugin_id: str
    version: str
    state: str
    waiting: bool
    reloading: bool
    generation: int
    reason: str | None
    mode: str | None = Field(description="isolated, in-process, or None when not loaded.")


class ReloadOutcome(_Out):
    """What a reload did (``acp-plugins reload ID --json``)."""

    plugin_id: str
    outcome: str
    ok: bool
    from_version: str | None
    to_version: str | None
    mode: str | None
    detail: str
    draining: int
    abandoned: int
    suspended: list[str]
    seconds: float


class ConfigChange(BaseModel):
    """One setting to change at runtime (saved as a runtime override)."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="A dotted path, e.g. `prefix` or `limits.rate`.")
    value: Any


class Origin(BaseModel):
    """Where a value came from: its layer and the file line, variable or default."""

    layer: str = Field(description="defaults, global, environment, user or runtime.")
    source: str


class ConfigView(BaseModel):
    """A plugin's configuration in force (secrets masked), and where each value came from."""

    plugin_id: str
    values: dict[str, Any]
    origins: dict[str, Origin] = Field(description="dotted path -> where its value came from.")
    overrides_file: str = Field(description="Where the server keeps runtime overrides.")


class InstallRequest(BaseModel):
    """What to install: a version range, from which allowed index, which distribution."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(default="*", description="npm-style or PEP 440 range; the newest in it.")
    index_url: str | None = Field(
        default=None, description="One of server.indexes (default the first)."
    )
    distribution: str | None = Field(
        default=None,
        description="The distribution (default: the installed plugin's, else the plugin id).",
    )


class InstallOutcome(BaseModel):
    """What an install did: the version chosen, where, the rescan, pip's output."""

    plugin_id: str
    distribution: str
    version: str
    index_url: str
    target: str | None = Field(description="The folder installed into (None: the environment).")
    state: str
    rescan: dict[str, Any] = Field(description="added, removed, reloads (upgrades).")
    pip_output: str


class UninstallOutcome(BaseModel):
    """What an uninstall removed."""

    plugin_id: str
    distribution: str
    rescan: dict[str, Any]
    pip_output: str


class CommandRequest(BaseModel):
    """A command line for a plugin's command: positional arguments and --options."""

    model_config = ConfigDict(extra="forbid")

    args: list[str] = []


class CommandInfo(_Out):
    """One command: its plugin, usage, arguments and options (``run NAME --help``)."""

    plugin_id: str
    name: str
    usage: str
    description: str
    arguments: list[dict[str, Any]]
    options: list[dict[str, Any]]


class CommandAnswer(_Out):
    """What a command said, and the plugin that ran it (``run NAME --json``)."""

    plugin_id: str
    success: bool
    output: str
    data: Any
    exit_code: int


class RoutedAnswer(BaseModel):
    """Who answered a message, how sure it was, and the answer."""

    plugin_id: str | None
    handled: bool
    confidence: float
    response: MessageResponse
    scores: dict[str, float]
    errors: dict[str, str]


class AuditPage(BaseModel):
    """A page of the audit log, oldest first."""

    entries: list[dict[str, Any]]
    total: int = Field(description="Entries that match the filters, on every page.")
    offset: int
    limit: int | None = Field(description="None: every entry from `offset` on.")
    unreadable: int = Field(description="Lines of the log that could not be read.")
    path: str | None = Field(description="The server's audit log file.")


class ServerHealth(BaseModel):
    """Whether the server's host is up (answered without a token)."""

    status: str = Field(description="`ok`, `starting`, or `failed` (the host did not start).")
    plugins: int
    active: int
    detail: str | None = None


class ProblemDetails(_Out):
    """An error, as RFC 9457 problem details (``application/problem+json``)."""

    type: str = Field(default="about:blank", description="Always `about:blank`.")
    title: str = Field(description="The status in words, e.g. `Not found`.")
    status: int
    detail: str = Field(description="The same one-line message the command line prints.")
    kind: str | None = Field(
        default=None, description="The library error's class, e.g. `PluginNotFound`."
    )
    plugin_id: str | None = Field(default=None, description="The plugin it is about.")
