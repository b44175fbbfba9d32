"""The layers as pydantic-settings sources, and which layer supplied each value.

Each layer is given to pydantic-settings as a source; :class:`Located` then
finds, for any location in the settings, the highest layer that supplied it and
where it is written there, and turns validation errors into
:class:`~acp_plugins.errors.ConfigProblem` entries naming that layer and place,
with secrets masked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource

from acp_plugins.config.origins import DEFAULT_ORIGIN, Layer, ValueOrigin
from acp_plugins.config.secrets import (
    MASK,
    is_model,
    mask_secrets,
    secret_texts,
    types_at,
)
from acp_plugins.config.trees import Loc, Locator, dotted, supplied_depth
from acp_plugins.errors import ConfigProblem

__all__ = [
    "DataLayer",
    "EnvLayer",
    "EnvironSource",
    "LayerInput",
    "Located",
    "TableLayer",
    "field_keys",
    "unknown_key",
]


@dataclass(frozen=True, slots=True)
class TableLayer:
    """One layer given as data (a file's table, overrides), and where its keys are written."""

    layer: Layer
    data: dict[str, Any]
    where: Locator
    label: str = ""  # the layer's name in problems, when not the layer's own

    @property
    def name(self) -> str:
        return self.label or self.layer.value


class EnvironSource(EnvSettingsSource):
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


class DataLayer:
    """A layer given as data, as a pydantic-settings source."""

    def __init__(self, layer: TableLayer, source: PydanticBaseSettingsSource) -> None:
        self.layer = layer.layer
        self.name = layer.name
        self.source = source
        self.raw: dict[str, Any] = {}
        self._where = layer.where

    def where(self, loc: Loc) -> str:
        return self._where(loc)


class EnvLayer:
    """The environment layer: its source, and how its keys map back to variable names."""

    layer = Layer.ENVIRONMENT
    name = Layer.ENVIRONMENT.value

    def __init__(self, source: EnvironSource, prefix: str, env_vars: Mapping[str, str]) -> None:
        self.source: PydanticBaseSettingsSource = source
        self.failures = source.failures
        self.prefix = prefix
        self.env_vars = env_vars
        self.raw: dict[str, Any] = {}
        self._names = {name.lower(): name for name in env_vars}

    def where(self, loc: Loc) -> str:
        """The variable that set ``loc``: the longest name that is a prefix of its path."""
        parts = [str(part) for part in loc]
        for depth in range(len(parts), 0, -1):
            name = (self.prefix + "__".join(parts[:depth])).lower()
            if name in self._names:
                return self._names[name]
        return (self.prefix + "__".join(parts)).upper()

    def problems(self, owner: str, model: type[BaseModel], located: Located) -> list[ConfigProblem]:
        """Variables that name no setting, or hold malformed JSON."""
        found = []
        known = field_keys(model)
        for name in sorted(self.env_vars):
            key = name[len(self.prefix) :].lower().split("__")[0]
            if key not in known:
                found.append(
                    ConfigProblem(owner, key, self.name, name, unknown_key(owner, model), None)
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
                    mask_secrets(types_at([model], (field_name,)), given),
                )
            )
        return found


LayerInput = DataLayer | EnvLayer


class Located:
    """Finds which layer supplied a value, and turns validation errors into problems."""

    def __init__(self, owner: str, model: type[BaseModel], inputs: Sequence[LayerInput]) -> None:
        self.owner = owner
        self.model = model
        self.inputs = inputs
        self.secrets = {
            secret for item in inputs for secret in secret_texts([model], item.raw) if secret
        }

    def supplier(self, loc: Loc, *, nearest: bool = False) -> tuple[LayerInput, int] | None:
        """The highest layer supplying ``loc`` and how much of ``loc`` it has (less than all
        when pydantic looked inside a plain value, e.g. for a union member). ``nearest``:
        failing that, the highest supplying its longest prefix (an error's location may
        name a union member, which no layer has)."""
        for depth in range(len(loc), 0 if nearest else len(loc) - 1, -1):
            for item in reversed(self.inputs):
                covered = supplied_depth(item.raw, loc[:depth])
                if covered is not None:
                    return item, covered
        return None

    def origin(self, loc: Loc) -> ValueOrigin:
        found = self.supplier(loc)
        if found is None:
            return DEFAULT_ORIGIN
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

    def problem(self, loc: Loc, kind: str, message: str, value: Any) -> ConfigProblem:
        owner = self.owner
        if kind == "missing":
            items = [depth for depth, part in enumerate(loc) if isinstance(part, int)]
            holder = self.supplier(loc[: items[-1] + 1]) if items else None
            if holder is not None:  # an item of a list lacks it: the list's layer is to blame
                supplier = holder[0]
                return ConfigProblem(
                    owner, dotted(loc), supplier.name, supplier.where(loc), "required"
                )
            return ConfigProblem(
                owner, dotted(loc), Layer.DEFAULTS.value, "no layer sets it", self._hint(loc)
            )
        found = self.supplier(loc, nearest=True) if loc else None
        if found is None:  # a default, or a check of the settings as a whole
            layer, source, covered = Layer.DEFAULTS.value, "default", len(loc)
            if not loc:
                layer, source = "all", "the merged layers"
        else:
            item, covered = found
            layer, source = item.name, item.where(loc[:covered])
        path = dotted(loc[:covered])
        if kind == "extra_forbidden":
            parent = [t for t in types_at([self.model], loc[:-1]) if is_model(t)]
            return ConfigProblem(
                owner, path, layer, source, unknown_key(owner, parent[0] if parent else None)
            )
        shown = mask_secrets(types_at([self.model], loc[:covered]), value)
        return ConfigProblem(owner, path, layer, source, self.scrub(message), shown)

    def _hint(self, loc: Loc) -> str:
        """What to do about a missing setting."""
        for item in self.inputs:
            if isinstance(item, EnvLayer):
                variable = (item.prefix + "__".join(str(part) for part in loc)).upper()
                table = "[host]" if self.owner == "host" else f"[plugins.{self.owner}]"
                return f"required; set it in {table} of a config file or with {variable}"
        return "required"


def unknown_key(owner: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return "unknown setting; remove it"
    known = ", ".join(sorted(model.model_fields)) or "none"
    return f"unknown setting; remove it or fix its spelling (known: {known})"


def field_keys(model: type[BaseModel]) -> set[str]:
    """The lower-cased names and aliases a model's fields accept."""
    keys = set()
    for name, info in model.model_fields.items():
        keys.add(name.lower())
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                keys.add(alias.lower())
    return keys
