"""Discovery in real Python environments: a normal and an editable install.

A throwaway virtual environment is created; the packages of the running
environment (acp_plugins and its dependencies) are made visible in it through a
``.pth`` file, and a sample plugin is installed into it with pip, once as a
normal install and once as an editable one (``pip install -e``). The CLI then
runs with that environment's interpreter and finds the plugin with no search
path at all: the ordinary case of ``pip install acp-echo`` next to the host.

"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from conftest import sample


def _environment(root: Path) -> Path:
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    # `import` lines of a .pth file run at start-up; addsitedir also honours the outer
    # environment's own .pth files (an editable install of acp_plugins, for one).
    lines = [f"import site; site.addsitedir({path!r})" for path in sorted(outer)]
    (Path(purelib) / "_outer_environment.pth").write_text("\n".join(lines) + "\n")
    return python


def _pip(python: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-build-isolation", "--disable-pip-version-check", *args],
        check=True, capture_output=True, text=True,
    )  # fmt: skip


def _info(python: Path, tmp_path: Path) -> dict[str, object]:
    result = subprocess.run(
        [str(python), "-m", "acp_plugins", "info", "echo", "--json",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    info: dict[str, object] = json.loads(result.stdout)
    return info


@pytest.mark.parametrize("editable", [False, True], ids=["normal", "editable"])
def test_a_pip_installed_plugin_is_found_in_its_environment(tmp_path: Path, editable: bool) -> None:
    project = tmp_path / "acp-echo"
    shutil.copytree(
        sample("acp-echo"), project, ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    python = _environment(tmp_path / "env")
    _pip(python, *(["-e"] if editable else []), str(project))

    info = _info(python, tmp_path)

    assert info["state"] == "active"
    assert info["distribution"] == "acp-echo"
    manifest_path = Path(str(info["manifest_path"]))
    if editable:  # the manifest is read from the project folder itself
        assert manifest_path == project / "acp_echo" / "manifest.json"
    else:
        assert manifest_path.is_relative_to(tmp_path / "env")


def test_editing_an_editable_plugin_manifest_is_seen_without_reinstalling(tmp_path: Path) -> None:
    project = tmp_path / "acp-echo"
    shutil.copytree(
        sample("acp-echo"), project, ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    python = _environment(tmp_path / "env")
    _pip(python, "-e", str(project))
    manifest = project / "acp_echo" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["permissions"].append("manage-database")
    manifest.write_text(json.dumps(data))

    result = subprocess.run(
        [str(python), "-m", "acp_plugins", "info", "echo", "--json",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert result.returncode == 1
    assert (
        "'manage-database' requested by 'echo' is not granted"
        in json.loads(result.stdout)["reason"]
    )
