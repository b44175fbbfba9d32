"""``acp-plugins test --matrix``: the suite again, through nox, per admitted Python and core.

acp-plugins comes from a real package index on 127.0.0.1 that holds a wheel of this
checkout (pip finds its dependencies where it always does), so the default columns,
the lowest acp-plugins the project requires and the newest, are resolved by pip as a
plugin author's would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_server import serving_folder

from acp_plugins.testing.matrix import core_requirements, machine_pythons
from conftest import ROOT

HERE = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def core_links(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A page of links on 127.0.0.1 with a wheel of this checkout: acp-plugins 0.1.0."""
    root = tmp_path_factory.mktemp("links")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
                    str(root), str(ROOT)], check=True, capture_output=True)  # fmt: skip
    with serving_folder(root) as url:
        yield url


def _acp(*args: str, cwd: Path, links: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if links:
        env["PIP_FIND_LINKS"] = f"{env.get('PIP_FIND_LINKS', '')} {links}".strip()
    return subprocess.run([sys.executable, "-m", "acp_plugins", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip


def _matrix_checks(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    report = json.loads(done.stdout)
    return {c["name"]: c for c in report["checks"] if c["name"].startswith("Python ")}


def test_the_default_columns_come_from_the_project_s_requirement(tmp_path: Path) -> None:
    def columns(dependencies: list[str]) -> dict[str, str]:
        (tmp_path / "pyproject.toml").write_text(
            f"[project]\nname = 'x'\nversion = '1'\ndependencies = {json.dumps(dependencies)}\n"
        )
        return core_requirements(tmp_path)

    assert columns(["acp-plugins>=0.3,<2", "pluggy"]) == {
        "lowest": "acp-plugins[testing]==0.3",
        "newest": "acp-plugins[testing]<2,>=0.3",
    }
    assert columns(["acp_plugins~=1.4.2"]) == {
        "lowest": "acp-plugins[testing]==1.4.2",
        "newest": "acp-plugins[testing]~=1.4.2",
    }
    assert columns(["acp-plugins"]) == {"newest": "acp-plugins[testing]"}
    assert columns(["acp-plugins>1.0"]) == {"newest": "acp-plugins[testing]>1.0"}  # no bound met
    assert columns([]) == {"newest": "acp-plugins[testing]"}


def test_the_matrix_runs_the_suite_per_python_and_core_through_nox(
    tmp_path: Path, core_links: str
) -> None:
    assert HERE in machine_pythons()
    made = _acp("new", "matrixed", "--interface", "command", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "acp-matrixed"
    done = _acp("test", str(project), "--python", HERE, "--mode", "trusted", "--json",
                cwd=tmp_path, links=core_links)  # fmt: skip
    cells = _matrix_checks(done)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(cells) == [f"Python {HERE} with acp-plugins lowest",
                             f"Python {HERE} with acp-plugins newest"]  # fmt: skip
    lowest, newest = (
        cells[f"Python {HERE} with acp-plugins lowest"],
        cells[f"Python {HERE} with acp-plugins newest"],
    )
    assert lowest["ok"] and newest["ok"]
    # the other four categories ran in the cell, and pip was asked for the lowest exactly
    assert "checks passed (acp-plugins[testing]==0.1.0)" in str(lowest["reason"])
    assert "checks passed (acp-plugins[testing]>=0.1.0)" in str(newest["reason"])


def test_a_core_pip_cannot_install_fails_its_cell_with_pip_s_reason(tmp_path: Path) -> None:
    echo = str(ROOT / "sample_plugins" / "acp-echo")
    done = _acp("test", echo, "--python", HERE, "--mode", "trusted",
                "--core", "acp-plugins==0.0.1", "--json", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1
    (cell,) = _matrix_checks(done).values()
    assert cell["ok"] is False
    assert "did not run: No matching distribution found for acp-plugins==0.0.1" in str(
        cell["reason"]
    )
    checks = json.loads(done.stdout)["checks"]
    assert [c["name"] for c in checks if not c["ok"]] == [cell["name"]]  # the rest passed here


def test_a_python_the_manifest_does_not_admit_is_not_a_cell(tmp_path: Path) -> None:
    project = tmp_path / "acp-old"
    made = _acp("new", "old", "--interface", "message", "--dir", str(project), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    manifest_path = project / "acp_old" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["max_python"] = "3.10"
    manifest_path.write_text(json.dumps(manifest))
    newest = machine_pythons()[-1]
    if newest == "3.10":
        pytest.skip("this machine has no Python above 3.10")
    done = _acp("test", str(project), "--python", newest, "--mode", "trusted", "--json",
                cwd=tmp_path)  # fmt: skip
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    refused = checks["the matrix has a Python to run on"]
    assert refused["ok"] is False
    assert refused["reason"] == f"no Python the manifest admits among: {newest}"
    assert not _matrix_checks(done)


def test_a_python_that_is_not_a_version_is_one_line_exit_2(tmp_path: Path) -> None:
    done = _acp("test", str(ROOT / "sample_plugins" / "acp-echo"), "--python", "py3", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --python 'py3' is not a Python version like 3.12"
