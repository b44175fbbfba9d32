"""The layering contract: lower layers never import higher ones (checked by import-linter).

The contract lives in pyproject.toml and runs in ``nox -s lint``. These tests
run it on a copy of the package, once as it is and once with an import that
points upwards, so a contract that could never fail would be caught here.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _copy_project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "acp_plugins", tmp_path / "acp_plugins")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=project,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


def test_the_package_keeps_its_layers(tmp_path: Path) -> None:
    result = _lint(_copy_project(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Layers import downwards only KEPT" in result.stdout


def test_an_import_from_loading_up_into_runtime_fails_lint_and_is_named(tmp_path: Path) -> None:
    project = _copy_project(tmp_path)
    with (project / "acp_plugins" / "loading" / "resolution.py").open("a") as module:
        module.write("\nfrom acp_plugins.runtime.record import PluginRecord  # noqa: E402\n")
    result = _lint(project)
    assert result.returncode != 0
    assert "acp_plugins.loading is not allowed to import acp_plugins.runtime" in result.stdout
    assert "acp_plugins.loading.resolution -> acp_plugins.runtime.record" in result.stdout


def test_no_layer_imports_the_package_top_level() -> None:
    """The public face (``__init__``) sits above every layer but the CLI: none imports it."""
    package = ROOT / "acp_plugins"
    submodules = {p.stem for p in package.glob("*.py")} | {p.name for p in package.iterdir()}
    offenders = []
    for path in package.rglob("*.py"):
        if path.parent == package and path.name in ("__init__.py", "__main__.py"):
            continue
        if path.parent == package / "cli":  # the CLI sits on top of the public face
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Import) and any(a.name == "acp_plugins" for a in node.names)
            ) or (
                isinstance(node, ast.ImportFrom)
                and node.module == "acp_plugins"
                and any(alias.name not in submodules for alias in node.names)
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
