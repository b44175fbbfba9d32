"""Plugin configuration: five layers, merged and validated by pydantic-settings.

A plugin's settings come from, lowest precedence first: its settings model's
defaults, the global config file (table ``[plugins.<id>]``), environment variables
(``ACP_PLUGIN_<ID>__<KEY>[__<SUBKEY>...]``), the per-user config file (same tables)
and runtime overrides. A higher layer overrides only the keys it names: nested
tables merge key by key.

:func:`resolve_plugin_config` builds a pydantic-settings class from the plugin's
model, lets pydantic-settings parse, merge and validate the layers, and records
for every value the layer (and file line or variable) it came from. Invalid
settings raise :class:`~acp_plugins.errors.ConfigError` naming each bad key and
where it was written, with secret values masked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import to_jsonable_python
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from acp_plugins.config.located import (
    DataLayer,
    EnvironSource,
    EnvLayer,
    LayerInput,
    Located,
    TableLayer,
)
from acp_plugins.config.origins import DEFAULT_ORIGIN, Layer, ValueOrigin
from acp_plugins.config.secrets import MASK, mask_secrets
from acp_plugins.config.sources import ConfigSources
from acp_plugins.config.trees import (
    deep_merge,
    dotted,
    every_loc,
    leaves,
    leaves_loc,
    mapped_locator,
)
from acp_plugins.errors import ConfigError, ConfigProblem

__all__ = [
    "MASK",
    "ConfigSources",
    "Layer",
    "PluginConfig",
    "PluginSettings",
    "ResolvedConfig",
    "ValueOrigin",
    "plugin_env_prefix",
    "portable_config_inputs",
    "resolve_layers",
    "resolve_plugin_config",
    "resolve_portable_config",
]


class PluginSettings(BaseModel):
    """Base for a plugin's settings model: unknown keys are reported, never kept."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class PluginConfig:
    """A plugin's effective configuration: its settings and the environment they came with.

    ``environment`` holds the environment variables (name -> value) that contributed
    to the settings, the ``ACP_PLUGIN_<ID>__*`` ones.
    """

    plugin_id: str
    version: str
    enabled: bool = True
    settings: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)

    def validate(self, model: type[BaseModel] | None = None) -> bool:
        """Check ``settings`` against ``model`` (without one they must be empty).

        Returns ``True``; raises :class:`ConfigError` listing every problem otherwise.
        """
        given = TableLayer(
            Layer.RUNTIME, dict(self.settings), lambda loc: "PluginConfig.settings", "settings"
        )
        resolve_layers(self.plugin_id, model, [given], env=None, env_prefix="")
        return True

    def merge(self, overrides: Mapping[str, Any]) -> PluginConfig:
        """A new config whose settings are these deep-merged with ``overrides``.

        Nested mappings merge key by key; any other value in ``overrides`` replaces.
        """
        return replace(self, settings=deep_merge(self.settings, overrides))


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """A plugin's validated settings, their effective values and where each came from."""

    plugin_id: str
    settings: BaseModel | None
    values: dict[str, Any]
    origins: dict[str, ValueOrigin]

    def masked(self) -> dict[str, Any]:
        """The values ready for JSON, every secret (at any depth) shown as ``**********``."""
        model = [type(self.settings)] if self.settings is not None else []
        return cast(
            dict[str, Any], to_jsonable_python(mask_secrets(model, self.values), fallback=str)
        )

    def explain(self) -> list[tuple[str, Any, ValueOrigin]]:
        """``(dotted path, masked value, origin)`` of every value, sorted by path."""
        return sorted(
            (path, value, self.origins.get(path, DEFAULT_ORIGIN))
            for path, value in leaves(self.masked())
        )


def plugin_env_prefix(plugin_id: str) -> str:
    """The prefix of a plugin's environment variables: ``ACP_PLUGIN_SQLITE_STORE__``."""
    return "ACP_PLUGIN_" + re.sub(r"[-.]", "_", plugin_id).upper() + "__"


# -- resolution --------------------------------------------------------------------------


def resolve_plugin_config(
    plugin_id: str,
    model: type[BaseModel] | None,
    sources: ConfigSources,
    runtime: Mapping[str, Any] | None = None,
) -> ResolvedConfig:
    """Merge and validate a plugin's settings from every layer; say where each value came from.

    ``model`` is the plugin's settings model (``None``: it has no settings, and no
    layer may set any). Raises :class:`ConfigError` naming every bad or unknown key,
    its layer and where it was written.
    """
    settings, values, origins = resolve_layers(
        plugin_id,
        model,
        _plugin_layers(plugin_id, sources, runtime),
        env=sources.environ,
        env_prefix=plugin_env_prefix(plugin_id),
    )
    return ResolvedConfig(plugin_id, settings, values, origins)


def _plugin_layers(
    plugin_id: str, sources: ConfigSources, runtime: Mapping[str, Any] | None
) -> list[TableLayer | None]:
    global_table, global_where = sources.located_table(Layer.GLOBAL, plugin_id)
    user_table, user_where = sources.located_table(Layer.USER, plugin_id)
    return [
        TableLayer(Layer.GLOBAL, global_table, global_where),
        None,  # the environment
        TableLayer(Layer.USER, user_table, user_where),
        TableLayer(Layer.RUNTIME, dict(runtime or {}), lambda loc: "runtime override"),
    ]


def portable_config_inputs(
    plugin_id: str, sources: ConfigSources, runtime: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Everything :func:`resolve_plugin_config` reads, as JSON data.

    An isolated plugin's settings model lives in its worker: the host sends these
    inputs there (the worker reads no file and sees only its own environment
    variables) and :func:`resolve_portable_config` validates them with the same
    code, so both modes report the same values, origins and problems.
    """
    layers: list[dict[str, Any] | None] = []
    for layer in _plugin_layers(plugin_id, sources, runtime):
        if layer is None:
            layers.append(None)
            continue
        where = {"": layer.where(())}
        for loc in every_loc(layer.data):
            where[dotted(loc)] = layer.where(loc)
        layers.append(
            {
                "layer": layer.layer.value,
                "data": to_jsonable_python(layer.data, fallback=str),
                "where": where,
                "label": layer.label,
            }
        )
    prefix = plugin_env_prefix(plugin_id)
    env = {k: v for k, v in sources.environ.items() if k.upper().startswith(prefix)}
    return {"layers": layers, "env": env, "prefix": prefix}


def resolve_portable_config(
    plugin_id: str, model: type[BaseModel] | None, inputs: Mapping[str, Any]
) -> ResolvedConfig:
    """:func:`resolve_plugin_config` on what :func:`portable_config_inputs` made."""
    layers: list[TableLayer | None] = []
    for item in inputs["layers"]:
        if item is None:
            layers.append(None)
        else:
            layers.append(
                TableLayer(
                    Layer(item["layer"]),
                    dict(item["data"]),
                    mapped_locator(dict(item["where"])),
                    str(item.get("label", "")),
                )
            )
    settings, values, origins = resolve_layers(
        plugin_id, model, layers, env=dict(inputs["env"]), env_prefix=str(inputs["prefix"])
    )
    return ResolvedConfig(plugin_id, settings, values, origins)


def _settings_class(
    model: type[BaseModel], env_prefix: str, sources: list[PydanticBaseSettingsSource]
) -> type[BaseSettings]:
    """A pydantic-settings class with ``model``'s fields whose sources are ``sources``.

    Unknown keys are refused whatever the model's own ``extra`` says.

    ``sources`` is filled in by the caller (the sources need the class); highest first.
    """

    def settings_customise_sources(
        cls: type[BaseSettings], settings_cls: type[BaseSettings], *args: Any, **kwargs: Any
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return tuple(sources)

    config = SettingsConfigDict(
        env_prefix=env_prefix, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )
    bases: tuple[type, ...]
    if issubclass(model, BaseSettings):
        bases = (model,)
    else:
        bases = (BaseSettings, model)
        # BaseSettings validates defaults; a plain model does not unless it says so
        config["validate_default"] = model.model_config.get("validate_default", False)
        # the model's own definition was checked against its own protected namespaces;
        # BaseSettings' ("settings_" in 2.3) would warn on every resolution
        config["protected_namespaces"] = ()
    namespace = {
        "model_config": config,
        "settings_customise_sources": classmethod(settings_customise_sources),
        "__module__": model.__module__,
        "__doc__": model.__doc__,
    }
    return cast(type[BaseSettings], type(f"{model.__name__}Layers", bases, namespace))


def resolve_layers(
    owner: str,
    model: type[BaseModel] | None,
    layers: Sequence[TableLayer | None],
    *,
    env: Mapping[str, str] | None,
    env_prefix: str,
) -> tuple[Any, dict[str, Any], dict[str, ValueOrigin]]:
    """Validate the merged ``layers`` (lowest first; ``None`` is the environment, read
    from ``env`` with ``env_prefix``) as ``model``; return the model instance, its values
    and their origins. Shared with :mod:`acp_plugins.config.settings`.
    """
    env_vars = {
        name: value for name, value in (env or {}).items() if name.upper().startswith(env_prefix)
    }
    if model is None:
        return _resolve_without_model(owner, layers, env_prefix, env_vars)

    sources: list[PydanticBaseSettingsSource] = []
    settings_cls = _settings_class(model, env_prefix, sources)
    inputs: list[LayerInput] = []
    for layer in layers:
        if layer is None:
            # only the prefixed variables: the source would fold every other one to skip it
            inputs.append(EnvLayer(EnvironSource(settings_cls, env_vars), env_prefix, env_vars))
        else:
            source = InitSettingsSource(settings_cls, init_kwargs=dict(layer.data))
            inputs.append(DataLayer(layer, source))
    sources[:] = [item.source for item in reversed(inputs)]
    for item in inputs:
        item.raw = item.source()
    located = Located(owner, model, inputs)

    problems = [
        problem
        for item in inputs
        if isinstance(item, EnvLayer)
        for problem in item.problems(owner, model, located)
    ]
    try:
        layered = settings_cls()
    except ValidationError as error:
        problems += located.problems(error)
    if problems:
        raise ConfigError(f"invalid settings for '{owner}'", plugin_id=owner, problems=problems)
    settings = model.model_construct(
        _fields_set=set(layered.model_fields_set),
        **{name: getattr(layered, name) for name in model.model_fields},
    )
    values = settings.model_dump()
    origins = {dotted(loc): located.origin(loc) for loc, _ in leaves_loc(values)}
    return settings, values, origins


def _resolve_without_model(
    owner: str, layers: Sequence[TableLayer | None], prefix: str, env_vars: Mapping[str, str]
) -> tuple[None, dict[str, Any], dict[str, ValueOrigin]]:
    problems = []
    remove = f"'{owner}' has no settings; remove it"
    for layer in layers:
        if layer is None:
            problems += [
                ConfigProblem(
                    owner,
                    name[len(prefix) :].lower().replace("__", "."),
                    Layer.ENVIRONMENT.value,
                    name,
                    f"{remove} from the environment",
                )
                for name in sorted(env_vars)
            ]
        else:
            problems += [
                ConfigProblem(owner, key, layer.name, layer.where((key,)), remove)
                for key in layer.data
            ]
    if problems:
        raise ConfigError(f"invalid settings for '{owner}'", plugin_id=owner, problems=problems)
    return None, {}, {}
