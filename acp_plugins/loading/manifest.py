"""The plugin manifest: its schema, and reading it without importing the plugin.

Every plugin ships a ``manifest.json`` inside its top-level package. The host
reads it from the installed files and validates it with :class:`Manifest`
before a single line of the plugin's code runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from acp_plugins.errors import FieldError, ManifestError
from acp_plugins.loading.interfaces import Interface
from acp_plugins.loading.permissions import Permission
from acp_plugins.loading.versions import VersionRange, VersionRangeError, parse_range, parse_version

__all__ = [
    "CORE_DEPENDENCY",
    "MANIFEST_FILENAME",
    "MAX_MANIFEST_BYTES",
    "Contributions",
    "Manifest",
    "manifest_json_schema",
    "parse_manifest",
    "read_manifest",
]

MANIFEST_FILENAME = "manifest.json"
#: The largest manifest read at all; real ones are a few hundred bytes.
MAX_MANIFEST_BYTES = 64 * 1024
#: The most field errors one manifest error lists (the count of the rest is given).
MAX_REPORTED_ERRORS = 20
#: The key of ``dependencies`` that names the host's plugin API (core) version.
CORE_DEPENDENCY = "core"

PLUGIN_ID_PATTERN = r"^[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*$"
_PLUGIN_ID = re.compile(PLUGIN_ID_PATTERN)
_PYTHON_VERSION = r"^3\.\d{1,2}$"


def _minor(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _check_version(value: str) -> str:
    try:
        parse_version(value)
    except VersionRangeError as error:
        raise ValueError(str(error)) from None
    return value


def _check_range(value: str) -> str:
    try:
        parse_range(value)
    except VersionRangeError as error:
        raise ValueError(str(error)) from None
    return value


def _item_error(key: str | int, value: object, problem: str) -> ValidationError:
    """An error located at one key or index of the collection being validated.

    Pydantic prefixes the location with the field's, so the manifest error names
    ``dependencies.<name>`` or ``permissions.<index>`` rather than the whole field.
    """
    detail = InitErrorDetails(
        type=PydanticCustomError("value_error", "{problem}", {"problem": problem}),
        loc=(key,),
        input=value,
    )
    return ValidationError.from_exception_data("Manifest", [detail])


def _check_dependency_names(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if name != CORE_DEPENDENCY and not _PLUGIN_ID.match(name):
            raise _item_error(
                name,
                name,
                f"dependency name {name!r} is neither 'core' nor a valid plugin id "
                "(lowercase letters, digits, and '-', '_' or '.' between them)",
            )
    return value


def _unique(value: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    for index, item in enumerate(value):
        if item in seen:
            raise _item_error(index, str(item), f"{item!s} is listed twice")
        seen.add(item)
    return value


VersionText = Annotated[
    str,
    AfterValidator(_check_version),
    Field(description="A PEP 440 / semantic version, e.g. '1.2.0'.", examples=["1.0.0"]),
]
RangeText = Annotated[
    str,
    AfterValidator(_check_range),
    Field(description="An npm-style range ('^1.0.0', '1.x || >=2.1 <3') or PEP 440 specifiers."),
]
PythonVersion = Annotated[str, Field(pattern=_PYTHON_VERSION, examples=["3.10"])]


CommandName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$", max_length=64)]
SourceId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]*$", max_length=64)]
MessageType = Annotated[str, Field(min_length=1, max_length=64)]


class Contributions(BaseModel):
    """What a plugin offers, declared ahead: the host starts it on first use of one of them.

    The same names the plugin's hooks return at activation (a difference is that
    plugin's failure to activate): message types (``"*"`` for every type), command
    names and data source ids.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    message_types: Annotated[list[MessageType], AfterValidator(_unique)] = Field(
        default_factory=list, max_length=64, json_schema_extra={"uniqueItems": True}
    )
    commands: Annotated[list[CommandName], AfterValidator(_unique)] = Field(
        default_factory=list, max_length=256, json_schema_extra={"uniqueItems": True}
    )
    data_sources: Annotated[list[SourceId], AfterValidator(_unique)] = Field(
        default_factory=list, max_length=64, json_schema_extra={"uniqueItems": True}
    )


#: The interface each kind of contribution belongs to.
_CONTRIBUTION_INTERFACES = {
    "message_types": Interface.MESSAGE_HANDLER,
    "commands": Interface.COMMAND_HANDLER,
    "data_sources": Interface.DATA_PROVIDER,
}


class Manifest(BaseModel):
    """A plugin's ``manifest.json``: identity, version, dependencies, permissions, interfaces."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
        title="acp-plugins manifest",
    )

    manifest_version: Literal["1.0"] = Field(description="Version of this manifest format.")
    plugin_id: str = Field(
        pattern=PLUGIN_ID_PATTERN,
        max_length=64,
        description="Unique id; also the name of the plugin's `acp.plugins` entry point.",
    )
    name: str = Field(min_length=1, max_length=100, description="Display name.")
    version: VersionText
    description: str = Field(default="", max_length=2000)
    author: str = Field(default="", max_length=200)
    license: str = Field(default="", max_length=100, description="SPDX identifier, e.g. 'MIT'.")
    homepage: HttpUrl | None = None
    dependencies: Annotated[dict[str, RangeText], AfterValidator(_check_dependency_names)] = Field(
        default_factory=dict,
        max_length=100,
        description="'core' -> range of the host plugin API; other keys are plugin ids.",
        # 'core' matches the plugin id pattern too, so one pattern covers every key
        json_schema_extra={"propertyNames": {"pattern": PLUGIN_ID_PATTERN}},
    )
    permissions: Annotated[list[Permission], AfterValidator(_unique)] = Field(
        default_factory=list, max_length=32, json_schema_extra={"uniqueItems": True}
    )
    interfaces: Annotated[list[Interface], AfterValidator(_unique)] = Field(
        default_factory=list, max_length=16, json_schema_extra={"uniqueItems": True}
    )
    tags: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(
        default_factory=list, max_length=20
    )
    min_python: PythonVersion | None = Field(
        default=None, description="Oldest Python, e.g. '3.10'."
    )
    max_python: PythonVersion | None = Field(
        default=None, description="Newest Python (every micro release of it), e.g. '3.13'."
    )

    contributes: Contributions | None = Field(
        default=None,
        description=(
            "What the plugin offers (message types, commands, data sources), declared so the "
            "host starts it on first use; without it the plugin is started with the host."
        ),
    )

    @field_validator("contributes")
    @classmethod
    def _contributions_of_declared_interfaces(
        cls, value: Contributions | None, info: ValidationInfo
    ) -> Contributions | None:
        if "interfaces" not in info.data:
            return value  # the interfaces' own error says what is wrong
        interfaces = info.data["interfaces"]
        for kind, interface in _CONTRIBUTION_INTERFACES.items():
            if value is not None and getattr(value, kind) and interface not in interfaces:
                raise ValueError(
                    f"contributes {kind} but interfaces does not list {interface.value}; "
                    f"add {interface.value} to interfaces or remove contributes.{kind}"
                )
        return value

    @field_validator("max_python")
    @classmethod
    def _not_older_than_min_python(cls, value: str | None, info: ValidationInfo) -> str | None:
        low = info.data.get("min_python")
        if value and low and _minor(low) > _minor(value):
            raise ValueError(
                f"max_python {value} is older than min_python {low}; "
                "no Python could load the plugin"
            )
        return value

    def core_range(self) -> VersionRange | None:
        """The range of core (plugin API) versions this plugin works with, if it says."""
        text = self.dependencies.get(CORE_DEPENDENCY)
        return None if text is None else parse_range(text)

    def plugin_dependencies(self) -> dict[str, VersionRange]:
        """Plugin id -> the range of its versions this plugin needs."""
        return {
            name: parse_range(text)
            for name, text in self.dependencies.items()
            if name != CORE_DEPENDENCY
        }


def _field_errors(error: ValidationError) -> list[FieldError]:
    found = []
    for item in error.errors(include_url=False)[:MAX_REPORTED_ERRORS]:
        path = ".".join(str(part) for part in item["loc"])
        problem = item["msg"]
        if item["type"] == "enum":
            problem = f"not a known value; {item['msg'][0].lower()}{item['msg'][1:]}"
        elif item["type"] == "extra_forbidden":
            problem = "unknown field (check its spelling against `acp-plugins schema`)"
        elif item["type"] == "missing":
            problem = "required field is missing"
        value = item.get("input") if item["type"] != "missing" else None
        problem = problem.removeprefix("Value error, ")
        found.append(FieldError(path=path, value=value, problem=problem))
    return found


def _json_kind(value: object) -> str:
    """What JSON calls the type of a decoded value ('an array', 'a string', ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string" if isinstance(value, str) else "an array"


def _not_json(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not a JSON value")


def _too_big(size: int, source: str) -> ManifestError:
    return ManifestError(
        f"{source} is {size:,} bytes; a manifest is at most {MAX_MANIFEST_BYTES:,} bytes "
        "(it holds identity, version, dependencies and permissions, not data)",
        source=source,
    )


def parse_manifest(data: str | bytes, *, source: str = MANIFEST_FILENAME) -> Manifest:
    """Validate manifest JSON text; raise :class:`ManifestError` naming each bad field.

    A manifest is at most :data:`MAX_MANIFEST_BYTES` long; the error lists at most
    ``MAX_REPORTED_ERRORS`` problems and says how many there were.
    """
    size = len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    if size > MAX_MANIFEST_BYTES:
        raise _too_big(size, source)
    try:
        return Manifest.model_validate_json(data)  # the fast path, for valid manifests
    except ValidationError:
        pass  # parse again below, to say precisely what is wrong
    try:
        raw = json.loads(data, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError) as error:
        raise ManifestError(f"{source} is not valid JSON: {error}", source=source) from None
    except RecursionError:
        # json raises this, not a ValueError, for arrays or objects nested too deep
        raise ManifestError(
            f"{source} is not valid JSON: it is nested too deeply", source=source
        ) from None
    if not isinstance(raw, dict):
        raise ManifestError(
            f"{source} must hold a JSON object, not {_json_kind(raw)}", source=source
        )
    plugin_id = raw.get("plugin_id") if isinstance(raw.get("plugin_id"), str) else None
    try:
        return Manifest.model_validate(raw)
    except ValidationError as error:
        errors = _field_errors(error)
        count = error.error_count()
        shown = f"; the first {len(errors)} shown" if count > len(errors) else ""
        raise ManifestError(
            f"{source} is invalid ({count:,} problem{'s' if count != 1 else ''}{shown}):",
            plugin_id=plugin_id,
            errors=errors,
            source=source,
        ) from None


def read_manifest(path: Path) -> Manifest:
    """Read and validate the manifest file at ``path``."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_MANIFEST_BYTES + 1)
            if len(data) > MAX_MANIFEST_BYTES:
                raise _too_big(path.stat().st_size, str(path))
    except FileNotFoundError:
        raise ManifestError(
            f"no {MANIFEST_FILENAME} at {path}; a plugin ships it inside its package "
            "(add it to the package data of the distribution)",
            source=str(path),
        ) from None
    except OSError as error:
        raise ManifestError(f"cannot read {path}: {error.strerror}", source=str(path)) from None
    return parse_manifest(data, source=str(path))


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``manifest.json`` (what ``acp-plugins schema`` prints)."""
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
