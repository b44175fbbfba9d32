"""``Plugin``: an optional base class implementing the specification's ``IPlugin``.

Subclass it to get the lifecycle methods with sensible defaults, ``plugin_id``
and ``version`` from the manifest, and ``self.context`` once initialized. Any
object or module with ``@hookimpl`` functions is a valid plugin too.

Only ``on_discover`` and ``initialize`` are hook implementations here (they
keep the manifest and the context); the other defaults are what the host does
anyway for a plugin that does not implement those hooks, so they are plain
methods that cost nothing at registration. In a subclass, a method named after
a lifecycle hook (``activate``, ``on_load``, ``on_suspend``...) is a hook
implementation without a decorator; interface hooks such as ``can_handle`` must
be marked with :data:`acp_plugins.hookimpl`. The lifecycle methods may be
overridden with ``async def``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from acp_plugins.hookspecs.lifecycle import LIFECYCLE_HOOKS
from acp_plugins.markers import PROJECT_NAME, hookimpl

if TYPE_CHECKING:
    from acp_plugins.config.layers import PluginConfig
    from acp_plugins.loading.manifest import Manifest
    from acp_plugins.runtime.context import PluginContext

__all__ = ["Plugin"]

_MARK = PROJECT_NAME + "_impl"


class Plugin:
    """Base class for class-based plugins (the ``IPlugin`` of the specification)."""

    #: The pydantic model of the plugin's settings (its ``config.py``), or ``None``.
    settings_model: ClassVar[type[BaseModel] | None] = None

    manifest: Manifest
    context: PluginContext

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in LIFECYCLE_HOOKS:
            override = cls.__dict__.get(name)
            if callable(override) and not hasattr(override, _MARK):
                setattr(cls, name, hookimpl(override))
        if cls.__dict__.get("settings_model") is not None and "get_settings_model" not in vars(cls):
            # only plugins with settings pay for the hook at registration
            def get_settings_model(self: Plugin) -> type[BaseModel] | None:
                return type(self).settings_model

            cls.get_settings_model = hookimpl(get_settings_model)  # type: ignore[method-assign]

    # Properties never raise: tools that inspect plugin objects (pluggy before 1.7
    # among them) read every attribute, before the host has called on_discover.
    @property
    def plugin_id(self) -> str:
        """The plugin's id, from its manifest (empty until the host discovered it)."""
        manifest = getattr(self, "manifest", None)
        return manifest.plugin_id if manifest is not None else ""

    @property
    def version(self) -> str:
        """The plugin's version, from its manifest (empty until the host discovered it)."""
        manifest = getattr(self, "manifest", None)
        return manifest.version if manifest is not None else ""

    @hookimpl
    def on_discover(self, manifest: Manifest) -> Awaitable[None] | None:
        """Keep the manifest (call ``super().on_discover(manifest)`` when overriding)."""
        self.manifest = manifest
        return None

    @property
    def settings(self) -> Any:
        """The validated settings (an instance of ``settings_model``), kept current by the host."""
        context = getattr(self, "context", None)
        return context.settings if context is not None else None

    def get_settings_model(self) -> type[BaseModel] | None:
        """The settings model (a hook only in subclasses that declare ``settings_model``)."""
        return type(self).settings_model

    @hookimpl
    def initialize(self, context: PluginContext) -> bool | Awaitable[bool]:
        """Keep the context (call ``super().initialize(context)`` when overriding)."""
        self.context = context
        return True

    def activate(self) -> bool | Awaitable[bool]:
        """Start serving; the default has nothing to start."""
        return True

    def deactivate(self) -> bool | Awaitable[bool]:
        """Stop serving; the default has nothing to stop."""
        return True

    def get_config_schema(self) -> dict[str, Any] | Awaitable[dict[str, Any]]:
        """The JSON Schema of the plugin's settings: its settings model's, or ``{}``."""
        model = type(self).settings_model
        return model.model_json_schema() if model is not None else {}

    def validate_config(self, config: PluginConfig) -> bool | Awaitable[bool]:
        """Accept any configuration; override to check ``config.settings``."""
        del config
        return True
