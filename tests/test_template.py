"""``acp-plugins new``: the generated projects pass their own tests and the conformance
suite, and ``copier update`` brings a later fix of the template into one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from acp_plugins.cli.kit_commands import template_path


def _acp(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "acp_plugins", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def _pytest(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=project, capture_output=True, text=True, timeout=600)  # fmt: skip


def test_a_project_of_every_interface_passes_its_tests_and_the_conformance_suite(
    tmp_path: Path,
) -> None:
    # a project per interface runs its own nox in CI: nox -s template
    started = time.monotonic()
    args = [arg for i in ("message", "command", "data", "analytics") for arg in ("--interface", i)]
    made = _acp("new", "everything", *args, "--json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["project"] == "acp-everything"
    project = tmp_path / "acp-everything"
    assert {"pyproject.toml", "noxfile.py", "README.md", ".copier-answers.yml",
            "tests/test_plugin.py", "acp_everything/manifest.json",
            "acp_everything/plugin.py", "acp_everything/config.py"} <= set(
        created["files"]
    )  # fmt: skip
    manifest = json.loads((project / "acp_everything" / "manifest.json").read_text())
    assert manifest["interfaces"] == ["IMessageHandler", "ICommandHandler", "IDataProvider",
                                      "IAnalyticsProvider"]  # fmt: skip
    tested = _pytest(project)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert " passed" in tested.stdout and "failed" not in tested.stdout
    done = _acp("test", ".", "--json", cwd=project)
    report = json.loads(done.stdout)
    assert (done.returncode, [c["name"] for c in report["checks"] if not c["ok"]]) == (0, [])
    print(f"generated, tested and checked in {time.monotonic() - started:.1f} s")


def test_bad_names_and_taken_folders_are_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = _acp("new", "Bad_Name", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: 'Bad_Name' is not a plugin id")
    (tmp_path / "acp-taken" / "x").mkdir(parents=True)
    taken = _acp("new", "taken", cwd=tmp_path)
    assert taken.returncode == 2 and "exists and is not empty" in taken.stderr
    assert "Traceback" not in bad.stderr + taken.stderr


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                   cwd=cwd, check=True, capture_output=True)  # fmt: skip


def test_copier_update_brings_a_template_fix_into_a_generated_project(tmp_path: Path) -> None:
    import copier

    template = tmp_path / "template"
    shutil.copytree(template_path(), template)
    _git("init", "-q", cwd=template)
    _git("add", "-A", cwd=template)
    _git("commit", "-qm", "v1", cwd=template)
    _git("tag", "v1.0.0", cwd=template)
    made = _acp("new", "kept", "--template", str(template), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "acp-kept"
    _git("init", "-q", cwd=project)
    _git("add", "-A", cwd=project)
    _git("commit", "-qm", "generated", cwd=project)
    readme = template / "project" / "README.md.jinja"
    readme.write_text(readme.read_text() + "\nA fix of the template.\n")
    _git("commit", "-qam", "a fix", cwd=template)
    _git("tag", "v1.0.1", cwd=template)
    copier.run_update(str(project), defaults=True, overwrite=True, quiet=True, unsafe=False)
    assert "A fix of the template." in (project / "README.md").read_text()
    assert "_commit: v1.0.1" in (project / ".copier-answers.yml").read_text()
