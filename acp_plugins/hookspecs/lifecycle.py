"""Lifecycle hooks: optional for every plugin, called as it moves through its states.

Order when the host starts a plugin: ``on_discover`` and ``on_load`` (-> Loaded);
``get_settings_model`` (the host then builds and validates the configuration),
``validate_config``, ``initialize`` and ``on_initialize`` (-> Initialized);
``activate`` and ``on_activate`` (-> Active). A validated change of settings while
the plugin runs calls ``on_config_changed``. Suspending calls ``deactivate`` and
``on_suspend``; resuming calls ``activate`` and ``on_activate``; unloading calls
``deactivate`` (when active) and ``on_unload``.

``initialize``, ``activate``, ``deactivate`` and ``validate_config`` may return
``False`` to refuse; the plugin then stays in its previous state with the reason
recorded. Raising does the same.
"""

# mypy: disable-error-code="empty-body"
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from acp_plugins.markers import PROJECT_NAME, hookspec

if TYPE_CHECKING:
    from pydantic import BaseModel

    from acp_plugins.config.layers import PluginConfig
    from acp_plugins.loading.manifest import Manifest
    from acp_plugins.runtime.context import PluginContext


@hookspec
def on_discover(manifest: Manifest) -> None:
    """Called first, right after the plugin is imported, with its validated manifest.

    Plugin code never runs before its manifest and permissions are validated, so
    this is the plugin's first chance to see what the host found.
    """


@hookspec
def on_load() -> None:
    """Called once the plugin is imported and registered (-> Loaded)."""


@hookspec
def validate_config(config: PluginConfig) -> bool | None:
    """Check ``config`` before it is applied; return ``False`` or raise to refuse it."""


@hookspec
def get_settings_model() -> type[BaseModel] | None:
    """Return the pydantic model of the plugin's settings (``None``: it has none).

    The host builds the plugin's configuration from its layers (defaults, global
    file, environment, user file, runtime overrides) and validates it with this
    model before ``validate_config`` and ``initialize``.
    """


@hookspec
def get_config_schema() -> dict[str, Any] | None:
    """Return the JSON Schema of the plugin's settings (default: its settings model's)."""


@hookspec
def on_config_changed(config: PluginConfig) -> bool | None:
    """A validated change of the plugin's settings while it runs; ``False`` or raise to refuse.

    ``context.config`` and ``context.settings`` already hold the new values when
    this is called; if the plugin refuses, the host restores the old ones.
    """


@hookspec
def initialize(context: PluginContext) -> bool | None:
    """Receive the plugin's context; return ``False`` to refuse initialization."""


@hookspec
def on_initialize() -> None:
    """Called after configuration is applied and ``initialize`` succeeded (-> Initialized)."""


@hookspec
def activate() -> bool | None:
    """Start serving; return ``False`` to refuse activation."""


@hookspec
def on_activate() -> None:
    """Called when the plugin becomes operational (-> Active)."""


@hookspec
def health_check() -> bool | None:
    """Whether the plugin is ready to serve.

    Asked of a reloaded instance before it takes over (``False`` or raising keeps the
    old instance serving), and by ``host.telemetry.get_plugin_health`` (``False`` or
    raising makes the plugin ``failing``).
    """


@hookspec
def deactivate() -> bool | None:
    """Stop serving, gracefully (before suspending or unloading an active plugin)."""


@hookspec
def on_suspend() -> None:
    """Called when the plugin is temporarily disabled (-> Suspended)."""


@hookspec
def on_unload() -> None:
    """Release everything before the plugin is removed (-> Unloaded)."""


#: Hooks every plugin may implement whatever its interfaces (all optional): the specs above.
LIFECYCLE_HOOKS: frozenset[str] = frozenset(
    name for name, value in list(globals().items()) if hasattr(value, PROJECT_NAME + "_spec")
)
