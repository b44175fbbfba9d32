"""The command line as a client: ``--server URL`` asks a running ``acp-plugins serve``.

The server runs as a real process; each command runs once against it and once
on its own (a host of its own over the same plugins), and says the same.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_server import Server, _free_port, _start, installed  # noqa: F401 - a fixture

REMOTE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("ACP_SERVER")}


@pytest.fixture(scope="module")
def plain_server(
    installed: Path,  # noqa: F811 - the fixture imported above
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """A server whose admin token is only in its token file."""
    data = tmp_path_factory.mktemp("remote") / "data"
    running = _start(installed, data, ACP_HOST_ON_DEMAND="false")
    yield running
    running.process.send_signal(signal.SIGTERM)
    running.process.wait(timeout=60)


def _acp(
    server: Server, plugins: Path, *args: str, remote: bool = True
) -> subprocess.CompletedProcess[str]:
    where = ["--server", server.url] if remote else []
    return subprocess.run(
        [sys.executable, "-m", "acp_plugins", *args, *where, "--plugin-path", str(plugins),
         "--data-dir", str(server.data), "--trust", "echo"],
        capture_output=True, text=True, timeout=120,
        env={**REMOTE_ENV, "ACP_HOST_ON_DEMAND": "false"},
    )  # fmt: skip


def test_list_and_send_say_the_same_through_the_server(
    plain_server: Server,
    installed: Path,  # noqa: F811
) -> None:
    for command in (["list"], ["send", "--type", "echo", "hi", "there"],
                    ["send", "--type", "nothing", "x"]):  # fmt: skip
        remote = _acp(plain_server, installed, *command)
        local = _acp(plain_server, installed, *command, remote=False)
        assert (remote.returncode, remote.stdout) == (local.returncode, local.stdout), command
    # the same fields in the same order (pids and call counts are each host's own)
    remote_list = json.loads(_acp(plain_server, installed, "list", "--json").stdout)
    local_list = json.loads(_acp(plain_server, installed, "list", "--json", remote=False).stdout)
    assert [list(p) for p in remote_list] == [list(p) for p in local_list]
    assert [(p["plugin_id"], p["state"]) for p in remote_list] == [
        (p["plugin_id"], p["state"]) for p in local_list
    ]
    assert _acp(plain_server, installed, "send", "--type", "nothing", "x").returncode == 1


def test_health_telemetry_and_reload_through_the_server(
    plain_server: Server,
    installed: Path,  # noqa: F811
) -> None:
    health = _acp(plain_server, installed, "health", "gauge", "--json")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)[0]["status"] == "healthy"
    _acp(plain_server, installed, "send", "--type", "gauge", "ok")
    report = json.loads(
        _acp(plain_server, installed, "telemetry", "--json", "--since", "1h").stdout
    )
    calls = {(h["plugin_id"], h["hook"]): h["calls"] for h in report["hooks"]}
    assert calls[("gauge", "handle_message")] >= 1
    prometheus = _acp(plain_server, installed, "telemetry", "--prometheus")
    assert 'acp_plugin_up{plugin="gauge"} 1.0' in prometheus.stdout
    reloaded = _acp(plain_server, installed, "reload", "gauge", "--json")
    assert reloaded.returncode == 0, reloaded.stderr
    result = json.loads(reloaded.stdout)
    assert (result["outcome"], result["ok"]) == ("reloaded", True)
    status = json.loads(_acp(plain_server, installed, "list", "--json").stdout)
    assert {p["plugin_id"]: p["generation"] for p in status}["gauge"] == 1  # the server's host


def test_errors_through_the_server_keep_their_exit_status(
    plain_server: Server,
    installed: Path,  # noqa: F811
) -> None:
    unknown = _acp(plain_server, installed, "health", "nobody")
    assert unknown.returncode == 3
    assert unknown.stderr.startswith("error: no plugin 'nobody' is installed")
    for command in (["info", "gauge"], ["audit"], ["config", "schema", "echo"]):
        not_yet = _acp(plain_server, installed, *command)
        assert not_yet.returncode == 2, command
        assert "does not go through --server yet" in not_yet.stderr
    port = _free_port()
    nobody = subprocess.run(
        [sys.executable, "-m", "acp_plugins", "list", "--server", f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=60, env=REMOTE_ENV,
    )  # fmt: skip
    assert nobody.returncode == 1
    assert nobody.stderr.startswith(f"error: cannot reach the server at http://127.0.0.1:{port}")
    wrong = subprocess.run(
        [sys.executable, "-m", "acp_plugins", "list", "--server", plain_server.url],
        capture_output=True, text=True, timeout=60, env={**REMOTE_ENV, "ACP_SERVER_TOKEN": "nope"},
    )  # fmt: skip
    assert wrong.returncode == 1 and "the server answered 401" in wrong.stderr
    assert "Traceback" not in wrong.stderr + nobody.stderr + unknown.stderr


def test_config_set_through_the_server_takes_effect_live(
    plain_server: Server,
    installed: Path,  # noqa: F811
) -> None:
    changed = _acp(plain_server, installed, "config", "set", "echo", "prefix", "live> ", "--json")
    assert changed.returncode == 0, changed.stderr
    result = json.loads(changed.stdout)
    assert result["settings"]["prefix"]["value"] == "live> "
    assert result["settings"]["prefix"]["layer"] == "runtime"
    assert result["overrides_file"] == str(plain_server.data / "overrides.json")
    # the running plugin answers with it at once: no restart, no new host
    answer = _acp(plain_server, installed, "send", "--type", "echo", "hi")
    assert answer.stdout.strip().endswith("live> hi")
    shown = _acp(plain_server, installed, "config", "get", "echo", "prefix")
    assert "live> " in shown.stdout and "runtime" in shown.stdout
    bad = _acp(plain_server, installed, "config", "set", "echo", "prefix", "12")
    assert bad.returncode == 2 and "prefix" in bad.stderr, bad.stderr
    removed = _acp(plain_server, installed, "config", "unset", "echo", "prefix")
    assert removed.returncode == 0, removed.stderr
    assert (
        not _acp(plain_server, installed, "send", "--type", "echo", "hi")
        .stdout.strip()
        .endswith("live> hi")
    )
