"""``acp-plugins health`` and ``acp-plugins telemetry``, run as real processes.

Each command starts a host of its own; the figures of one are in the database the
next one reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from conftest import fixture_plugin


def _acp(plugins: Path, data: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "acp_plugins", *args, "--plugin-path", str(plugins),
         "--data-dir", str(data)],
        capture_output=True, text=True, check=False, cwd=data.parent, timeout=120,
        env={**os.environ, **env},
    )  # fmt: skip


def test_health_lists_every_plugin_and_exits_1_when_one_is_failing(
    install_plugins: Callable[..., Path], tmp_path: Path
) -> None:
    plugins = install_plugins(fixture_plugin("acp-fx-gauge"))
    data = tmp_path / "data"
    done = _acp(plugins, data, "health", "--json")
    assert done.returncode == 0, done.stderr
    verdicts = {v["plugin_id"]: v for v in json.loads(done.stdout)}
    assert {pid: v["status"] for pid, v in verdicts.items()} == {
        "gauge": "healthy",
        "gauge-user": "healthy",
    }
    table = _acp(plugins, data, "health", "gauge")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split()[:2] == ["PLUGIN", "STATUS"]
    assert "gauge" in table.stdout and "healthy" in table.stdout
    disabled = _acp(plugins, data, "health", ACP_HOST_DISABLED='["gauge"]')
    assert disabled.returncode == 1, disabled.stdout + disabled.stderr
    rows = {line.split()[0]: line for line in disabled.stdout.splitlines()[1:]}
    assert "failing" in rows["gauge"] and "disabled" in rows["gauge"]
    assert "failing" in rows["gauge-user"]  # it cannot start without gauge


def test_health_of_an_unknown_plugin_is_one_line_and_exit_3(
    install_plugins: Callable[..., Path], tmp_path: Path
) -> None:
    plugins = install_plugins(fixture_plugin("acp-fx-gauge"))
    done = _acp(plugins, tmp_path / "data", "health", "nobody")
    assert done.returncode == 3
    assert done.stderr.startswith("error: no plugin 'nobody' is installed")
    assert "Traceback" not in done.stderr


def test_telemetry_reports_what_earlier_commands_stored(
    install_plugins: Callable[..., Path], tmp_path: Path
) -> None:
    plugins = install_plugins(fixture_plugin("acp-fx-gauge"))
    data = tmp_path / "data"
    for content in ("ok", "fail", "metric depth 4"):
        _acp(plugins, data, "send", "--type", "gauge", content)
    assert _acp(plugins, data, "run", "tick").returncode == 0
    done = _acp(plugins, data, "telemetry", "--json", "--since", "1h")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (handled,) = [
        h for h in report["hooks"] if (h["plugin_id"], h["hook"]) == ("gauge", "handle_message")
    ]
    assert (handled["calls"], handled["errors"]) == (3, 1)
    assert report["usage"]["messages"] == {"gauge": 3}
    assert report["usage"]["commands"] == {"gauge:tick": 1}
    assert [(m["metric"], m["last"]) for m in report["metrics"]] == [("depth", 4.0)]
    table = _acp(plugins, data, "telemetry")
    assert table.returncode == 0
    assert "handle_message" in table.stdout and "P99" in table.stdout
    assert "depth" in table.stdout


def test_telemetry_prints_the_prometheus_exposition(
    install_plugins: Callable[..., Path], tmp_path: Path
) -> None:
    plugins = install_plugins(fixture_plugin("acp-fx-gauge"))
    done = _acp(plugins, tmp_path / "data", "telemetry", "--prometheus")
    assert done.returncode == 0, done.stderr
    families = {f.name: f for f in text_string_to_metric_families(done.stdout)}
    up = {s.labels["plugin"]: s.value for s in families["acp_plugin_up"].samples}
    assert up == {"gauge": 1.0, "gauge-user": 1.0}
    assert families["acp_plugin_hook_calls"].type == "counter"
    bad = _acp(plugins, tmp_path / "data", "telemetry", "--since", "soon")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_telemetry_switched_off_in_the_environment_writes_nothing(
    install_plugins: Callable[..., Path], tmp_path: Path
) -> None:
    plugins = install_plugins(fixture_plugin("acp-fx-gauge"))
    data = tmp_path / "data"
    done = _acp(plugins, data, "send", "--type", "gauge", "ok", ACP_HOST_TELEMETRY__ENABLED="false")
    assert done.returncode == 0, done.stderr
    assert not (data / "telemetry.sqlite").exists()
    assert _acp(plugins, data, "send", "--type", "gauge", "ok").returncode == 0
    assert (data / "telemetry.sqlite").exists()
