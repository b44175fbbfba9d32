"""The manifest: what a valid one holds, and what the host says about an invalid one.

Every invalid manifest is refused with a :class:`ManifestError` whose ``errors``
name each bad field by its path (``permissions.1``, ``dependencies.other``), the
value found there and what is wrong with it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acp_plugins import FieldError, Interface, Manifest, ManifestError, Permission
from acp_plugins.loading.manifest import (
    PLUGIN_ID_PATTERN,
    manifest_json_schema,
    parse_manifest,
    read_manifest,
)
from conftest import SAMPLES, fixture_plugin

MINIMAL: dict[str, Any] = {
    "manifest_version": "1.0",
    "plugin_id": "demo",
    "name": "Demo",
    "version": "1.0.0",
}

FULL: dict[str, Any] = {
    "manifest_version": "1.0",
    "plugin_id": "weather.forecast-v2",
    "name": "Weather Forecast",
    "version": "2.1.0rc1",
    "description": "Answers questions about tomorrow's weather.",
    "author": "Jane Doe <jane@example.org>",
    "license": "Apache-2.0",
    "homepage": "https://example.org/weather",
    "dependencies": {"core": "^2.0.0", "geo_lookup": ">=1.2,<2", "units": "1.x || ^3"},
    "permissions": ["read-messaging", "write-messaging", "read-config", "write-data"],
    "interfaces": ["IMessageHandler", "ICommandHandler"],
    "tags": ["weather", "forecast"],
    "min_python": "3.10",
    "max_python": "3.13",
    "contributes": {"message_types": ["weather"], "commands": ["forecast"]},
}

REMOVE = object()


def manifest_text(**changes: Any) -> str:
    """The minimal manifest with ``changes`` applied (``REMOVE`` deletes a field)."""
    data = dict(MINIMAL)
    for key, value in changes.items():
        if value is REMOVE:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data)


def only_error(**changes: Any) -> tuple[ManifestError, FieldError]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(manifest_text(**changes))
    assert len(caught.value.errors) == 1, caught.value.errors
    return caught.value, caught.value.errors[0]


# -- valid manifests -------------------------------------------------------------------


def test_a_manifest_with_every_field_of_the_spec_parses() -> None:
    manifest = parse_manifest(json.dumps(FULL))

    assert manifest.plugin_id == "weather.forecast-v2"
    assert manifest.name == "Weather Forecast"
    assert manifest.version == "2.1.0rc1"
    assert manifest.description == "Answers questions about tomorrow's weather."
    assert manifest.author == "Jane Doe <jane@example.org>"
    assert manifest.license == "Apache-2.0"
    assert str(manifest.homepage) == "https://example.org/weather"
    assert manifest.permissions == [
        Permission.READ_MESSAGING,
        Permission.WRITE_MESSAGING,
        Permission.READ_CONFIG,
        Permission.WRITE_DATA,
    ]
    assert manifest.interfaces == [Interface.MESSAGE_HANDLER, Interface.COMMAND_HANDLER]
    assert manifest.tags == ["weather", "forecast"]
    assert (manifest.min_python, manifest.max_python) == ("3.10", "3.13")
    core = manifest.core_range()
    assert core is not None and "2.5.0" in core and "3.0.0" not in core
    needs = manifest.plugin_dependencies()
    assert sorted(needs) == ["geo_lookup", "units"]  # 'core' is not a plugin
    assert "1.9" in needs["geo_lookup"] and "2.0" not in needs["geo_lookup"]
    assert "1.4.0" in needs["units"] and "3.2.0" in needs["units"] and "2.0.0" not in needs["units"]


def test_a_minimal_manifest_gets_the_documented_defaults() -> None:
    manifest = parse_manifest(json.dumps(MINIMAL))

    assert manifest.description == ""
    assert manifest.author == ""
    assert manifest.license == ""
    assert manifest.homepage is None
    assert manifest.dependencies == {}
    assert manifest.permissions == []
    assert manifest.interfaces == []
    assert manifest.tags == []
    assert manifest.min_python is None and manifest.max_python is None
    assert manifest.core_range() is None
    assert manifest.plugin_dependencies() == {}


def test_a_manifest_is_frozen() -> None:
    manifest = parse_manifest(json.dumps(MINIMAL))
    with pytest.raises(ValueError, match="frozen"):
        manifest.version = "2.0.0"


def test_surrounding_whitespace_is_stripped_before_checking() -> None:
    manifest = parse_manifest(
        manifest_text(plugin_id="  demo ", version=" 1.0.0\n", dependencies={" ghost\n": " ^1 "})
    )
    assert (manifest.plugin_id, manifest.version) == ("demo", "1.0.0")
    assert manifest.dependencies == {"ghost": "^1"}


def test_bytes_are_read_like_text() -> None:
    assert parse_manifest(manifest_text().encode("utf-16")).plugin_id == "demo"


@pytest.mark.parametrize(
    "path", sorted(SAMPLES.glob("*/*/manifest.json")), ids=lambda path: path.parent.name
)
def test_the_sample_plugins_manifests_are_valid(path: Path) -> None:
    manifest = read_manifest(path)
    assert manifest.plugin_id.replace("-", "_") in path.parent.name


# -- invalid manifests: one bad field each ---------------------------------------------

ENUM_PERMISSIONS = "not a known value; input should be 'read-messaging', 'write-messaging'"
ENUM_INTERFACES = "not a known value; input should be 'IMessageHandler', 'ICommandHandler'"
ID_PATTERN = "String should match pattern '^[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*$'"
PY_PATTERN = r"String should match pattern '^3\.\d{1,2}$'"
MISSING = "required field is missing"

INVALID = [
    # (changes, path, value, a fragment of the problem)
    ({"permissions": ["read-data", "read-everything"]}, "permissions.1", "read-everything",
     ENUM_PERMISSIONS),
    ({"permissions": ["read-data", "write-data", "read-data"]}, "permissions.2", "read-data",
     "read-data is listed twice"),
    ({"permissions": "read-data"}, "permissions", "read-data", "Input should be a valid list"),
    ({"permissions": ["Read-Data"]}, "permissions.0", "Read-Data", ENUM_PERMISSIONS),
    ({"interfaces": ["ITeleporter"]}, "interfaces.0", "ITeleporter", ENUM_INTERFACES),
    ({"interfaces": ["IDataProvider", "IDataProvider"]}, "interfaces.1", "IDataProvider",
     "IDataProvider is listed twice"),
    ({"dependencies": {"other": "^^1"}}, "dependencies.other", "^^1",
     "invalid version range '^^1': '^^1' has a misplaced or doubled operator"),
    ({"dependencies": {"other": 5}}, "dependencies.other", 5, "Input should be a valid string"),
    ({"dependencies": {"core": "two"}}, "dependencies.core", "two",
     "invalid version range 'two'"),
    ({"dependencies": {"Other": "1"}}, "dependencies.Other", "Other",
     "dependency name 'Other' is neither 'core' nor a valid plugin id"),
    ({"dependencies": {"{problem}": "1"}}, "dependencies.{problem}", "{problem}",
     "dependency name '{problem}' is neither 'core' nor a valid plugin id"),
    ({"dependencies": ["core"]}, "dependencies", ["core"], "Input should be a valid dictionary"),
    ({"version": "one.two"}, "version", "one.two", "'one.two' is not a valid version"),
    ({"version": "1.0.0-"}, "version", "1.0.0-", "'1.0.0-' is not a valid version"),
    ({"version": 1}, "version", 1, "Input should be a valid string"),
    ({"plugin_id": "Demo"}, "plugin_id", "Demo", ID_PATTERN),
    ({"plugin_id": "demo plugin"}, "plugin_id", "demo plugin", ID_PATTERN),
    ({"plugin_id": "9lives"}, "plugin_id", "9lives", ID_PATTERN),
    ({"plugin_id": "demo--two"}, "plugin_id", "demo--two", ID_PATTERN),
    ({"plugin_id": "demo-"}, "plugin_id", "demo-", ID_PATTERN),
    ({"plugin_id": "d" * 65}, "plugin_id", "d" * 65, "String should have at most 64 characters"),
    ({"homepage": "not a url"}, "homepage", "not a url", "Input should be a valid URL"),
    ({"homepage": "ftp://example.org/demo"}, "homepage", "ftp://example.org/demo",
     "URL scheme should be 'http' or 'https'"),
    ({"min_python": "three"}, "min_python", "three", PY_PATTERN),
    ({"min_python": "2.7"}, "min_python", "2.7", PY_PATTERN),
    ({"min_python": 3.10}, "min_python", 3.1, "Input should be a valid string"),
    ({"max_python": "3"}, "max_python", "3", PY_PATTERN),
    ({"max_python": "3.10.1"}, "max_python", "3.10.1", PY_PATTERN),
    ({"min_python": "3.12", "max_python": "3.10"}, "max_python", "3.10",
     "max_python 3.10 is older than min_python 3.12; no Python could load the plugin"),
    ({"manifest_version": "2.0"}, "manifest_version", "2.0", "Input should be '1.0'"),
    ({"name": ""}, "name", "", "String should have at least 1 character"),
    ({"name": "   "}, "name", "   ", "String should have at least 1 character"),
    ({"name": None}, "name", None, "Input should be a valid string"),
    ({"description": "x" * 2001}, "description", "x" * 2001,
     "String should have at most 2000 characters"),
    ({"tags": ["ok", ""]}, "tags.1", "", "String should have at least 1 character"),
    ({"colour": "blue"}, "colour", "blue",
     "unknown field (check its spelling against `acp-plugins schema`)"),
    ({"plugin_id": REMOVE}, "plugin_id", None, MISSING),
    ({"name": REMOVE}, "name", None, MISSING),
    ({"version": REMOVE}, "version", None, MISSING),
    ({"manifest_version": REMOVE}, "manifest_version", None, MISSING),
]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "path", "value", "problem"),
    INVALID,
    ids=[f"{case[1]}={str(case[2])[:20]}" for case in INVALID],
)
def test_an_invalid_manifest_names_the_bad_field_and_its_value(
    changes: dict[str, Any], path: str, value: object, problem: str
) -> None:
    error, field = only_error(**changes)

    assert field.path == path
    assert field.value == value
    assert problem in field.problem
    assert error.summary == "manifest.json is invalid (1 problem):"
    assert f"\n  - {path}: " in str(error)  # the message lists the field too


def test_the_plugin_id_is_kept_on_the_error_when_the_manifest_names_one() -> None:
    error, _ = only_error(version="one.two")
    assert error.plugin_id == "demo"
    error, _ = only_error(plugin_id=REMOVE)
    assert error.plugin_id is None
    error, _ = only_error(plugin_id=7)
    assert error.plugin_id is None


def test_every_bad_field_is_reported_at_once() -> None:
    path = fixture_plugin("acp-fx-rejected") / "acp_fx_bad_manifest" / "manifest.json"

    with pytest.raises(ManifestError) as caught:
        read_manifest(path)

    error = caught.value
    assert error.summary == f"{path} is invalid (6 problems):"
    assert error.source == str(path)
    assert error.plugin_id == "bad-manifest"
    assert {(field.path, field.value) for field in error.errors} == {
        ("version", "one.two"),
        ("permissions.1", "read-everything"),
        ("interfaces.1", "ITeleporter"),
        ("homepage", "not a url"),
        ("min_python", "three"),
        ("colour", "blue"),
    }


# -- not a manifest at all -----------------------------------------------------------

NOT_JSON = [
    ('{"manifest_version": "1.0", "plugin_id": ', "is not valid JSON: Expecting value"),
    ("", "is not valid JSON: Expecting value: line 1 column 1"),
    ("{'plugin_id': 'demo'}", "is not valid JSON: Expecting property name enclosed in double"),
    (b"\xff\xfe\x00", "is not valid JSON: 'utf-16-le' codec can't decode"),
    (b"\x80abc", "is not valid JSON: 'utf-8' codec can't decode byte 0x80"),
    ("[" * 30_000 + "]" * 30_000, "is not valid JSON: it is nested too deeply"),
    ('{"a": ' * 10_000, "is not valid JSON: it is nested too deeply"),
]

NOT_AN_OBJECT = [
    ("[]", "an array"),
    ('[{"plugin_id": "demo"}]', "an array"),
    ('"demo"', "a string"),
    ("42", "a number"),
    ("true", "a boolean"),
    ("null", "null"),
]


@pytest.mark.parametrize(("text", "problem"), NOT_JSON, ids=lambda v: repr(v)[:24])
def test_text_that_is_not_json_is_refused(text: str | bytes, problem: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source="demo/manifest.json")

    assert str(caught.value).startswith("demo/manifest.json ")
    assert problem in str(caught.value)
    assert caught.value.errors == ()
    assert caught.value.source == "demo/manifest.json"


@pytest.mark.parametrize(("text", "kind"), NOT_AN_OBJECT)
def test_json_that_is_not_an_object_is_refused(text: str, kind: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text)

    assert str(caught.value) == f"manifest.json must hold a JSON object, not {kind}"
    assert caught.value.errors == ()


def test_a_missing_manifest_file_says_where_it_was_looked_for(tmp_path: Path) -> None:
    path = tmp_path / "demo_plugin" / "manifest.json"

    with pytest.raises(ManifestError) as caught:
        read_manifest(path)

    assert str(caught.value) == (
        f"no manifest.json at {path}; a plugin ships it inside its package "
        "(add it to the package data of the distribution)"
    )
    assert caught.value.source == str(path)


def test_an_unreadable_manifest_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"^cannot read .*: Is a directory$"):
        read_manifest(tmp_path)


def test_read_manifest_names_the_file_in_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(manifest_text(version="one.two"))

    with pytest.raises(ManifestError) as caught:
        read_manifest(path)

    assert caught.value.summary == f"{path} is invalid (1 problem):"


# -- the JSON Schema -------------------------------------------------------------------


def test_the_schema_is_a_draft_2020_12_object_schema() -> None:
    schema = manifest_json_schema()

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["manifest_version", "plugin_id", "name", "version"]
    assert set(schema["properties"]) == set(FULL)
    json.dumps(schema)  # serializable as it is printed


def test_the_schema_lists_every_permission_and_interface() -> None:
    schema = manifest_json_schema()
    properties, defs = schema["properties"], schema["$defs"]

    assert properties["permissions"]["items"] == {"$ref": "#/$defs/Permission"}
    assert defs["Permission"]["enum"] == [permission.value for permission in Permission]
    assert properties["interfaces"]["items"] == {"$ref": "#/$defs/Interface"}
    assert defs["Interface"]["enum"] == [interface.value for interface in Interface]
    # the model refuses repeats, so the schema must too
    assert properties["permissions"]["uniqueItems"] is True
    assert properties["interfaces"]["uniqueItems"] is True


def test_the_schema_constrains_ids_versions_and_dependency_names() -> None:
    properties = manifest_json_schema()["properties"]

    assert properties["manifest_version"]["const"] == "1.0"
    assert properties["plugin_id"]["pattern"] == PLUGIN_ID_PATTERN
    assert properties["plugin_id"]["maxLength"] == 64
    assert properties["dependencies"]["propertyNames"] == {"pattern": PLUGIN_ID_PATTERN}
    assert properties["dependencies"]["additionalProperties"]["type"] == "string"
    python = properties["min_python"]["anyOf"][0]
    assert python["pattern"] == r"^3\.\d{1,2}$"
    assert properties["homepage"]["anyOf"][0]["format"] == "uri"


def _schema_allows(schema: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """A small check of a manifest against the schema: required fields, types, enums, patterns.

    Not a JSON Schema validator (that is not a dependency); enough to show the
    schema and the model agree on what a valid manifest is.
    """
    problems = [f"missing {name}" for name in schema["required"] if name not in data]
    defs = schema["$defs"]
    for key, value in data.items():
        spec = schema["properties"].get(key)
        if spec is None:
            problems.append(f"unknown {key}")
            continue
        spec = next((s for s in spec.get("anyOf", [spec]) if s.get("type") != "null"), spec)
        if "pattern" in spec and not re.search(spec["pattern"], value):
            problems.append(f"{key} does not match")
        if "const" in spec and value != spec["const"]:
            problems.append(f"{key} is not {spec['const']}")
        if spec.get("type") == "array" and "$ref" in spec["items"]:
            allowed = defs[spec["items"]["$ref"].rsplit("/", 1)[1]]["enum"]
            problems += [f"{key}: {item} unknown" for item in value if item not in allowed]
        if spec.get("type") == "object":
            names = spec["propertyNames"]["pattern"]
            problems += [f"{key}: bad name {name}" for name in value if not re.search(names, name)]
    return problems


@pytest.mark.parametrize(
    "path", sorted(SAMPLES.glob("*/*/manifest.json")), ids=lambda path: path.parent.name
)
def test_the_sample_manifests_satisfy_the_schema(path: Path) -> None:
    assert _schema_allows(manifest_json_schema(), json.loads(path.read_text())) == []


def test_the_schema_refuses_what_the_model_refuses() -> None:
    schema = manifest_json_schema()
    bad = json.loads((fixture_plugin("acp-fx-rejected") / "acp_fx_bad_manifest" / "manifest.json")
                     .read_text())  # fmt: skip

    assert _schema_allows(schema, bad) == [
        "permissions: read-everything unknown",
        "interfaces: ITeleporter unknown",
        "min_python does not match",
        "unknown colour",
    ]
    assert _schema_allows(schema, {**MINIMAL, "dependencies": {"Other": "1"}}) == [
        "dependencies: bad name Other"
    ]
    assert _schema_allows(schema, {**MINIMAL, "plugin_id": "9lives"}) == [
        "plugin_id does not match"
    ]


# -- properties ------------------------------------------------------------------------

ids = st.from_regex(r"\A[a-z][a-z0-9]{0,8}(?:[-_.][a-z0-9]{1,5}){0,3}\Z")


@given(plugin_id=ids)
def test_every_id_matching_the_pattern_is_accepted(plugin_id: str) -> None:
    assert parse_manifest(manifest_text(plugin_id=plugin_id)).plugin_id == plugin_id


#: What pydantic strips from a string: Unicode's White_Space (Python's str.strip() also
#: takes the separators \x1c-\x1f, which pydantic keeps).
WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
WHITE_SPACE += "\u2028\u2029\u202f\u205f\u3000"


@given(text=st.text(max_size=30))
def test_an_id_is_accepted_exactly_when_it_matches_the_documented_pattern(text: str) -> None:
    expected = re.fullmatch(PLUGIN_ID_PATTERN, text.strip(WHITE_SPACE)) is not None
    try:
        parse_manifest(manifest_text(plugin_id=text))
    except ManifestError as error:
        assert not expected, error
        assert [field.path for field in error.errors] == ["plugin_id"]
    else:
        assert expected


@given(data=st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=10,
))  # fmt: skip
def test_any_json_value_gives_a_manifest_or_a_manifest_error(data: object) -> None:
    try:
        parse_manifest(json.dumps(data))
    except ManifestError as error:
        assert all(isinstance(field, FieldError) for field in error.errors)


def test_manifest_is_the_model_that_parse_manifest_returns() -> None:
    assert isinstance(parse_manifest(json.dumps(FULL)), Manifest)


# --- size: bounded time and memory whatever the input ---------------------------------------


def test_an_oversized_manifest_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    data = json.dumps({**MINIMAL, "tags": ["x" * 40] * 1_500_000})  # ~60 MB
    with pytest.raises(ManifestError, match=r"is [\d,]+ bytes; a manifest is at most 65,536"):
        parse_manifest(data)
    path = tmp_path / "manifest.json"
    path.write_text(data)
    with pytest.raises(ManifestError, match=r"is [\d,]+ bytes") as caught:
        read_manifest(path)
    assert str(path) in str(caught.value)


def test_many_unknown_permissions_report_a_count_and_the_first_few() -> None:
    names = [f"perm-{n}" for n in range(5_000)]  # within the size limit
    with pytest.raises(ManifestError) as caught:
        parse_manifest(json.dumps({**MINIMAL, "permissions": names}))
    error = caught.value
    assert re.search(r"\(1 problem\):", error.summary)  # the list is too long, said once
    assert "at most 32" in str(error)
    few = [f"perm-{n}" for n in range(30)]
    with pytest.raises(ManifestError) as caught:
        parse_manifest(json.dumps({**MINIMAL, "permissions": few, "tags": [""] * 10}))
    assert "40 problems; the first 20 shown" in caught.value.summary
    assert len(caught.value.errors) == 20


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_that_are_not_json_are_refused(constant: str) -> None:
    text = json.dumps(MINIMAL)[:-1] + f', "description": {constant}}}'
    with pytest.raises(ManifestError, match=f"not valid JSON: {constant} is not a JSON value"):
        parse_manifest(text)


def test_a_huge_number_in_a_range_is_a_field_error() -> None:
    huge = "1" + "0" * 5000
    for deps in ({"core": f">={huge}"}, {"other": f"^{huge}"}):
        with pytest.raises(ManifestError) as caught:
            parse_manifest(json.dumps({**MINIMAL, "dependencies": deps}))
        assert "too long" in caught.value.errors[0].problem
    with pytest.raises(ManifestError, match="too long"):
        parse_manifest(json.dumps({**MINIMAL, "version": huge}))


_NAMES = st.text(alphabet="abcXYZ0-_. ", max_size=6)


@given(
    kinds=st.dictionaries(
        st.sampled_from(["message_types", "commands", "data_sources", "events"]),
        st.lists(_NAMES, max_size=4),
        max_size=4,
    ),
    interfaces=st.lists(
        st.sampled_from(["IMessageHandler", "ICommandHandler", "IDataProvider"]),
        unique=True,
    ),
)
def test_a_contributes_block_is_kept_exactly_or_refused_with_its_field(
    kinds: dict[str, list[str]], interfaces: list[str]
) -> None:
    """Whatever the block holds, it is either kept as written or refused naming the field."""
    text = json.dumps({**MINIMAL, "interfaces": interfaces, "contributes": kinds})
    try:
        manifest = parse_manifest(text)
    except ManifestError as error:
        assert all(problem.path.startswith("contributes") for problem in error.errors)
        return
    assert manifest.contributes is not None
    for kind in ("message_types", "commands", "data_sources"):
        declared = [name.strip() for name in kinds.get(kind, [])]
        assert getattr(manifest.contributes, kind) == declared
    assert "events" not in kinds  # unknown kinds are refused
    needs = {"message_types": "IMessageHandler", "commands": "ICommandHandler"}
    needs["data_sources"] = "IDataProvider"
    assert all(needs[kind] in interfaces for kind, names in kinds.items() if names)
