"""The README's plugin example works when copied: build it from the README and run it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from acp_plugins.cli import main
from conftest import ROOT, pip_install_target

FENCE = re.compile(r"^```\w+ (?P<path>[\w./-]+)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def _readme_files() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return {match["path"]: match["body"] for match in FENCE.finditer(text)}


def test_the_readme_example_is_complete() -> None:
    assert set(_readme_files()) == {
        "acp-greeter/pyproject.toml",
        "acp-greeter/acp_greeter/manifest.json",
        "acp-greeter/acp_greeter/plugin.py",
        "acp-greeter/acp_greeter/__init__.py",
    }


def test_the_readme_example_validates_installs_and_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, body in _readme_files().items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    project = tmp_path / "src" / "acp-greeter"

    assert main(["validate", str(project)]) == 0
    assert capsys.readouterr().out.startswith("ok    greeter:")

    installed = tmp_path / "installed"
    pip_install_target([project], installed)
    common = ["--plugin-path", str(installed), "--data-dir", str(tmp_path / "data")]
    assert main(["send", *common, "hello", "there"]) == 0
    assert capsys.readouterr().out.strip() == "greeter (confidence 0.90): Hello, cli!"
    assert main(["send", *common, "goodbye"]) == 1


def test_a_new_user_installs_acp_plugins_then_the_greeter_as_the_quick_start_says(
    tmp_path: Path,
) -> None:
    """The quick start in a fresh virtual environment: nothing of this one is seen."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check"]  # fmt: skip
    for name, body in _readme_files().items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    # without acp-plugins, the greeter cannot be installed: its requirement is not on PyPI
    subprocess.run([*pip, str(ROOT)], check=True, timeout=600)  # `pip install ./acp-plugins`
    subprocess.run([*pip, str(tmp_path / "acp-greeter")], check=True, timeout=600)
    done = subprocess.run(
        [str(venv / "bin" / "acp-plugins"), "send", "hello", "there"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ACP_PLUGINS_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": ""},
        cwd=tmp_path,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "greeter (confidence 0.90): Hello, cli!")
