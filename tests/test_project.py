"""Checking a plugin project folder before it is built (``acp-plugins validate PATH``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from acp_plugins import CORE_VERSION
from acp_plugins.loading.project import check_project
from conftest import sample


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A copy of the echo sample to spoil."""
    copy = tmp_path / "acp-echo"
    shutil.copytree(sample("acp-echo"), copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    return copy


def _manifest(project: Path) -> Path:
    return project / "acp_echo" / "manifest.json"


def _edit_manifest(project: Path, **fields: object) -> None:
    data = json.loads(_manifest(project).read_text())
    data.update(fields)
    _manifest(project).write_text(json.dumps(data))


def _only(project: Path) -> tuple[str, str]:
    """The plugin id and the one problem found, as `validate` prints it."""
    [check] = check_project(project, core_version=CORE_VERSION)
    if check.errors:
        assert check.message == f"{len(check.errors)} problem{'s' * (len(check.errors) > 1)}:"
        return check.plugin_id, "\n".join(str(error) for error in check.errors)
    return check.plugin_id, check.message


def test_a_good_project_passes(project: Path) -> None:
    [check] = check_project(project, core_version=CORE_VERSION)
    assert check.ok
    assert check.source == str(_manifest(project))


def test_a_version_other_than_the_project_is_refused(project: Path) -> None:
    _edit_manifest(project, version="1.0.1")
    assert _only(project) == (
        "echo",
        "version: differs from the project's version '1.0.0' in pyproject.toml; "
        "keep them equal (got '1.0.1')",
    )


def test_a_core_range_this_host_does_not_offer_is_refused(project: Path) -> None:
    _edit_manifest(project, dependencies={"core": "^3.0.0"})
    assert _only(project) == (
        "echo",
        "dependencies.core: does not admit this host's core version 2.0.0 (got '^3.0.0')",
    )


def test_a_manifest_naming_another_plugin_is_refused(project: Path) -> None:
    _edit_manifest(project, plugin_id="not-echo")
    assert (
        "plugin_id: differs from the entry point name 'echo'; they must be equal (got 'not-echo')"
        in (_only(project)[1])
    )


def test_a_src_layout_is_found(project: Path) -> None:
    (project / "src").mkdir()
    shutil.move(project / "acp_echo", project / "src" / "acp_echo")
    [check] = check_project(project, core_version=CORE_VERSION)
    assert check.ok
    assert check.source == str(project / "src" / "acp_echo" / "manifest.json")


def test_a_missing_manifest_says_where_it_was_looked_for(project: Path) -> None:
    _manifest(project).unlink()
    plugin_id, message = _only(project)
    assert plugin_id == "echo"
    assert f"no manifest.json at {_manifest(project)}" in message


@pytest.mark.parametrize(
    ("pyproject", "fragment"),
    [
        (None, "no pyproject.toml in"),
        ("[project\nname=", "cannot read"),
        ('[project]\nname = "x"\n', 'no [project.entry-points."acp.plugins"] table'),
    ],
)
def test_a_project_that_is_not_a_plugin_project_is_explained(
    project: Path, pyproject: str | None, fragment: str
) -> None:
    if pyproject is None:
        (project / "pyproject.toml").unlink()
    else:
        (project / "pyproject.toml").write_text(pyproject)
    plugin_id, message = _only(project)
    assert plugin_id == "?"
    assert fragment in message


def test_a_manifest_file_alone_can_be_checked(project: Path) -> None:
    [check] = check_project(_manifest(project), core_version=CORE_VERSION)
    assert (check.plugin_id, check.ok) == ("echo", True)
    _manifest(project).write_text('{"manifest_version": "1.0", "plugin_id": "echo"}')
    [check] = check_project(_manifest(project), core_version=CORE_VERSION)
    assert not check.ok
    assert {error.path for error in check.errors} == {"name", "version"}


def test_every_problem_is_reported_at_once(project: Path) -> None:
    _edit_manifest(project, plugin_id="not-echo", version="9.0.0", dependencies={"core": "^3"})
    [check] = check_project(project, core_version=CORE_VERSION)
    assert check.message == "3 problems:"
    assert [e.path for e in check.errors] == ["plugin_id", "version", "dependencies.core"]


def test_a_hook_name_typo_is_found_without_importing_the_plugin(project: Path) -> None:
    module = project / "acp_echo" / "plugin.py"
    source = module.read_text().replace("def handle_message(", "def handle_mesage(")
    # a module that would fail if it were imported: validate must not run it
    module.write_text("raise SystemExit('imported!')\n" + source)
    plugin_id, message = _only(project)
    assert plugin_id == "echo"
    assert "hooks.handle_mesage: 'handle_mesage' is marked @hookimpl but is no hook of " in message
    assert "did you mean 'handle_message'?" in message


def test_manifest_problems_and_hook_problems_come_together(project: Path) -> None:
    module = project / "acp_echo" / "plugin.py"
    module.write_text(module.read_text().replace("def can_handle(", "def can_handel("))
    _edit_manifest(project, permissions=["read-messaging", "fly"])
    [check] = check_project(project, core_version=CORE_VERSION)
    assert [e.path for e in check.errors] == ["permissions.1", "hooks.can_handel"]


DEEP = "a = " + "[" * 5000 + "]" * 5000 + "\n"


@pytest.mark.parametrize(
    ("pyproject", "fragment"),
    [
        ('[project]\nversion = 1.0\n[project.entry-points."acp.plugins"]\n'
         'echo = "acp_echo.plugin:EchoPlugin"\n',
         'project.version must be a string such as "1.0.0", not 1.0'),
        ('[project]\nentry-points = {"acp.plugins" = "x"}\n',
         'project.entry-points."acp.plugins" must be a table'),
        ("project = []\n", "'project' must be a table ([project]), not list"),
        ('[project]\nentry-points = 3\n', "project.entry-points must be a table"),
        (DEEP, "nested too deeply"),
        (b'[project]\nname = "\xff"\n', "not UTF-8 (invalid start byte at byte 18)"),
    ],
)  # fmt: skip
def test_a_pyproject_of_the_wrong_shape_is_one_clear_line(
    project: Path, pyproject: str | bytes, fragment: str
) -> None:
    target = project / "pyproject.toml"
    target.write_bytes(pyproject if isinstance(pyproject, bytes) else pyproject.encode())
    [check] = check_project(project, core_version=CORE_VERSION)
    assert not check.ok
    assert fragment in check.message
    assert "\n" not in check.message


@pytest.mark.parametrize("value", ["/etc:passwd", "../x:Y", "acp_echo.plugin:", "a b:C", 5])
def test_an_entry_point_value_is_an_object_reference_not_a_path(
    project: Path, value: object
) -> None:
    target = project / "pyproject.toml"
    text = target.read_text()
    line = next(x for x in text.splitlines() if x.startswith("echo = "))
    target.write_text(text.replace(line, f"echo = {json.dumps(value)}"))
    [check] = check_project(project, core_version=CORE_VERSION)
    assert check.message.endswith('is not an object reference; write "package.module:ClassName"')
    assert "/etc" not in check.source
