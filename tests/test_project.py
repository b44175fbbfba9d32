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
    [check] = check_project(project, core_version=CORE_VERSION)
    return check.plugin_id, check.message


def test_a_good_project_passes(project: Path) -> None:
    [check] = check_project(project, core_version=CORE_VERSION)
    assert check.ok
    assert check.source == str(_manifest(project))


def test_a_version_other_than_the_project_is_refused(project: Path) -> None:
    _edit_manifest(project, version="1.0.1")
    assert _only(project) == (
        "echo",
        "manifest version '1.0.1' differs from the project's version '1.0.0' in pyproject.toml; "
        "keep them equal",
    )


def test_a_core_range_this_host_does_not_offer_is_refused(project: Path) -> None:
    _edit_manifest(project, dependencies={"core": "^3.0.0"})
    assert _only(project) == (
        "echo",
        "dependencies.core ^3.0.0 does not admit this host's core version 2.0.0",
    )


def test_a_manifest_naming_another_plugin_is_refused(project: Path) -> None:
    _edit_manifest(project, plugin_id="not-echo")
    assert (
        "manifest plugin_id 'not-echo' differs from the entry point name 'echo'"
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
    assert message.startswith(f"no manifest.json at {_manifest(project)}")


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
