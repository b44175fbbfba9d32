"""The README's plugin example works when copied: build it from the README and run it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from acp_plugins.cli import main
from acp_plugins.testing.packaging import install_projects
from conftest import ROOT

FENCE = re.compile(r"^```\w+ (?P<path>[\w./-]+)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def _readme_files() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return {match["path"]: match["body"] for match in FENCE.finditer(text)}


GREETER = {
    "acp-greeter/pyproject.toml",
    "acp-greeter/acp_greeter/manifest.json",
    "acp-greeter/acp_greeter/plugin.py",
    "acp-greeter/acp_greeter/__init__.py",
}
TALLY = {
    "acp-tally/pyproject.toml",
    "acp-tally/acp_tally/manifest.json",
    "acp-tally/acp_tally/plugin.py",
    "acp-tally/acp_tally/__init__.py",
    "tally_demo.py",
}


def test_the_readme_examples_are_complete() -> None:
    assert set(_readme_files()) == GREETER | TALLY


def _write_readme_files(root: Path) -> None:
    for name, body in _readme_files().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")


def _printed_after(marker: str) -> str:
    """The first plain fenced block after ``marker`` in the README: what it says is printed."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^```\n(.*?)^```$", text[text.index(marker) :], re.MULTILINE | re.DOTALL)
    assert block is not None
    return block[1]


def test_the_readme_example_validates_installs_and_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_readme_files(tmp_path / "src")
    project = tmp_path / "src" / "acp-greeter"

    assert main(["validate", str(project)]) == 0
    assert capsys.readouterr().out.startswith("ok    greeter:")

    installed = tmp_path / "installed"
    install_projects([project], installed)
    common = ["--plugin-path", str(installed), "--data-dir", str(tmp_path / "data")]
    assert main(["send", *common, "hello", "there"]) == 0
    assert capsys.readouterr().out.strip() == "greeter (confidence 0.90): Hello, cli!"
    assert main(["send", *common, "goodbye"]) == 1


@pytest.fixture(scope="module")
def new_user(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """A fresh virtual environment with acp-plugins installed as the quick start says,
    the README's files written beside it: (the folder, the venv, a pip install command)."""
    root = tmp_path_factory.mktemp("new-user")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check"]  # fmt: skip
    _write_readme_files(root)
    subprocess.run([*pip, str(ROOT)], check=True, timeout=600)  # `pip install ./acp-plugins`
    return root, venv, pip


def _environment(root: Path) -> dict[str, str]:
    return {**os.environ, "ACP_PLUGINS_DATA_DIR": str(root / "data"), "PYTHONPATH": ""}


def test_a_new_user_installs_acp_plugins_then_the_greeter_as_the_quick_start_says(
    new_user: tuple[Path, Path, list[str]],
) -> None:
    """The quick start in a fresh virtual environment: nothing of this one is seen."""
    root, venv, pip = new_user
    # without acp-plugins, the greeter cannot be installed: its requirement is not on PyPI
    subprocess.run([*pip, str(root / "acp-greeter")], check=True, timeout=600)
    done = subprocess.run(
        [str(venv / "bin" / "acp-plugins"), "send", "hello", "there"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_environment(root),
        cwd=root,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "greeter (confidence 0.90): Hello, cli!")


def test_the_messaging_example_prints_what_the_readme_says(
    new_user: tuple[Path, Path, list[str]],
) -> None:
    """The tally and its demo, with the echo sample, isolated in workers as by default."""
    root, venv, pip = new_user
    echo = ROOT / "sample_plugins" / "acp-echo"
    subprocess.run([*pip, str(echo), str(root / "acp-tally")], check=True, timeout=600)
    done = subprocess.run(
        [str(venv / "bin" / "python"), "tally_demo.py"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_environment(root),
        cwd=root,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == _printed_after("`python tally_demo.py` prints:")
