"""The author's guide, followed by a new author in a folder outside this repository.

Every ``# file:`` block of docs/authors-guide.md is written where it says; the
project's own tests run with pytest (the kit's fixtures, both modes), then the
conformance suite, through pytest and through ``acp-plugins test``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

GUIDE = ROOT / "docs" / "authors-guide.md"


def write_guide_project(folder: Path) -> list[str]:
    """The files of the guide, written into ``folder``; their names."""
    text = GUIDE.read_text(encoding="utf-8")
    names = []
    for header, body in re.findall(r"```[a-z]*\n(# file: [^\n]+)\n(.*?)```", text, re.S):
        name = header.removeprefix("# file: ").strip()
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
        names.append(name)
    return names


def _run(folder: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), cwd=folder, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def greeter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("author") / "acp-greeter"
    names = write_guide_project(folder)
    assert {"pyproject.toml", "acp_greeter/manifest.json", "acp_greeter/plugin.py",
            "tests/test_greeter.py"} <= set(names)  # fmt: skip
    return folder


def test_the_guide_s_plugin_passes_its_own_tests_in_both_modes(greeter: Path) -> None:
    started = time.monotonic()
    done = _run(greeter, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 passed" in done.stdout
    for mode in ("trusted", "isolated"):
        assert (
            f"PASSED tests/test_greeter.py::test_a_real_host_routes_greetings_to_it[{mode}]"
            in done.stdout
        )
    print(f"the guide's tests: {time.monotonic() - started:.1f} s")


def test_the_guide_s_plugin_passes_the_conformance_suite(greeter: Path) -> None:
    through_pytest = _run(greeter, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--acp-conformance", "-rA")  # fmt: skip
    assert through_pytest.returncode == 0, through_pytest.stdout + through_pytest.stderr
    for category in ("unit", "integration", "performance", "security", "compatibility"):
        assert f"PASSED ::acp-conformance[{category}]" in through_pytest.stdout
    done = _run(greeter, sys.executable, "-m", "acp_plugins", "test", ".", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert {c["category"] for c in report["checks"]} == {
        "unit", "integration", "performance", "security", "compatibility"
    }  # fmt: skip
    names = [c["name"] for c in report["checks"]]
    assert "loads, initializes and activates (isolated)" in names
    assert "greeter: ran with exactly its manifest's permissions, nothing refused" in names
