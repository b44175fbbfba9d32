"""The conformance suite: every sample passes; plugins that break a rule fail that check.

Projects are real folders built here and installed with pip by the suite itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from acp_plugins.testing import run_conformance
from conftest import sample

SAMPLES = {
    "acp-echo": [],
    "acp-tools": [],
    "acp-sqlite-store": [],
    "acp-activity-analytics": ["acp-sqlite-store"],  # its dependency, installed beside it
}


@pytest.mark.parametrize("project", sorted(SAMPLES))
def test_every_sample_passes_the_conformance_suite(project: str) -> None:
    also = [arg for other in SAMPLES[project] for arg in ("--with", str(sample(other)))]
    done = subprocess.run(
        [sys.executable, "-m", "acp_plugins", "test", str(sample(project)), "--json", *also],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    report = json.loads(done.stdout)
    failed = [f"{c['category']} {c['name']}: {c['reason']}"
              for c in report["checks"] if not c["ok"]]  # fmt: skip
    assert (done.returncode, failed) == (0, []), done.stderr
    categories = {c["category"] for c in report["checks"]}
    assert categories == {"unit", "integration", "performance", "security", "compatibility"}


PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "acp-{id}"
version = "1.0.0"
dependencies = ["acp-plugins"]

[project.entry-points."acp.plugins"]
{entry} = "acp_{package}.plugin:{cls}"

[tool.setuptools]
packages = ["acp_{package}"]

[tool.setuptools.package-data]
acp_{package} = ["manifest.json"]
"""


def _project(folder: Path, plugin_id: str, source: str, permissions: list[str],
             entry: str | None = None) -> Path:  # fmt: skip
    package = plugin_id.replace("-", "_")
    root = folder / f"acp-{plugin_id}"
    (root / f"acp_{package}").mkdir(parents=True)
    cls = source.split("class ", 1)[1].split("(", 1)[0]
    (root / "pyproject.toml").write_text(
        PYPROJECT.format(id=plugin_id, entry=entry or plugin_id, package=package, cls=cls)
    )
    manifest = {"manifest_version": "1.0", "plugin_id": plugin_id, "name": plugin_id,
                "version": "1.0.0", "dependencies": {"core": "^2.0.0"},
                "permissions": permissions, "interfaces": ["IMessageHandler"]}  # fmt: skip
    (root / f"acp_{package}" / "manifest.json").write_text(json.dumps(manifest))
    (root / f"acp_{package}" / "__init__.py").write_text("")
    (root / f"acp_{package}" / "plugin.py").write_text(source)
    return root


GREEDY = """
from acp_plugins import Plugin, hookimpl


class GreedyPlugin(Plugin):
    @hookimpl
    def get_supported_message_types(self):
        return ["greedy"]

    @hookimpl
    def can_handle(self, message):
        return 1.0

    @hookimpl
    async def handle_message(self, message, context):
        await context.publish("greedy.spoke", {"text": message.content})  # write-messaging
        return "said"
"""


def test_a_plugin_that_uses_more_than_it_declares_fails_security(tmp_path: Path) -> None:
    project = _project(tmp_path, "greedy", GREEDY, ["read-messaging"])
    report = run_conformance(project)
    failed = {(c.category, c.name): c.reason for c in report.failed()}
    security = failed[("security", "greedy: ran with exactly its manifest's permissions, "
                                   "nothing refused")]  # fmt: skip
    assert "write-messaging" in security and "deny" in security
    assert ("integration", "greedy: its interfaces answer with valid models (trusted)") in failed
    # what it declares and what it was granted agree; only the refusal fails it
    passed = {c.name for c in report.checks if c.ok}
    assert "greedy: the manifest and pyproject.toml are valid" in passed
    # declaring it is enough
    fixed = _project(tmp_path / "fixed", "greedy", GREEDY, ["read-messaging", "write-messaging"])
    assert run_conformance(fixed).ok


def test_an_entry_point_named_otherwise_than_the_plugin_fails_unit(tmp_path: Path) -> None:
    project = _project(tmp_path, "named", GREEDY, ["read-messaging", "write-messaging"],
                       entry="other")  # fmt: skip
    report = run_conformance(project)
    failed = {(c.category, c.name): c.reason for c in report.failed()}
    reason = failed[("unit", "other: the entry point name is the plugin id")]
    assert "differs from the entry point name 'other'" in reason
    assert not any(c.category == "integration" and "activates" in c.name for c in report.checks)


SPOKE = '        await context.publish("greedy.spoke", {"text": message.content})'
SLOW = (
    GREEDY.replace("class GreedyPlugin", "class SlowPlugin")
    .replace(
        SPOKE + "  # write-messaging\n",
        "        import asyncio\n        await asyncio.sleep(0.006)\n",
    )
    .replace('["greedy"]', '["slow"]')
)


def test_a_plugin_slower_than_the_budget_fails_performance(tmp_path: Path) -> None:
    project = _project(tmp_path, "slow", SLOW, ["read-messaging"])
    report = run_conformance(project, budget_ms=5, modes=("trusted",))
    failed = {(c.category, c.name): c.reason for c in report.failed()}
    reason = failed[("performance", "slow: p99 latency of its hooks within 5 ms")]
    assert "handle_message p99" in reason
    assert run_conformance(project, budget_ms=200, modes=("trusted",)).ok


def test_test_on_a_folder_that_is_no_project_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "acp_plugins", "test", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    said = f"error: PATH '{tmp_path}' is not a plugin project (no pyproject.toml there)\n"
    assert done.stderr == said


SCRIBBLER = """
from acp_plugins import Plugin, hookimpl


class ScribblerPlugin(Plugin):
    @hookimpl
    def get_supported_message_types(self):
        return ["scribble"]

    @hookimpl
    def can_handle(self, message):
        return 1.0

    @hookimpl
    def handle_message(self, message, context):
        with open(TARGET, "w") as file:  # outside its data directory
            file.write(message.content)
        return "scribbled"
"""


def test_a_plugin_that_writes_outside_its_data_directory_fails_security(
    tmp_path: Path,
) -> None:
    scribble = tmp_path / "outside" / "scribble.txt"
    scribble.parent.mkdir()
    scribble.parent.chmod(0o777)  # the worker's own uid could write here, but for the sandbox
    source = SCRIBBLER.replace("TARGET", repr(str(scribble)))
    project = _project(tmp_path, "scribbler", source, ["read-messaging"])
    report = run_conformance(project, modes=("isolated",))
    failed = {(c.category, c.name): c.reason for c in report.failed()}
    security = failed[("security", "scribbler: ran with exactly its manifest's permissions, "
                                   "nothing refused")]  # fmt: skip
    assert str(scribble) in security and "refused" in security
    assert "\nassert" not in security  # the reason as the check wrote it, under pytest too
    assert not scribble.exists()


def test_a_plugin_that_fails_to_import_fails_its_activation_check_not_the_suite(
    tmp_path: Path,
) -> None:
    broken = GREEDY + "\nraise RuntimeError('boom at import')\n"
    project = _project(tmp_path, "broken", broken, ["read-messaging", "write-messaging"])
    done = subprocess.run(
        [sys.executable, "-m", "acp_plugins", "test", str(project), "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    failed = {c["name"]: c["reason"] for c in report["checks"] if not c["ok"]}
    for mode in ("trusted", "isolated"):
        reason = failed[f"loads, initializes and activates ({mode})"]
        assert "RuntimeError: boom at import" in reason, reason


def test_a_pyproject_that_cannot_be_read_is_one_failed_check(tmp_path: Path) -> None:
    project = _project(tmp_path, "unread", GREEDY, ["read-messaging", "write-messaging"])
    (project / "pyproject.toml").write_text("[project\n")
    report = run_conformance(project)
    assert [(c.category, c.name) for c in report.failed()] == [
        ("unit", "?: the manifest and pyproject.toml are valid")
    ]
    assert "cannot read" in report.failed()[0].reason
    assert not any(c.category in ("integration", "security", "performance")
                   for c in report.checks)  # fmt: skip
