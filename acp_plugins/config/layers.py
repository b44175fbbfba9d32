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

import os
import re
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Union, cast, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Secret, SecretBytes, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from acp_plugins.errors import ConfigError, ConfigProblem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 by the nox matrix
    import tomli as tomllib

__all__ = [
    "ConfigSources",
    "Layer",
    "PluginConfig",
    "PluginSettings",
    "ResolvedConfig",
    "ValueOrigin",
    "plugin_env_prefix",
    "portable_config_inputs",
    "resolve_plugin_config",
    "resolve_portable_config",
]

#: What a secret value is shown as, everywhere.
MASK = "**********"

_SECRET_TYPES: tuple[type, ...] = (SecretStr, SecretBytes, Secret)

#: A location inside settings: keys, and list indexes as pydantic reports them.
_Loc = tuple[str | int, ...]


class Layer(str, Enum):
    """The configuration layers, lowest precedence first."""

    DEFAULTS = "defaults"
    GLOBAL = "global"
    ENVIRONMENT = "environment"
    USER = "user"
    RUNTIME = "runtime"

    def __str__(self) -> str:
        return self.value


class PluginSettings(BaseModel):
    """Base for a plugin's settings model: unknown keys are reported, never kept."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class ValueOrigin:
    """Where an effective value came from: its layer and the file line, variable or default."""

    layer: Layer
    source: str

    def __str__(self) -> str:
        return f"{self.layer.value} ({self.source})"


_DEFAULT_ORIGIN = ValueOrigin(Layer.DEFAULTS, "default")


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
        given = _TableLayer(
            Layer.RUNTIME, dict(self.settings), lambda loc: "PluginConfig.settings", "settings"
        )
        _resolve(self.plugin_id, model, [given], env=None, env_prefix="")
        return True

    def merge(self, overrides: Mapping[str, Any]) -> PluginConfig:
        """A new config whose settings are these deep-merged with ``overrides``.

        Nested mappings merge key by key; any other value in ``overrides`` replaces.
        """
        return replace(self, settings=_deep_merge(self.settings, overrides))


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
        return cast(dict[str, Any], to_jsonable_python(_masked(model, self.values), fallback=str))

    def explain(self) -> list[tuple[str, Any, ValueOrigin]]:
        """``(dotted path, masked value, origin)`` of every value, sorted by path."""
        return sorted(
            (path, value, self.origins.get(path, _DEFAULT_ORIGIN))
            for path, value in _leaves(self.masked())
        )


def plugin_env_prefix(plugin_id: str) -> str:
    """The prefix of a plugin's environment variables: ``ACP_PLUGIN_SQLITE_STORE__``."""
    return "ACP_PLUGIN_" + re.sub(r"[-.]", "_", plugin_id).upper() + "__"


# -- the files ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigSources:
    """Where the configuration layers come from: two TOML files and an environment.

    ``global_tables`` are plugin tables given by an embedding application
    (``PluginHost(settings=...)``); they belong to the global layer, over the
    global file's tables.
    """

    global_file: Path | None = None
    user_file: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    global_tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_environment(
        cls,
        *,
        global_file: Path | None = None,
        user_file: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ConfigSources:
        """The sources as the command line and the environment name them.

        Global file: ``global_file``, else ``$ACP_CONFIG_FILE``, else ``./acp-plugins.toml``.
        User file: ``user_file``, else ``$ACP_USER_CONFIG``, else
        ``$XDG_CONFIG_HOME/acp-plugins/config.toml`` (``~/.config/...``). A file named
        explicitly must exist (reading it fails otherwise); a default location is used
        only if the file is there.
        """
        env = dict(os.environ if environ is None else environ)
        if global_file is None:
            if env.get("ACP_CONFIG_FILE"):
                global_file = Path(env["ACP_CONFIG_FILE"])
            elif Path("acp-plugins.toml").is_file():
                global_file = Path("acp-plugins.toml")
        if user_file is None:
            if env.get("ACP_USER_CONFIG"):
                user_file = Path(env["ACP_USER_CONFIG"])
            else:
                base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
                candidate = Path(base) / "acp-plugins" / "config.toml"
                user_file = candidate if candidate.is_file() else None
        return cls(global_file=global_file, user_file=user_file, environ=env)

    def with_global_tables(self, tables: Mapping[str, Mapping[str, Any]]) -> ConfigSources:
        """These sources with ``tables`` (plugin id -> settings) merged over the global file's."""
        merged = dict(self.global_tables)
        for plugin_id, table in tables.items():
            merged[plugin_id] = _deep_merge(merged.get(plugin_id, {}), table)
        return replace(self, global_tables=merged)

    def table(self, layer: Layer, name: str) -> tuple[dict[str, Any], Callable[[str], str]]:
        """Table ``[plugins.<name>]`` of the global or user file, and where each key is.

        The second item maps a dotted key path to ``"file:line"`` where that key is
        written (best effort: the nearest enclosing table or key, else the file name).
        Raises :class:`ConfigError` if the file cannot be read or is not valid TOML.
        """
        data, where = self._plugin_table(layer, name)
        return data, _dotted_locator(where)

    def host_table(self, layer: Layer) -> tuple[dict[str, Any], Callable[[str], str]]:
        """Table ``[host]`` (the host's own settings) of the global or user file."""
        data, where = self._table(layer, ("host",), "host")
        return data, _dotted_locator(where)

    def plugin_tables(self, layer: Layer) -> dict[str, dict[str, Any]]:
        """Every ``[plugins.<id>]`` table of the global or user file, by plugin id."""
        tables, _ = self._table(layer, ("plugins",), None)
        ids = set(tables) | (set(self.global_tables) if layer is Layer.GLOBAL else set())
        return {plugin_id: self._plugin_table(layer, plugin_id)[0] for plugin_id in sorted(ids)}

    def _plugin_table(self, layer: Layer, name: str) -> tuple[dict[str, Any], _Locator]:
        data, where = self._table(layer, ("plugins", name), name)
        given = self.global_tables.get(name) if layer is Layer.GLOBAL else None
        if not given:
            return data, where

        def where_given(loc: _Loc) -> str:
            if _covered(given, loc) is not None:
                return "PluginHost(settings=...)"
            return where(loc)

        return _deep_merge(data, given), where_given

    def _table(
        self, layer: Layer, header: tuple[str, ...], owner: str | None
    ) -> tuple[dict[str, Any], _Locator]:
        if layer is Layer.GLOBAL:
            path = self.global_file
        elif layer is Layer.USER:
            path = self.user_file
        else:
            raise ValueError(f"only the global and user layers are files, not {layer.value!r}")
        if path is None:
            return {}, lambda loc: "default"
        document = _TomlDocument.read(path, owner)
        return document.table(header, owner), document.where_fn(header)


_Locator = Callable[[_Loc], str]


def _dotted_locator(where: _Locator) -> Callable[[str], str]:
    return lambda dotted: where(tuple(dotted.split(".")) if dotted else ())


_BARE_OR_QUOTED = r"""[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'"""
_HEADER = re.compile(
    rf"""^\s*\[\[?\s*((?:{_BARE_OR_QUOTED})(?:\s*\.\s*(?:{_BARE_OR_QUOTED}))*)\s*\]\]?"""
)
_KEY = re.compile(rf"""^\s*((?:{_BARE_OR_QUOTED})(?:\s*\.\s*(?:{_BARE_OR_QUOTED}))*)\s*=""")
_KEY_PART = re.compile(_BARE_OR_QUOTED)
_TOML_LINE = re.compile(r"at line (\d+)")


@dataclass(frozen=True, slots=True)
class _TomlDocument:
    """A parsed TOML file and, for finding where keys are written, its key lines."""

    path: Path
    data: dict[str, Any]
    keys: tuple[tuple[int, tuple[str, ...]], ...]  # (line number, full key path) in file order

    @classmethod
    def read(cls, path: Path, owner: str | None) -> _TomlDocument:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"config file {path} does not exist; create it or name another one",
                plugin_id=owner,
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read config file {path}: {error}", plugin_id=owner) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            line = _TOML_LINE.search(str(error))
            where = f"{path}:{line.group(1)}" if line else str(path)
            raise ConfigError(
                f"{where}: config file is not valid TOML: {error}", plugin_id=owner
            ) from None
        return cls(path, data, tuple(_key_lines(text)))

    def table(self, header: tuple[str, ...], owner: str | None) -> dict[str, Any]:
        node: Any = self.data
        for depth, part in enumerate(header):
            node = node.get(part, {})
            if not isinstance(node, dict):
                name = ".".join(header[: depth + 1])
                raise ConfigError(
                    f"{self.where(header[: depth + 1])}: '{name}' must be a table, "
                    f"not {type(node).__name__}",
                    plugin_id=owner,
                )
        return cast(dict[str, Any], node)

    def where_fn(self, header: tuple[str, ...]) -> _Locator:
        return lambda loc: self.where(header + tuple(str(part) for part in loc), len(header))

    def where(self, target: tuple[str, ...], least: int = 1) -> str:
        """``file:line`` of the key or table nearest to ``target``: the first line whose key
        shares the longest start with it (at least ``least`` parts); else the file name."""
        best_line, best_score = 0, least - 1
        for line, key in self.keys:
            score = 0
            for mine, theirs in zip(key, target, strict=False):
                if mine != theirs:
                    break
                score += 1
            if score > best_score:
                best_line, best_score = line, score
        return f"{self.path}:{best_line}" if best_line else str(self.path)


def _key_lines(text: str) -> list[tuple[int, tuple[str, ...]]]:
    found: list[tuple[int, tuple[str, ...]]] = []
    table: tuple[str, ...] = ()
    in_string = False
    for number, line in enumerate(text.splitlines(), start=1):
        quotes = line.count('"""') + line.count("'''")
        if in_string:  # inside a multi-line string: not a key line
            in_string = quotes % 2 == 0
            continue
        if header := _HEADER.match(line):
            table = _key_parts(header.group(1))
            found.append((number, table))
        elif key := _KEY.match(line):
            found.append((number, table + _key_parts(key.group(1))))
        in_string = quotes % 2 == 1
    return found


def _key_parts(dotted: str) -> tuple[str, ...]:
    parts = []
    for token in _KEY_PART.findall(dotted):
        if token.startswith('"'):
            token = tomllib.loads(f"k = {token}")["k"]
        elif token.startswith("'"):
            token = token[1:-1]
        parts.append(token)
    return tuple(parts)


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
    settings, values, origins = _resolve(
        plugin_id,
        model,
        _plugin_layers(plugin_id, sources, runtime),
        env=sources.environ,
        env_prefix=plugin_env_prefix(plugin_id),
    )
    return ResolvedConfig(plugin_id, settings, values, origins)


def _plugin_layers(
    plugin_id: str, sources: ConfigSources, runtime: Mapping[str, Any] | None
) -> list[_TableLayer | None]:
    global_table, global_where = sources._plugin_table(Layer.GLOBAL, plugin_id)
    user_table, user_where = sources._plugin_table(Layer.USER, plugin_id)
    return [
        _TableLayer(Layer.GLOBAL, global_table, global_where),
        None,  # the environment
        _TableLayer(Layer.USER, user_table, user_where),
        _TableLayer(Layer.RUNTIME, dict(runtime or {}), lambda loc: "runtime override"),
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
        for loc in _every_loc(layer.data):
            where[_dotted(loc)] = layer.where(loc)
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
    layers: list[_TableLayer | None] = []
    for item in inputs["layers"]:
        if item is None:
            layers.append(None)
        else:
            layers.append(
                _TableLayer(
                    Layer(item["layer"]),
                    dict(item["data"]),
                    _mapped_locator(dict(item["where"])),
                    str(item.get("label", "")),
                )
            )
    settings, values, origins = _resolve(
        plugin_id, model, layers, env=dict(inputs["env"]), env_prefix=str(inputs["prefix"])
    )
    return ResolvedConfig(plugin_id, settings, values, origins)


def _every_loc(data: Mapping[str, Any], prefix: _Loc = ()) -> list[_Loc]:
    found: list[_Loc] = []
    for key, value in data.items():
        loc = (*prefix, key)
        found.append(loc)
        if isinstance(value, Mapping):
            found += _every_loc(value, loc)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                found.append((*loc, index))
                if isinstance(item, Mapping):
                    found += _every_loc(item, (*loc, index))
    return found


def _mapped_locator(where: dict[str, str]) -> _Locator:
    def locate(loc: _Loc) -> str:
        for depth in range(len(loc), 0, -1):
            found = where.get(_dotted(loc[:depth]))
            if found is not None:
                return found
        return where.get("", "default")

    return locate


@dataclass(frozen=True, slots=True)
class _TableLayer:
    """One layer given as data (a file's table, overrides), and where its keys are written."""

    layer: Layer
    data: dict[str, Any]
    where: _Locator
    label: str = ""  # the layer's name in problems, when not the layer's own

    @property
    def name(self) -> str:
        return self.label or self.layer.value


class _EnvironSource(EnvSettingsSource):
    """``EnvSettingsSource`` reading a given mapping instead of ``os.environ``.

    A value that is not valid JSON where JSON is expected is noted in ``failures``
    (field name, error) and skipped, instead of failing the whole source.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.failures: list[tuple[str, ValueError]] = []
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # pydantic-settings 2.3 through 2.16 read os.environ here, at construction; this
        # (also what its dotenv and cloud sources override) is the one place to feed another
        # mapping. Names are folded as its own parse_env_vars folds them.
        return {
            (name if self.case_sensitive else name.lower()): value
            for name, value in self._environ.items()
        }

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            # A value inside a dict-typed setting (ACP_X__GRANTS__ECHO=...) comes with no
            # field. pydantic-settings 2.16 keeps such a value as text when it is not JSON;
            # 2.3 fails the whole setting. Keep it as text in both: validation decides.
            if cast(FieldInfo | None, field) is None:
                return value
            raise

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        try:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        except ValueError as error:  # pydantic-settings would raise SettingsError for the source
            self.failures.append((field_name, error))
            return None


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


def _resolve(
    owner: str,
    model: type[BaseModel] | None,
    layers: Sequence[_TableLayer | None],
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
    inputs: list[_LayerInput] = []
    for layer in layers:
        if layer is None:
            inputs.append(_EnvLayer(_EnvironSource(settings_cls, env or {}), env_prefix, env_vars))
        else:
            source = InitSettingsSource(settings_cls, init_kwargs=dict(layer.data))
            inputs.append(_DataLayer(layer, source))
    sources[:] = [item.source for item in reversed(inputs)]
    for item in inputs:
        item.raw = item.source()
    located = _Located(owner, model, inputs)

    problems = [
        problem
        for item in inputs
        if isinstance(item, _EnvLayer)
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
    origins = {_dotted(loc): located.origin(loc) for loc, _ in _leaves_loc(values)}
    return settings, values, origins


def _resolve_without_model(
    owner: str, layers: Sequence[_TableLayer | None], prefix: str, env_vars: Mapping[str, str]
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


class _DataLayer:
    """A layer given as data, as a pydantic-settings source."""

    def __init__(self, layer: _TableLayer, source: PydanticBaseSettingsSource) -> None:
        self.layer = layer.layer
        self.name = layer.name
        self.source = source
        self.raw: dict[str, Any] = {}
        self._where = layer.where

    def where(self, loc: _Loc) -> str:
        return self._where(loc)


class _EnvLayer:
    """The environment layer: its source, and how its keys map back to variable names."""

    layer = Layer.ENVIRONMENT
    name = Layer.ENVIRONMENT.value

    def __init__(self, source: _EnvironSource, prefix: str, env_vars: Mapping[str, str]) -> None:
        self.source: PydanticBaseSettingsSource = source
        self.failures = source.failures
        self.prefix = prefix
        self.env_vars = env_vars
        self.raw: dict[str, Any] = {}
        self._names = {name.lower(): name for name in env_vars}

    def where(self, loc: _Loc) -> str:
        """The variable that set ``loc``: the longest name that is a prefix of its path."""
        parts = [str(part) for part in loc]
        for depth in range(len(parts), 0, -1):
            name = (self.prefix + "__".join(parts[:depth])).lower()
            if name in self._names:
                return self._names[name]
        return (self.prefix + "__".join(parts)).upper()

    def problems(
        self, owner: str, model: type[BaseModel], located: _Located
    ) -> list[ConfigProblem]:
        """Variables that name no setting, or hold malformed JSON."""
        found = []
        known = _field_keys(model)
        for name in sorted(self.env_vars):
            key = name[len(self.prefix) :].lower().split("__")[0]
            if key not in known:
                found.append(
                    ConfigProblem(owner, key, self.name, name, _unknown_key(owner, model), None)
                )
        for field_name, error in self.failures:
            names = [
                name
                for name in sorted(self.env_vars)
                if name[len(self.prefix) :].lower().split("__")[0] == field_name.lower()
            ]
            given = self.env_vars[names[0]] if len(names) == 1 else None
            found.append(
                ConfigProblem(
                    owner,
                    field_name,
                    self.name,
                    ", ".join(names) or self.where((field_name,)),
                    f"not valid JSON ({located.scrub(str(error.__cause__ or error))})",
                    _masked(_types_at([model], (field_name,)), given),
                )
            )
        return found


_LayerInput = _DataLayer | _EnvLayer


class _Located:
    """Finds which layer supplied a value, and turns validation errors into problems."""

    def __init__(self, owner: str, model: type[BaseModel], inputs: Sequence[_LayerInput]) -> None:
        self.owner = owner
        self.model = model
        self.inputs = inputs
        self.secrets = {
            secret for item in inputs for secret in _secret_texts([model], item.raw) if secret
        }

    def supplier(self, loc: _Loc, *, nearest: bool = False) -> tuple[_LayerInput, int] | None:
        """The highest layer supplying ``loc`` and how much of ``loc`` it has (less than all
        when pydantic looked inside a plain value, e.g. for a union member). ``nearest``:
        failing that, the highest supplying its longest prefix (an error's location may
        name a union member, which no layer has)."""
        for depth in range(len(loc), 0 if nearest else len(loc) - 1, -1):
            for item in reversed(self.inputs):
                covered = _covered(item.raw, loc[:depth])
                if covered is not None:
                    return item, covered
        return None

    def origin(self, loc: _Loc) -> ValueOrigin:
        found = self.supplier(loc)
        if found is None:
            return _DEFAULT_ORIGIN
        item, _ = found
        return ValueOrigin(item.layer, item.where(loc))

    def scrub(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def problems(self, error: ValidationError) -> list[ConfigProblem]:
        merged: dict[tuple[str, str, str], ConfigProblem] = {}
        for details in error.errors():
            problem = self.problem(
                tuple(details["loc"]), details["type"], details["msg"], details.get("input")
            )
            key = (problem.path, problem.layer, problem.source)
            earlier = merged.get(key)
            if earlier is not None and problem.problem not in earlier.problem:
                # the alternatives of a union each fail on the same value
                problem = replace(earlier, problem=f"{earlier.problem}; {problem.problem}")
            merged[key] = problem
        return list(merged.values())

    def problem(self, loc: _Loc, kind: str, message: str, value: Any) -> ConfigProblem:
        owner = self.owner
        if kind == "missing":
            items = [depth for depth, part in enumerate(loc) if isinstance(part, int)]
            holder = self.supplier(loc[: items[-1] + 1]) if items else None
            if holder is not None:  # an item of a list lacks it: the list's layer is to blame
                supplier = holder[0]
                return ConfigProblem(
                    owner, _dotted(loc), supplier.name, supplier.where(loc), "required"
                )
            return ConfigProblem(
                owner, _dotted(loc), Layer.DEFAULTS.value, "no layer sets it", self._hint(loc)
            )
        found = self.supplier(loc, nearest=True) if loc else None
        if found is None:  # a default, or a check of the settings as a whole
            layer, source, covered = Layer.DEFAULTS.value, "default", len(loc)
            if not loc:
                layer, source = "all", "the merged layers"
        else:
            item, covered = found
            layer, source = item.name, item.where(loc[:covered])
        path = _dotted(loc[:covered])
        if kind == "extra_forbidden":
            parent = [t for t in _types_at([self.model], loc[:-1]) if _is_model(t)]
            return ConfigProblem(
                owner, path, layer, source, _unknown_key(owner, parent[0] if parent else None)
            )
        shown = _masked(_types_at([self.model], loc[:covered]), value)
        return ConfigProblem(owner, path, layer, source, self.scrub(message), shown)

    def _hint(self, loc: _Loc) -> str:
        """What to do about a missing setting."""
        for item in self.inputs:
            if isinstance(item, _EnvLayer):
                variable = (item.prefix + "__".join(str(part) for part in loc)).upper()
                table = "[host]" if self.owner == "host" else f"[plugins.{self.owner}]"
                return f"required; set it in {table} of a config file or with {variable}"
        return "required"


def _unknown_key(owner: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return "unknown setting; remove it"
    known = ", ".join(sorted(model.model_fields)) or "none"
    return f"unknown setting; remove it or fix its spelling (known: {known})"


def _field_keys(model: type[BaseModel]) -> set[str]:
    """The lower-cased names and aliases a model's fields accept."""
    keys = set()
    for name, info in model.model_fields.items():
        keys.add(name.lower())
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                keys.add(alias.lower())
    return keys


# -- nested data --------------------------------------------------------------------------


def _deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` on top: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in overrides.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = _deep_merge(below, value)
        elif isinstance(value, Mapping):
            merged[key] = _deep_merge({}, value)
        else:
            merged[key] = value
    return merged


def _covered(raw: Any, loc: _Loc) -> int | None:
    """How much of ``loc`` ``raw`` supplies: all of it, or the part up to a plain value that
    pydantic looked inside; ``None`` if ``raw`` does not have it."""
    node = raw
    for depth, part in enumerate(loc):
        if isinstance(node, Mapping):
            key = _key_in(node, part)
            if key is None:
                return None
            node = node[key]
        elif isinstance(node, (list, tuple)) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return depth or None
    return len(loc)


def _key_in(node: Mapping[Any, Any], part: str | int) -> Any:
    if part in node:
        return part
    if isinstance(part, str):  # settings match names case-insensitively
        for key in node:
            if isinstance(key, str) and key.lower() == part.lower():
                return key
    return None


def _dotted(loc: _Loc) -> str:
    return ".".join(str(part) for part in loc)


def _leaves_loc(values: Mapping[str, Any], prefix: _Loc = ()) -> list[tuple[_Loc, Any]]:
    """Every leaf of nested mappings (a non-mapping, or an empty mapping) with its path."""
    found: list[tuple[_Loc, Any]] = []
    for key, value in values.items():
        loc = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            found += _leaves_loc(value, loc)
        else:
            found.append((loc, value))
    return found


def _leaves(values: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [(_dotted(loc), value) for loc, value in _leaves_loc(values)]


# -- secrets: what the model says is secret ----------------------------------------------


def _alternatives(annotation: Any) -> list[Any]:
    """The types an annotation allows: ``Annotated`` and ``Optional``/unions unpacked."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _alternatives(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [alt for arg in get_args(annotation) for alt in _alternatives(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    # on 3.10 ``list[int]`` passes for a type, but issubclass() refuses it
    return (
        isinstance(annotation, type)
        and not isinstance(annotation, types.GenericAlias)
        and issubclass(annotation, BaseModel)
    )


def _is_secret(annotations: Sequence[Any]) -> bool:
    for annotation in annotations:
        for alt in _alternatives(annotation):
            cls = get_origin(alt) or alt
            if isinstance(cls, type) and issubclass(cls, _SECRET_TYPES):
                return True
    return False


def _children(annotations: Sequence[Any], part: str | int) -> list[Any]:
    """The possible types of item ``part`` of a value typed by any of ``annotations``."""
    found = []
    for annotation in annotations:
        for alt in _alternatives(annotation):
            if _is_model(alt):
                info = _model_field(alt, part)
                if info is not None:
                    found.append(info.annotation)
                continue
            origin, args = get_origin(alt), get_args(alt)
            if not isinstance(origin, type) or not args:
                continue
            if issubclass(origin, tuple):
                if len(args) == 2 and args[1] is Ellipsis:
                    found.append(args[0])
                elif isinstance(part, int) and part < len(args):
                    found.append(args[part])
            elif issubclass(origin, Mapping):
                found.append(args[-1])
            elif issubclass(origin, (Sequence, AbstractSet)):
                found.append(args[0])
    return found


def _model_field(model: type[BaseModel], key: str | int) -> FieldInfo | None:
    if not isinstance(key, str):
        return None
    for name, info in model.model_fields.items():
        if key.lower() == name.lower() or (info.alias and key.lower() == info.alias.lower()):
            return info
    return None


def _types_at(annotations: Sequence[Any], loc: _Loc) -> list[Any]:
    for part in loc:
        annotations = _children(annotations, part)
    return list(annotations)


def _masked(annotations: Sequence[Any], value: Any) -> Any:
    """``value`` with every secret in it (by type, or by what the model says) masked."""
    if value is None:
        return None
    if isinstance(value, _SECRET_TYPES) or _is_secret(annotations):
        return MASK
    if isinstance(value, Mapping):
        return {key: _masked(_children(annotations, key), item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(_children(annotations, index), item) for index, item in enumerate(value)]
    if _holds_secret(annotations):  # e.g. the JSON text of a model with a secret field
        return MASK
    return value


def _holds_secret(annotations: Sequence[Any], depth: int = 0) -> bool:
    """Whether a value of these types may have a secret inside."""
    if _is_secret(annotations):
        return True
    if depth > 8:  # a model that nests itself
        return False
    for annotation in annotations:
        for alt in _alternatives(annotation):
            if _is_model(alt):
                inner = [info.annotation for info in alt.model_fields.values()]
            else:
                inner = [arg for arg in get_args(alt) if arg is not Ellipsis]
            if inner and _holds_secret(inner, depth + 1):
                return True
    return False


def _secret_texts(annotations: Sequence[Any], value: Any) -> list[str]:
    """The plain texts of the secrets in raw input ``value``, to keep them out of messages."""
    if value is None:
        return []
    if isinstance(value, (SecretStr, SecretBytes)):
        value = value.get_secret_value()
    if _is_secret(annotations):
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return [str(value)] if not isinstance(value, (Mapping, list, tuple)) else []
    if isinstance(value, Mapping):
        return [
            text
            for key, item in value.items()
            for text in _secret_texts(_children(annotations, key), item)
        ]
    if isinstance(value, (list, tuple)):
        return [
            text
            for index, item in enumerate(value)
            for text in _secret_texts(_children(annotations, index), item)
        ]
    return []
