"""Real plugin distributions for tests: wheels written from inline source, projects
installed with pip into a folder a host searches.

A test host discovers only the folders it is given (``PluginHost(search_path=...)``),
so each test sees exactly the plugins it installed, the way a deployed host sees the
distributions pip put in its environment.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from acp_plugins.errors import AcpPluginsError

__all__ = [
    "build_plugin_wheel",
    "install_projects",
    "install_wheels",
    "project_manifests",
    "read_pyproject",
    "write_wheel",
]

#: Folders of a project that hold what was built or installed from it, not its source.
_NOT_SOURCE = frozenset({"build", "dist", ".nox", ".tox", ".venv", "venv", "node_modules", ".git"})

#: Zip entries carry this date, so that a wheel's bytes depend on its contents alone.
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def write_wheel(
    directory: Path,
    *,
    dist_name: str,
    package: str,
    version: str,
    entry_point: str,
    files: Mapping[str, bytes],
    requires: Sequence[str] = ("acp-plugins",),
) -> Path:
    """Write a pure-Python wheel of ``files`` with one ``acp.plugins`` entry point."""
    dist_info = f"{package}-{version}.dist-info"
    contents = dict(files)
    metadata = (
        f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n"
        "Summary: A plugin built by acp-plugins' testing kit.\nRequires-Python: >=3.10\n"
    )
    metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    contents[f"{dist_info}/METADATA"] = metadata.encode()
    contents[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: acp-plugins-testing\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    contents[f"{dist_info}/entry_points.txt"] = f"[acp.plugins]\n{entry_point}\n".encode()
    contents[f"{dist_info}/top_level.txt"] = f"{package}\n".encode()
    record_name = f"{dist_info}/RECORD"
    record = "".join(f"{name},{_record_hash(d)},{len(d)}\n" for name, d in contents.items())
    contents[record_name] = (record + f"{record_name},,\n").encode()
    path = directory / f"{package}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def build_plugin_wheel(
    directory: Path,
    *,
    manifest: Mapping[str, Any],
    source: str,
    class_name: str | None = None,
    files: Mapping[str, str] | None = None,
) -> Path:
    """A wheel of one plugin: ``source`` is its ``plugin.py``, ``manifest`` its manifest.

    The distribution is ``acp-<plugin_id>-test`` with the package ``acp_<id>_test``; the
    entry point names the plugin id and ``class_name`` (default: the only class in
    ``source`` whose name ends in ``Plugin``, else the last class defined).
    """
    plugin_id = str(manifest["plugin_id"])
    package = f"acp_{plugin_id.replace('-', '_')}_test"
    version = str(manifest.get("version", "1.0.0"))
    chosen = class_name or _plugin_class(source)
    contents = {
        f"{package}/__init__.py": b"",
        f"{package}/plugin.py": source.encode(),
        f"{package}/manifest.json": json.dumps(dict(manifest), indent=2).encode(),
    }
    for name, text in (files or {}).items():
        contents[f"{package}/{name}"] = text.encode()
    return write_wheel(
        directory,
        dist_name=package.replace("_", "-"),
        package=package,
        version=version,
        entry_point=f"{plugin_id} = {package}.plugin:{chosen}",
        files=contents,
    )


def _plugin_class(source: str) -> str:
    import ast

    classes = [node.name for node in ast.parse(source).body if isinstance(node, ast.ClassDef)]
    if not classes:
        raise AcpPluginsError("the plugin source defines no class; name one with class_name")
    named = [name for name in classes if name.endswith("Plugin")]
    return named[0] if len(named) == 1 else classes[-1]


def _pip(*arguments: str) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-deps", "--no-compile", *arguments]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AcpPluginsError(f"pip could not install the plugin:\n{done.stdout}{done.stderr}")


def install_wheels(wheels: Sequence[Path], target: Path) -> Path:
    """Install wheels (and nothing else) into ``target`` with pip; ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o755)  # isolated workers run as uids of their own: they must read it
    _pip("--target", str(target), "--upgrade", *(str(w) for w in wheels))
    return target


def install_projects(projects: Sequence[Path], target: Path) -> Path:
    """Install plugin projects (and nothing else) into ``target`` with pip; ``target``.

    Each project is copied first (pip builds in the source tree, and a stale ``build/``
    folder there could leak old files into the installation). Projects whose build
    backend is importable here are built without an isolated build environment
    (no index needed); the others let pip fetch their backend.
    """
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o755)
    sources = target.parent / (target.name + "-src")
    copies = []
    for project in projects:
        copy = sources / project.name
        if copy.exists():
            shutil.rmtree(copy)
        shutil.copytree(
            project, copy,
            ignore=shutil.ignore_patterns("build", "*.egg-info", ".nox", ".venv", "__pycache__"),
        )  # fmt: skip
        copies.append(copy)
    flags = ["--no-build-isolation"] if all(_backend_here(copy) for copy in copies) else []
    _pip(*flags, "--target", str(target), *(str(copy) for copy in copies))
    return target


def read_pyproject(project: Path) -> dict[str, Any] | None:
    """The project's ``pyproject.toml`` as a table (``None``: missing or unreadable)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        table: dict[str, Any] = tomllib.loads((project / "pyproject.toml").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return table


def _backend_here(project: Path) -> bool:
    """Whether the project's build backend can be imported by this interpreter."""
    table = read_pyproject(project)
    if table is None:
        return False
    backend = str(table.get("build-system", {}).get("build-backend", "setuptools.build_meta"))
    return importlib.util.find_spec(backend.split(".")[0]) is not None


def project_manifests(project: Path) -> list[Path]:
    """The ``manifest.json`` files of a project's own source, sorted.

    Folders of builds and environments inside the project (``build/``, ``.nox/``,
    ``.venv/``...) are not walked; the folders the project itself sits in do not matter.
    """
    found: list[Path] = []
    for directory, subdirectories, files in os.walk(project):
        subdirectories[:] = [
            d for d in subdirectories if d not in _NOT_SOURCE and not d.endswith(".egg-info")
        ]
        if "manifest.json" in files:
            found.append(Path(directory) / "manifest.json")
    return sorted(found)
