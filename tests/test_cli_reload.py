"""``acp-plugins reload ID`` and ``acp-plugins dev PATH``, run as real processes.

``dev`` runs in a throwaway virtual environment with the echo sample installed
in editable mode (``pip install -e``), as a plugin author works; the test edits
the project's files and reads what ``dev`` prints, one JSON line per event.
"""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
from test_environments import _environment, _pip

from conftest import fixture_plugin, sample


def acp(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "acp_plugins", *args],
        capture_output=True, text=True, check=False, cwd=cwd, timeout=120,
    )  # fmt: skip


def test_reload_of_a_running_plugin_switches_to_a_new_instance(
    samples_dir: Path, tmp_path: Path
) -> None:
    common = ["--plugin-path", str(samples_dir), "--data-dir", str(tmp_path / "data")]
    done = acp("reload", "echo", *common, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("reloaded 'echo' 1.0.0 -> 1.0.0 in ")
    assert "the new instance serves" in done.stdout
    as_json = acp("reload", "echo", "--json", *common, cwd=tmp_path)
    result = json.loads(as_json.stdout)
    assert result["outcome"] == "reloaded" and result["ok"] is True
    assert result["mode"] == "isolated"
    trusted = json.loads(acp("reload", "echo", "--json", "--trust", "echo", *common,
                             cwd=tmp_path).stdout)  # fmt: skip
    assert trusted["mode"] == "in-process" and trusted["ok"] is True


def test_reload_of_an_unknown_plugin_is_one_line_and_exit_3(
    samples_dir: Path, tmp_path: Path
) -> None:
    done = acp("reload", "nope", "--plugin-path", str(samples_dir), "--data-dir",
               str(tmp_path / "data"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 3
    assert done.stderr.startswith("error: no plugin 'nope' is installed")
    assert "Traceback" not in done.stderr
    usage = acp("reload", "--help", cwd=tmp_path)
    assert usage.returncode == 0 and "--suspend-dependents" in usage.stdout


class DevProcess:
    """``acp-plugins dev`` running, read one JSON line at a time."""

    def __init__(self, python: Path, project: Path, data: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [str(python), "-m", "acp_plugins", "dev", str(project), "--json",
             "--data-dir", str(data), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=project,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)

    def next(self, seconds: float = 60) -> dict[str, Any]:
        try:
            found: dict[str, Any] = json.loads(self.lines.get(timeout=seconds))
        except queue.Empty:
            self.process.kill()
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"dev printed nothing in {seconds} s: {stderr}") from None
        return found

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=30)


@pytest.fixture()
def editable_echo(tmp_path: Path) -> tuple[Path, Path]:
    python = _environment(tmp_path / "env")
    project = tmp_path / "acp-echo"
    shutil.copytree(
        sample("acp-echo"), project, ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    _pip(python, "-e", str(project))
    return python, project


@pytest.mark.parametrize("trust", [False, True], ids=["isolated", "in-process"])
def test_dev_reloads_an_editable_plugin_on_every_change_and_keeps_the_old_one_on_a_broken_edit(
    editable_echo: tuple[Path, Path], tmp_path: Path, trust: bool
) -> None:
    python, project = editable_echo
    dev = DevProcess(python, project, tmp_path / "data", *(["--trust", "echo"] if trust else []))
    try:
        ready = dev.next()
        assert ready["plugins"] == ["echo"] and ready["states"] == {"echo": "active"}
        plugin = project / "acp_echo" / "plugin.py"
        source = plugin.read_text()
        edit: Callable[[str], None] = plugin.write_text
        edit(source + "\ndef broken(:\n")
        broken = dev.next()
        assert broken["outcome"] == "rolled-back" and broken["ok"] is False
        assert "SyntaxError" in broken["detail"]
        assert "goes on serving" in broken["detail"]
        assert str(plugin) in broken["changed"]
        edit(source + "\n# fixed\n")
        fixed = dev.next()
        assert fixed["outcome"] == "reloaded" and fixed["ok"] is True
        assert fixed["mode"] == ("in-process" if trust else "isolated")
    finally:
        status = dev.stop()
    assert status == 0
    assert dev.next()["stopped"] is True


def test_dev_on_a_folder_no_plugin_comes_from_says_how_to_install_it(
    editable_echo: tuple[Path, Path], tmp_path: Path
) -> None:
    python, _ = editable_echo
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    done = subprocess.run(
        [str(python), "-m", "acp_plugins", "dev", str(elsewhere), "--data-dir",
         str(tmp_path / "data")], capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no installed plugin comes from" in done.stderr
    assert f"pip install -e {elsewhere}" in done.stderr


def test_reload_of_a_plugin_that_cannot_start_fails_in_one_line_with_exit_1(
    install_plugins: Callable[..., Path], tmp_path: Path
) -> None:
    directory = install_plugins(fixture_plugin("acp-fx-faulty"))
    common = ["--plugin-path", str(directory), "--data-dir", str(tmp_path / "data")]
    done = acp("reload", "import-error", *common, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "import-error" in done.stderr
    assert "Traceback" not in done.stderr
    as_json = acp("reload", "import-error", "--json", *common, cwd=tmp_path)
    assert as_json.returncode == 1
    result = json.loads(as_json.stdout)
    assert result["ok"] is False and result["outcome"] == "rolled-back"
