"""Checking a plugin project folder before it is built or installed.

``acp-plugins validate PATH`` reads the project's ``pyproject.toml``, finds each
``acp.plugins`` entry point and its package's ``manifest.json``, and checks the
manifest, that its ``plugin_id`` is the entry point's name, that its version is
the project's, that its core range admits this host's core version, and that the
hooks its plugin class marks with ``@hookimpl`` exist (read from the source with
:mod:`ast`). Every problem is reported at once. Nothing of the plugin is imported
or run.
"""

from __future__ import annotations

import ast
import difflib
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acp_plugins.errors import FieldError, ManifestError
from acp_plugins.hookspecs import SPEC_MODULES
from acp_plugins.loading.manifest import MANIFEST_FILENAME, Manifest, read_manifest
from acp_plugins.loading.versions import VersionRangeError, parse_version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 by the nox matrix
    import tomli as tomllib

__all__ = ["UNNAMED", "ProjectCheck", "check_project"]

#: The plugin id of a check when the project names none that could be read.
UNNAMED = "?"


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


#: ``package.module:attribute`` (the attribute optional), as an entry point's value.
_OBJECT_REFERENCE = re.compile(
    r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*(?::\s*(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*))?$"
)
#: The largest pyproject.toml or plugin module read.
_MAX_FILE_BYTES = 1024 * 1024


def _hook_names() -> frozenset[str]:
    return frozenset(
        name
        for module in SPEC_MODULES
        for name, function in vars(module).items()
        if callable(function) and hasattr(function, "acp_spec")
    )


def _package_dir(root: Path, module: str) -> Path:
    package = module.partition(".")[0]
    for base in (root, root / "src"):
        if (base / package).is_dir():
            return base
    return root


def _read_text(path: Path) -> str:
    with path.open("rb") as file:
        data = file.read(_MAX_FILE_BYTES + 1)
    if len(data) > _MAX_FILE_BYTES:
        raise ValueError(f"it is over {_MAX_FILE_BYTES // 1024} KiB")
    return data.decode("utf-8")


def _marked_hooks(root: Path, module: str, attr: str | None) -> tuple[Path, list[str]] | None:
    """The names the entry point's object marks with ``@hookimpl``, read from its source."""
    base = _package_dir(root, module) / Path(*module.split("."))
    path = next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)
    if path is None:
        return None
    try:
        tree = ast.parse(_read_text(path), filename=str(path))
    except (OSError, ValueError, SyntaxError, RecursionError, MemoryError):
        return None  # loading will say what is wrong with the module itself
    scope: list[ast.stmt] = tree.body
    for name in (attr or "").split(".") if attr else []:
        found = next((n for n in scope if isinstance(n, ast.ClassDef) and n.name == name), None)
        if found is None:
            return path, []  # built some other way (an instance, a factory): nothing to read
        scope = found.body
    return path, [
        node.name
        for node in scope
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and any(_is_hookimpl(d) for d in node.decorator_list)
    ]


def _is_hookimpl(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return name == "hookimpl"


def _hook_problems(root: Path, module: str, attr: str | None) -> Iterator[FieldError]:
    found = _marked_hooks(root, module, attr)
    if found is None:
        yield FieldError(
            path="entry point",
            value=f"{module}:{attr}" if attr else module,
            problem=f"module {module!r} is not in the project (looked in {root} and "
            f"{root / 'src'})",
        )
        return
    path, names = found
    known = _hook_names()
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            yield FieldError(
                path=f"hooks.{name}",
                value=str(path),
                problem=f"'{name}' is marked @hookimpl but is no hook of acp-plugins{hint}",
            )


def _check_one(
    plugin_id: str, reference: object, root: Path, project_version: str | None, core_version: str
) -> ProjectCheck:
    where = f'[project.entry-points."acp.plugins"] {plugin_id}'
    match = _OBJECT_REFERENCE.match(reference) if isinstance(reference, str) else None
    if match is None:
        return ProjectCheck(
            plugin_id,
            where,
            f'{where} = {reference!r} is not an object reference; write "package.module:ClassName"',
        )
    module, attr = match["module"], match["attr"]
    path = _package_dir(root, module) / module.partition(".")[0] / MANIFEST_FILENAME
    problems: list[FieldError] = []
    manifest = None
    try:
        manifest = read_manifest(path)
    except ManifestError as error:
        problems.extend(error.errors or [FieldError("manifest", str(path), error.summary)])
    if manifest is not None:
        problems.extend(_consistency(plugin_id, manifest, project_version, core_version))
    problems.extend(_hook_problems(root, module, attr))
    if not problems:
        return ProjectCheck(plugin_id, str(path))
    count = len(problems)
    return ProjectCheck(
        plugin_id, str(path), f"{count} problem{'s' if count != 1 else ''}:", tuple(problems)
    )


def _consistency(
    plugin_id: str, manifest: Manifest, project_version: str | None, core_version: str
) -> Iterator[FieldError]:
    if manifest.plugin_id != plugin_id:
        yield FieldError(
            "plugin_id",
            manifest.plugin_id,
            f"differs from the entry point name {plugin_id!r}; they must be equal",
        )
    if project_version is not None:
        try:
            differs = parse_version(project_version) != parse_version(manifest.version)
        except VersionRangeError:
            differs = True
        if differs:
            yield FieldError(
                "version",
                manifest.version,
                f"differs from the project's version {project_version!r} in pyproject.toml; "
                "keep them equal",
            )
    core = manifest.core_range()
    if core is not None and not core.contains(core_version):
        yield FieldError(
            "dependencies.core",
            str(core),
            f"does not admit this host's core version {core_version}",
        )


def _project_table(pyproject: Path) -> dict[str, Any] | ProjectCheck:
    """The ``[project]`` table, or the check that says why there is none."""
    try:
        data = tomllib.loads(_read_text(pyproject))
    except FileNotFoundError:
        folder = pyproject.parent
        return ProjectCheck(
            UNNAMED, str(folder), f"no pyproject.toml in {folder}; is it a plugin project?"
        )
    except UnicodeDecodeError as error:
        return ProjectCheck(
            UNNAMED,
            str(pyproject),
            f"cannot read {pyproject}: not UTF-8 ({error.reason} at byte {error.start})",
        )
    except RecursionError:
        return ProjectCheck(
            UNNAMED, str(pyproject), f"cannot read {pyproject}: it is nested too deeply"
        )
    except (OSError, ValueError) as error:  # TOMLDecodeError is a ValueError
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        return ProjectCheck(UNNAMED, str(pyproject), f"cannot read {pyproject}: {reason}")
    project = data.get("project", {})
    if not isinstance(project, dict):
        return ProjectCheck(
            UNNAMED,
            str(pyproject),
            f"{pyproject}: 'project' must be a table ([project]), not {type(project).__name__}",
        )
    return project


def _shape_problem(project: dict[str, Any], pyproject: Path) -> str | None:
    entry_points = project.get("entry-points", {})
    if not isinstance(entry_points, dict):
        return f"{pyproject}: project.entry-points must be a table of groups"
    group = entry_points.get("acp.plugins")
    if group is not None and not isinstance(group, dict):
        return (
            f'{pyproject}: project.entry-points."acp.plugins" must be a table of '
            'plugin-id = "package.module:ClassName" lines'
        )
    version = project.get("version")
    if version is not None and not isinstance(version, str):
        return f'{pyproject}: project.version must be a string such as "1.0.0", not {version!r}'
    return None


def check_project(path: Path, *, core_version: str) -> list[ProjectCheck]:
    """Check the plugin project at ``path`` (a folder, or one ``manifest.json`` file)."""
    if path.is_file():
        try:
            manifest = read_manifest(path)
        except ManifestError as error:
            return [
                ProjectCheck(error.plugin_id or UNNAMED, str(path), error.summary, error.errors)
            ]
        problems = tuple(_consistency(manifest.plugin_id, manifest, None, core_version))
        summary = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}:" if problems else ""
        return [ProjectCheck(manifest.plugin_id, str(path), summary, problems)]
    pyproject = path / "pyproject.toml"
    project = _project_table(pyproject)
    if isinstance(project, ProjectCheck):
        return [project]
    shape = _shape_problem(project, pyproject)
    if shape is not None:
        return [ProjectCheck(UNNAMED, str(pyproject), shape)]
    entry_points = project.get("entry-points", {}).get("acp.plugins", {})
    if not entry_points:
        return [
            ProjectCheck(
                UNNAMED,
                str(pyproject),
                'no [project.entry-points."acp.plugins"] table; add one: '
                'my-plugin = "my_package.plugin:MyPlugin"',
            )
        ]
    version = project.get("version")
    return [
        _check_one(plugin_id, value, path, version, core_version)
        for plugin_id, value in sorted(entry_points.items())
    ]
