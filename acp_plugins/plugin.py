"""``Plugin``: an optional base class implementing the specification's ``IPlugin``.

Subclass it to get the lifecycle methods with sensible defaults, ``plugin_id``
and ``version`` from the manifest, and ``self.context`` once initialized. Any
object or module with ``@hookimpl`` functions is a valid plugin too.

Overriding one of the lifecycle methods below keeps it a hook implementation
(the override is marked automatically); interface hooks such as ``can_handle``
must be marked with :data:`acp_plugins.hookimpl`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from acp_plugins.markers import PROJECT_NAME, hookimpl

if TYPE_CHECKING:
    from acp_plugins.config import PluginConfig
    from acp_plugins.context import PluginContext
    from acp_plugins.manifest import Manifest

__all__ = ["Plugin"]

_MARK = PROJECT_NAME + "_impl"


class Plugin:
    """Base class for class-based plugins (the ``IPlugin`` of the specification)."""

    _lifecycle_hooks: ClassVar[tuple[str, ...]] = (
        "on_discover",
        "initialize",
        "activate",
        "deactivate",
        "get_config_schema",
        "validate_config",
    )

    manifest: Manifest
    context: PluginContext

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in Plugin._lifecycle_hooks:
            override = cls.__dict__.get(name)
            if callable(override) and not hasattr(override, _MARK):
                setattr(cls, name, hookimpl(override))

    @property
    def plugin_id(self) -> str:
        """The plugin's id, from its manifest."""
        return self.manifest.plugin_id

    @property
    def version(self) -> str:
        """The plugin's version, from its manifest."""
        return self.manifest.version

    @hookimpl
    def on_discover(self, manifest: Manifest) -> None:
        """Keep the manifest (call ``super().on_discover(manifest)`` when overriding)."""
        self.manifest = manifest

    @hookimpl
    def initialize(self, context: PluginContext) -> bool:
        """Keep the context (call ``super().initialize(context)`` when overriding)."""
        self.context = context
        return True

    @hookimpl
    def activate(self) -> bool:
        """Start serving; the default has nothing to start."""
        return True

    @hookimpl
    def deactivate(self) -> bool:
        """Stop serving; the default has nothing to stop."""
        return True

    @hookimpl
    def get_config_schema(self) -> dict[str, Any]:
        """The JSON Schema of the plugin's settings; the default has none."""
        return {}

    @hookimpl
    def validate_config(self, config: PluginConfig) -> bool:
        """Accept any configuration; override to check ``config.settings``."""
        del config
        return True
