"""Checking a plugin project folder before it is built or installed.

``acp-plugins validate PATH`` reads the project's ``pyproject.toml``, finds each
``acp.plugins`` entry point and its package's ``manifest.json``, and checks the
manifest, that its ``plugin_id`` is the entry point's name, that its version is
the project's, and that its core range admits this host's core version.
Nothing of the plugin is imported.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acp_plugins.errors import FieldError, ManifestError
from acp_plugins.loading.manifest import MANIFEST_FILENAME, Manifest, read_manifest
from acp_plugins.loading.versions import VersionRangeError, parse_version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 by the nox matrix
    import tomli as tomllib

__all__ = ["ProjectCheck", "check_project"]


@dataclass(frozen=True, slots=True)
class ProjectCheck:
    """The verdict on one plugin of a project (or of an installed plugin)."""

    plugin_id: str
    source: str
    message: str = ""
    errors: Sequence[FieldError] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.message

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin_id": self.plugin_id,
            "source": self.source,
            "valid": self.ok,
            "message": self.message,
            "errors": [
                {"path": e.path, "value": e.value, "problem": e.problem} for e in self.errors
            ],
        }


def _manifest_in(root: Path, entry_point: str) -> Path:
    package = entry_point.partition(":")[0].strip().partition(".")[0]
    for base in (root, root / "src"):
        if (base / package).is_dir():
            return base / package / MANIFEST_FILENAME
    return root / package / MANIFEST_FILENAME


def _check_one(
    plugin_id: str, entry_point: str, root: Path, project_version: str | None, core_version: str
) -> ProjectCheck:
    path = _manifest_in(root, entry_point)
    try:
        manifest = read_manifest(path)
    except ManifestError as error:
        return ProjectCheck(plugin_id, str(path), error.summary, error.errors)
    problem = _consistency(plugin_id, manifest, project_version, core_version)
    return ProjectCheck(plugin_id, str(path), problem or "")


def _consistency(
    plugin_id: str, manifest: Manifest, project_version: str | None, core_version: str
) -> str | None:
    if manifest.plugin_id != plugin_id:
        return (
            f"manifest plugin_id {manifest.plugin_id!r} differs from the entry point name "
            f"{plugin_id!r}; they must be equal"
        )
    if project_version is not None:
        try:
            differs = parse_version(project_version) != parse_version(manifest.version)
        except VersionRangeError:
            differs = True
        if differs:
            return (
                f"manifest version {manifest.version!r} differs from the project's version "
                f"{project_version!r} in pyproject.toml; keep them equal"
            )
    core = manifest.core_range()
    if core is not None and not core.contains(core_version):
        return f"dependencies.core {core} does not admit this host's core version {core_version}"
    return None


def check_project(path: Path, *, core_version: str) -> list[ProjectCheck]:
    """Check the plugin project at ``path`` (a folder, or one ``manifest.json`` file)."""
    if path.is_file():
        try:
            manifest = read_manifest(path)
        except ManifestError as error:
            return [ProjectCheck(error.plugin_id or "?", str(path), error.summary, error.errors)]
        problem = _consistency(manifest.plugin_id, manifest, None, core_version)
        return [ProjectCheck(manifest.plugin_id, str(path), problem or "")]
    pyproject = path / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except FileNotFoundError:
        return [
            ProjectCheck("?", str(path), f"no pyproject.toml in {path}; is it a plugin project?")
        ]
    except (OSError, tomllib.TOMLDecodeError) as error:
        return [ProjectCheck("?", str(pyproject), f"cannot read {pyproject}: {error}")]
    entry_points = project.get("entry-points", {}).get("acp.plugins", {})
    if not entry_points:
        return [
            ProjectCheck(
                "?",
                str(pyproject),
                'no [project.entry-points."acp.plugins"] table; add one: '
                'my-plugin = "my_package.plugin:MyPlugin"',
            )
        ]
    version = project.get("version")
    return [
        _check_one(plugin_id, str(value), path, version, core_version)
        for plugin_id, value in sorted(entry_points.items())
    ]
