"""The host's own settings, layered like a plugin's.

Lowest precedence first: the defaults below, table ``[host]`` of the global config
file, environment variables ``ACP_HOST_<KEY>[__<SUBKEY>...]`` (for example
``ACP_HOST_TIMEOUT=10``, ``ACP_HOST_GRANTS__ECHO='["manage-database"]'``), table
``[host]`` of the per-user file, and what the command line's flags say.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from acp_plugins.config.layers import ConfigSources, Layer, ValueOrigin, resolve_layers
from acp_plugins.config.located import TableLayer
from acp_plugins.errors import ConfigError
from acp_plugins.loading.permissions import DEFAULT_GRANTS, Permission, PermissionPolicy
from acp_plugins.loading.trust import IsolationPolicy, WorkerLimits
from acp_plugins.topics import check_pattern

__all__ = [
    "HostSettings",
    "IsolationSettings",
    "ServerSettings",
    "TelemetrySettings",
    "WorkerLimitSettings",
    "default_data_root",
    "load_host_settings",
    "plugin_data_dir",
]

#: The prefix of the host's environment variables.
HOST_ENV_PREFIX = "ACP_HOST_"


def plugin_data_dir(data_root: Path, plugin_id: str) -> Path:
    """A plugin's own data directory: ``<data_root>/plugins/<plugin_id>``.

    The host's own files (the overrides, the audit log) are in ``data_root`` itself,
    where no plugin id can name them. A directory an earlier version left at
    ``<data_root>/<plugin_id>`` is moved here the first time it is asked for.
    """
    folder = data_root / "plugins" / plugin_id
    earlier = data_root / plugin_id
    if plugin_id != "plugins" and not folder.exists() and earlier.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        earlier.rename(folder)
    return folder


def default_data_root(environ: Mapping[str, str] | None = None) -> Path:
    """Where plugins' data directories live: ``$ACP_PLUGINS_DATA_DIR``, else the XDG data dir."""
    env = os.environ if environ is None else environ
    explicit = env.get("ACP_PLUGINS_DATA_DIR")
    if explicit:
        return Path(explicit)
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "acp-plugins"


class WorkerLimitSettings(BaseModel):
    """The limits of isolated workers (``[host.isolation]``, or per plugin under ``limits``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    #: Memory a worker may allocate, in MiB.
    memory_mb: int = Field(default=100, ge=16)
    #: Share of one CPU a worker may use (``0.1``: 10 %); ``1.0`` or more: no limit.
    cpu_share: float = Field(default=0.1, gt=0)
    open_files: int = Field(default=64, ge=16)
    file_mb: int = Field(default=64, ge=1)
    #: Total size of the plugin's data directory, in MiB.
    disk_mb: int = Field(default=256, ge=1)
    #: Frames a worker may send per second before it is killed as flooding.
    frames_per_second: int = Field(default=2000, ge=10)
    #: Context calls a worker may have waiting at once; more are refused.
    context_calls: int = Field(default=64, ge=1)

    def limits(self) -> WorkerLimits:
        return WorkerLimits(
            memory_mb=self.memory_mb,
            cpu_share=self.cpu_share if self.cpu_share < 1 else None,
            open_files=self.open_files,
            file_mb=self.file_mb,
            disk_mb=self.disk_mb,
            frames_per_second=self.frames_per_second,
            context_calls=self.context_calls,
        )


class IsolationSettings(WorkerLimitSettings):
    """Which plugins run in-process (``trusted``) and how the others are isolated."""

    #: Plugin ids that run in the host's process; ``"*"`` trusts every plugin.
    trusted: list[str] = []
    #: Limits per plugin id, over the ones above.
    limits_by_plugin: dict[str, WorkerLimitSettings] = {}
    #: Modules a plugin's code may import beyond the allowed ones, per plugin id.
    allowed_modules: dict[str, list[str]] = {}
    #: Worker failures within ``failure_window`` seconds that suspend the plugin.
    max_failures: int = Field(default=3, ge=1)
    failure_window: float = Field(default=60.0, gt=0, le=86_400)
    seccomp: bool = True
    drop_privileges: bool = True
    #: Mount, PID, IPC and network namespaces for workers (bubblewrap).
    namespaces: bool = True
    landlock: bool = True
    cgroups: bool = True
    #: A uid of its own for each worker when the host runs as root.
    own_uid: bool = True
    #: The audit hook and import policy: clear refusals, not the boundary.
    python_layer: bool = True
    #: Refuse to start a worker that would lack any isolation layer.
    strict_layers: bool = False
    #: Fork workers from one pre-imported process per host (faster start, shared memory).
    zygote: bool = True

    @field_validator("trusted", mode="before")
    @classmethod
    def _one_id_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def policy(self) -> IsolationPolicy:
        """The isolation policy these settings describe."""
        return IsolationPolicy(
            trusted=frozenset(self.trusted),
            limits=self.limits(),
            per_plugin={pid: limits.limits() for pid, limits in self.limits_by_plugin.items()},
            allowed_modules={pid: frozenset(m) for pid, m in self.allowed_modules.items()},
            max_failures=self.max_failures,
            failure_window=self.failure_window,
            seccomp=self.seccomp,
            drop_privileges=self.drop_privileges,
            namespaces=self.namespaces,
            landlock=self.landlock,
            cgroups=self.cgroups,
            own_uid=self.own_uid,
            python_layer=self.python_layer,
            strict_layers=self.strict_layers,
            zygote=self.zygote,
        )


class TelemetrySettings(BaseModel):
    """What the host measures, where it keeps it, and where health turns bad."""

    model_config = ConfigDict(extra="forbid")

    #: Latency histograms, usage counts, worker readings and the database; off: the
    #: call counts and mean/max latency alone, nothing stored.
    enabled: bool = True
    #: Seconds between writes of what changed to the database (and worker readings).
    interval: float = Field(default=10.0, ge=0.05, le=3600, allow_inf_nan=False)
    #: Days of figures the database keeps.
    retention_days: float = Field(default=7.0, gt=0, le=3650, allow_inf_nan=False)
    #: The SQLite file (default ``<data_dir>/telemetry.sqlite``).
    database: Path | None = None
    #: Seconds of calls a plugin's health is judged on.
    error_window: float = Field(default=300.0, gt=0, le=86_400, allow_inf_nan=False)
    #: Error rates at which a plugin is degraded, and failing.
    degraded_error_rate: float = Field(default=0.05, gt=0, le=1)
    failing_error_rate: float = Field(default=0.5, gt=0, le=1)


class ServerSettings(BaseModel):
    """What ``acp-plugins serve`` may install, from where, into which folder; where it
    exposes ``/metrics`` without a token."""

    model_config = ConfigDict(extra="forbid")

    #: The PEP 503 package indexes an install may name (the first is the default).
    indexes: list[str] = Field(default_factory=lambda: ["https://pypi.org/simple"])
    #: The folder pip installs plugins into (default: the first plugin_path, else the
    #: environment the host runs in).
    install_target: Path | None = None
    #: Seconds one pip run may take.
    pip_timeout: float = Field(default=300.0, gt=0, le=3600, allow_inf_nan=False)
    #: A second port that serves ``GET /metrics`` alone, without a token, for a
    #: Prometheus scraper (default: none; ``/metrics`` then needs the read token).
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    #: The address the metrics port listens on.
    metrics_host: str = "127.0.0.1"

    @field_validator("indexes")
    @classmethod
    def _indexes_are_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://", "file://")):
                raise ValueError(f"{url!r} is not an http(s) or file URL of a package index")
        return [url.rstrip("/") for url in value]


class HostSettings(BaseSettings):
    """What the host is configured with: timeouts, where things are, what plugins may do.

    Built by :func:`load_host_settings` from every layer; ``HostSettings()`` alone
    reads only the defaults and this process's ``ACP_HOST_*`` variables.
    """

    model_config = SettingsConfigDict(
        env_prefix=HOST_ENV_PREFIX, env_nested_delimiter="__", extra="forbid", allow_inf_nan=False
    )

    #: Seconds any call into a plugin may take.
    timeout: float = Field(5.0, gt=0, le=3600, allow_inf_nan=False)
    #: Run plain (non-async) hooks in worker threads, so a hanging one can be abandoned.
    sync_in_thread: bool = False
    #: Parent of each plugin's own data directory.
    data_dir: Path = Field(default_factory=default_data_root)
    #: The runtime overrides file (default ``<data_dir>/overrides.json``).
    overrides_file: Path | None = None
    #: Directories to discover plugins in; empty: the host's own environment.
    plugin_path: list[Path] = []
    #: Permissions every plugin holds.
    default_grants: list[Permission] = Field(default_factory=lambda: sorted(DEFAULT_GRANTS))
    #: Further permissions per plugin id.
    grants: dict[str, list[Permission]] = {}
    #: Plugin ids the host must not load.
    disabled: list[str] = []
    #: Which plugins are trusted to run in-process, and the limits of the isolated ones.
    isolation: IsolationSettings = Field(default_factory=IsolationSettings)
    #: The audit log (default ``<data_dir>/audit.jsonl``).
    audit_log: Path | None = None
    #: Start a plugin that declares its contributions on its first use, not with the host.
    on_demand: bool = True
    #: Topic pattern -> the only plugins that may subscribe to topics it matches.
    subscribe_topics: dict[str, list[str]] = {}
    #: Topic pattern -> the only plugins that may publish on topics it matches.
    publish_topics: dict[str, list[str]] = {}
    #: Seconds the calls running on a reloaded plugin's old instance may take to finish there.
    drain_timeout: float = Field(10.0, gt=0, le=3600, allow_inf_nan=False)
    #: Latency histograms, worker readings, usage, health thresholds, the database.
    telemetry: TelemetrySettings = Field(default_factory=lambda: TelemetrySettings())
    #: The management server's package indexes and install folder.
    server: ServerSettings = Field(default_factory=lambda: ServerSettings())

    @field_validator("default_grants", "disabled", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, value: Any) -> Any:
        # as in PermissionPolicy.from_names, a single name may stand for a list of one
        return [value] if isinstance(value, str) else value

    @field_validator("subscribe_topics", "publish_topics")
    @classmethod
    def _patterns_are_patterns(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for pattern in value:
            check_pattern(pattern)
        return value

    @field_validator("grants", mode="before")
    @classmethod
    def _one_grant_is_a_list(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {key: [v] if isinstance(v, str) else v for key, v in value.items()}
        return value

    @property
    def effective_overrides_file(self) -> Path:
        """The runtime overrides file: ``overrides_file``, else ``<data_dir>/overrides.json``."""
        return self.overrides_file or self.data_dir / "overrides.json"

    @property
    def effective_audit_log(self) -> Path:
        """The audit log file: ``audit_log``, else ``<data_dir>/audit.jsonl``."""
        return self.audit_log or self.data_dir / "audit.jsonl"

    def policy(self) -> PermissionPolicy:
        """The permission policy these settings describe."""
        return PermissionPolicy(
            defaults=frozenset(self.default_grants),
            grants={plugin_id: frozenset(names) for plugin_id, names in self.grants.items()},
            subscribe_topics={p: frozenset(ids) for p, ids in self.subscribe_topics.items()},
            publish_topics={p: frozenset(ids) for p, ids in self.publish_topics.items()},
        )


def load_host_settings(
    sources: ConfigSources, overrides: Mapping[str, Any] | None = None
) -> tuple[HostSettings, dict[str, ValueOrigin]]:
    """The host's settings from every layer, and where each value came from.

    ``overrides`` (what the command line's flags say) is the highest layer. Raises
    :class:`~acp_plugins.errors.ConfigError` (plugin id ``"host"``) naming every bad or
    unknown key and where it was written.
    """
    environ = sources.environ
    data_dir_from = "ACP_PLUGINS_DATA_DIR" if environ.get("ACP_PLUGINS_DATA_DIR") else "default"
    global_table, global_where = sources._table(Layer.GLOBAL, ("host",), "host")
    user_table, user_where = sources._table(Layer.USER, ("host",), "host")
    layers: list[TableLayer | None] = [
        # the default data directory follows the given environment, not this process's
        TableLayer(
            Layer.DEFAULTS, {"data_dir": default_data_root(environ)}, lambda loc: data_dir_from
        ),
        TableLayer(Layer.GLOBAL, global_table, global_where),
        None,  # the environment
        TableLayer(Layer.USER, user_table, user_where),
        TableLayer(Layer.RUNTIME, dict(overrides or {}), lambda loc: "command line"),
    ]
    try:
        settings, _, origins = resolve_layers(
            "host", HostSettings, layers, env=environ, env_prefix=HOST_ENV_PREFIX
        )
    except RecursionError:  # JSON in an ACP_HOST_* variable, nested without end
        raise ConfigError(
            "a host setting is nested too deeply to read (an ACP_HOST_* variable holding "
            "JSON, or a table in a config file); check the values you set",
            plugin_id="host",
        ) from None
    assert isinstance(settings, HostSettings)
    return settings, origins
