"""acp-plugins: the plugin system of Agent Cellphone V2.

Plugins are pip-installable distributions registering an entry point in the
group ``acp.plugins`` and shipping a ``manifest.json``. The host discovers them,
validates manifests and permissions before importing anything, resolves
dependencies, drives each plugin through its lifecycle and calls its hooks
safely. See the README for a complete plugin example.
"""

from acp_plugins.audit import AuditEntry, AuditLog, read_audit_log
from acp_plugins.config.layers import (
    ConfigSources,
    Layer,
    PluginConfig,
    PluginSettings,
    ResolvedConfig,
    ValueOrigin,
    plugin_env_prefix,
    resolve_plugin_config,
)
from acp_plugins.config.overrides import OverrideStore
from acp_plugins.config.settings import HostSettings, TelemetrySettings, load_host_settings
from acp_plugins.errors import (
    AcpPluginsError,
    CallTimeout,
    CommandConflictError,
    CommandUsageError,
    ConfigError,
    ConfigProblem,
    DataSourceConflictError,
    DependencyError,
    FieldError,
    IllegalTransition,
    InterfaceMismatch,
    ManifestError,
    PermissionDenied,
    PermissionNotGranted,
    PluginCallError,
    PluginImportError,
    PluginNotActive,
    PluginNotFound,
    PluginRegistrationError,
    UnknownCommand,
    UnknownDataSource,
    UnsupportedReportFormat,
    WorkerError,
    WorkerProtocolError,
)
from acp_plugins.events.bus import Event, EventBus, Subscription
from acp_plugins.host import CORE_VERSION, PluginHost
from acp_plugins.isolation.sandbox import SandboxViolation
from acp_plugins.isolation.worker_handle import WorkerHandle
from acp_plugins.loading.discovery import ENTRY_POINT_GROUP, Discovery, discover
from acp_plugins.loading.interfaces import INTERFACE_HOOKS, Interface
from acp_plugins.loading.manifest import (
    Manifest,
    manifest_json_schema,
    parse_manifest,
    read_manifest,
)
from acp_plugins.loading.permissions import DEFAULT_GRANTS, Permission, PermissionPolicy
from acp_plugins.loading.resolution import Resolution, resolve
from acp_plugins.loading.trust import TRUST_ALL, IsolationPolicy, WorkerLimits
from acp_plugins.loading.versions import VersionRange, VersionRangeError, parse_range, parse_version
from acp_plugins.markers import hookimpl, hookspec
from acp_plugins.models import (
    ArgumentDefinition,
    CommandDefinition,
    CommandResult,
    DataQuery,
    DataResult,
    DataSourceDefinition,
    Message,
    MessageResponse,
    MetricDefinition,
    MetricPoint,
    MetricsData,
    OptionDefinition,
    Report,
    TimeRange,
)
from acp_plugins.plugin import Plugin
from acp_plugins.runtime.calls import DEFAULT_TIMEOUT, CallGuard
from acp_plugins.runtime.commands import CommandEntry
from acp_plugins.runtime.context import PluginContext
from acp_plugins.runtime.lifecycle import TRANSITIONS, PluginState
from acp_plugins.runtime.record import CallStats, PluginFailure, PluginRecord
from acp_plugins.runtime.reload import ReloadFailed, ReloadResult, RescanResult
from acp_plugins.runtime.reports import REPORT_FORMATS, render_report
from acp_plugins.runtime.routing import RoutedMessage
from acp_plugins.telemetry import (
    HealthStatus,
    PluginHealth,
    PluginTelemetry,
    TelemetryReport,
)

__version__ = "0.1.0"

__all__ = [
    "CORE_VERSION",
    "DEFAULT_GRANTS",
    "DEFAULT_TIMEOUT",
    "ENTRY_POINT_GROUP",
    "INTERFACE_HOOKS",
    "REPORT_FORMATS",
    "TRANSITIONS",
    "TRUST_ALL",
    "AcpPluginsError",
    "ArgumentDefinition",
    "AuditEntry",
    "AuditLog",
    "CallGuard",
    "CallStats",
    "CallTimeout",
    "CommandConflictError",
    "CommandDefinition",
    "CommandEntry",
    "CommandResult",
    "CommandUsageError",
    "ConfigError",
    "ConfigProblem",
    "ConfigSources",
    "DataQuery",
    "DataResult",
    "DataSourceConflictError",
    "DataSourceDefinition",
    "DependencyError",
    "Discovery",
    "Event",
    "EventBus",
    "FieldError",
    "HealthStatus",
    "HostSettings",
    "IllegalTransition",
    "Interface",
    "InterfaceMismatch",
    "IsolationPolicy",
    "Layer",
    "Manifest",
    "ManifestError",
    "Message",
    "MessageResponse",
    "MetricDefinition",
    "MetricPoint",
    "MetricsData",
    "OptionDefinition",
    "OverrideStore",
    "Permission",
    "PermissionDenied",
    "PermissionNotGranted",
    "PermissionPolicy",
    "Plugin",
    "PluginCallError",
    "PluginConfig",
    "PluginContext",
    "PluginFailure",
    "PluginHealth",
    "PluginHost",
    "PluginImportError",
    "PluginNotActive",
    "PluginNotFound",
    "PluginRecord",
    "PluginRegistrationError",
    "PluginSettings",
    "PluginState",
    "PluginTelemetry",
    "ReloadFailed",
    "ReloadResult",
    "Report",
    "RescanResult",
    "Resolution",
    "ResolvedConfig",
    "RoutedMessage",
    "SandboxViolation",
    "Subscription",
    "TelemetryReport",
    "TelemetrySettings",
    "TimeRange",
    "UnknownCommand",
    "UnknownDataSource",
    "UnsupportedReportFormat",
    "ValueOrigin",
    "VersionRange",
    "VersionRangeError",
    "WorkerError",
    "WorkerHandle",
    "WorkerLimits",
    "WorkerProtocolError",
    "__version__",
    "discover",
    "hookimpl",
    "hookspec",
    "load_host_settings",
    "manifest_json_schema",
    "parse_manifest",
    "parse_range",
    "parse_version",
    "plugin_env_prefix",
    "read_audit_log",
    "read_manifest",
    "render_report",
    "resolve",
    "resolve_plugin_config",
]
