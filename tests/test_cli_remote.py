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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_server import Server, _free_port, _start, serving_folder

from conftest import SAMPLE_PROJECTS, fixture_plugin, sample

REMOTE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("ACP_SERVER")}


@pytest.fixture(scope="module")
def installed(install_plugins: Callable[..., Path]) -> Path:
    """The four samples (messages, commands, data, analytics) and the gauge fixture."""
    return install_plugins(*(sample(n) for n in SAMPLE_PROJECTS), fixture_plugin("acp-fx-gauge"))


@pytest.fixture(scope="module")
def plain_server(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
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
    installed: Path,
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


#: Commands whose whole output (status, stdout, stderr) is the same through the server.
SAME_OUTPUT = [
    ["commands"], ["commands", "--json"], ["sources"], ["sources", "--json"], ["metrics"],
    ["metrics", "--json"], ["run", "add", "2", "40.25", "--digits", "1"], ["run", "add", "--help"],
    ["run", "tools:upper", "plugins", "are", "--reverse", "--json"], ["run", "add", "two"],
    ["run", "nosuch"], ["query", "agents"], ["query", "agents", "--json", "--fields", "agent"],
    ["query", "nowhere"], ["query", "agents", "--where", "colour=blue"],
    ["report", "--format", "pdf"],
    ["report", "--plugin", "nobody"], ["config", "schema", "echo"], ["config", "schema", "host"],
    ["schema"], ["validate", str(sample("acp-echo"))], ["info", "nobody"],
]  # fmt: skip


@pytest.mark.parametrize("command", SAME_OUTPUT, ids=" ".join)
def test_every_other_command_says_the_same_through_the_server(
    plain_server: Server, installed: Path, command: list[str]
) -> None:
    remote = _acp(plain_server, installed, *command)
    local = _acp(plain_server, installed, *command, remote=False)
    said = (remote.returncode, remote.stdout, remote.stderr)
    assert said == (local.returncode, local.stdout, local.stderr)
    assert "Traceback" not in remote.stderr


def test_info_and_audit_through_the_server(plain_server: Server, installed: Path) -> None:
    remote = json.loads(_acp(plain_server, installed, "info", "tools", "--json").stdout)
    local = json.loads(
        _acp(plain_server, installed, "info", "tools", "--json", remote=False).stdout
    )
    assert list(remote) == list(local)  # the same fields in the same order
    for field in ("version", "state", "commands", "settings", "author", "subscriptions"):
        assert remote[field] == local[field], field
    text = _acp(plain_server, installed, "info", "tools")
    assert text.returncode == 0 and "isolated worker" in text.stdout
    # the server's worker, not one of this command's own: it has the server's call counts
    _acp(plain_server, installed, "run", "add", "1", "2")
    after = json.loads(_acp(plain_server, installed, "info", "tools", "--json").stdout)
    assert after["isolation"]["pid"] == remote["isolation"]["pid"]
    assert (
        after["metrics"]["execute_command"]["calls"] > remote["metrics"]["execute_command"]["calls"]
    )
    # reports: the same, but for the window's ends (each run's own "now")
    asked = ["report", "--format", "csv", "--plugin", "activity-analytics"]
    through = _acp(plain_server, installed, *asked)
    direct = _acp(plain_server, installed, *asked, remote=False)
    assert through.returncode == direct.returncode == 0, through.stderr

    def rows(csv: str) -> list[list[str]]:  # the sample data's figures (not the server's own)
        return [line.split(",")[:3] for line in csv.splitlines() if line.startswith("events_")]

    assert rows(through.stdout) == rows(direct.stdout) and len(rows(direct.stdout)) > 3
    # the audit log is the server's own file, read a page at a time
    for command in (
        ["audit", "--last", "5"],
        ["audit", "--plugin", "tools", "--json"],
        ["audit", "--action", "grant", "--action", "sandbox", "--last", "0"],
    ):
        through = _acp(plain_server, installed, *command)
        direct = _acp(plain_server, installed, *command, remote=False)
        assert (through.returncode, through.stdout) == (direct.returncode, direct.stdout)
    entries = json.loads(_acp(plain_server, installed, "audit", "--json").stdout)
    assert len(entries) > 5 and {e["action"] for e in entries} >= {"grant", "worker"}


def test_a_long_audit_log_comes_through_the_server_whole(
    plain_server: Server, installed: Path
) -> None:
    # the server pages 1,000 entries at a time: a log longer than that, written as the host
    # writes it (one JSON line per entry, appended)
    with (plain_server.data / "audit.jsonl").open("a") as log:
        for n in range(2500):
            entry = {"at": f"2026-12-01T00:00:{n % 60:02}+00:00", "plugin_id": "bulk",
                     "action": "config", "outcome": "allowed", "permission": None,
                     "detail": f"entry {n}"}  # fmt: skip
            log.write(json.dumps(entry) + "\n")
    for command in (["audit", "--plugin", "bulk", "--json"],
                    ["audit", "--plugin", "bulk", "--last", "1500", "--json"]):  # fmt: skip
        through = _acp(plain_server, installed, *command)
        direct = _acp(plain_server, installed, *command, remote=False)
        assert through.stdout == direct.stdout
    everything = json.loads(
        _acp(plain_server, installed, "audit", "--plugin", "bulk", "--json").stdout
    )
    assert [e["detail"] for e in everything] == [f"entry {n}" for n in range(2500)]
    last = json.loads(through.stdout)
    assert [e["detail"] for e in last] == [f"entry {n}" for n in range(1000, 2500)]


def test_health_telemetry_and_reload_through_the_server(
    plain_server: Server,
    installed: Path,
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
    installed: Path,
) -> None:
    unknown = _acp(plain_server, installed, "health", "nobody")
    assert unknown.returncode == 3
    assert unknown.stderr.startswith("error: no plugin 'nobody' is installed")
    for command, why in (
        (["serve"], "it runs a host of its own"),
        (["dev", "echo"], "watches this machine's plugin folders"),
        (["validate", "echo"], "give a project folder instead"),
        (["config", "validate", "nowhere.toml"], "checks a config file on this machine"),
        (["config", "show", "host"], "does not show its host's own settings"),
    ):
        refused = _acp(plain_server, installed, *command)
        assert refused.returncode == 2, command
        assert (
            f"'{' '.join(command[:2] if command[0] == 'config' else command[:1])}' does "
            "not go through --server (" in refused.stderr
        ), refused.stderr
        assert why in refused.stderr, refused.stderr
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


@pytest.mark.parametrize(
    ("url", "why"),
    [("not-a-url", "is not an http:// or https:// URL with a host"),
     ("ftp://127.0.0.1/", "is not an http:// or https:// URL with a host"),
     ("http://[::1", "cannot be read (Invalid IPv6 URL)"),
     ("http://127.0.0.1:port", "cannot be read")],
)  # fmt: skip
def test_a_server_url_that_is_no_url_is_bad_usage_in_one_line(url: str, why: str) -> None:
    for given in (["--server", url], []):
        done = subprocess.run(
            [sys.executable, "-m", "acp_plugins", "list", *given],
            capture_output=True, text=True, timeout=60,
            env={**REMOTE_ENV, "ACP_SERVER_URL": url},
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"error: the server URL {url!r} "), done.stderr
        assert why in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_a_web_server_that_is_not_acp_plugins_is_told_apart(tmp_path: Path) -> None:
    (tmp_path / "api" / "v1").mkdir(parents=True)
    (tmp_path / "api" / "v1" / "plugins").write_text("<html>not json</html>")
    with serving_folder(tmp_path) as url:
        for command in (["list"], ["info", "echo"]):  # a page that is not JSON; a 404 page
            done = subprocess.run(
                [sys.executable, "-m", "acp_plugins", *command, "--server", url],
                capture_output=True, text=True, timeout=60, env=REMOTE_ENV,
            )  # fmt: skip
            assert done.returncode == 1, done.stderr
            assert "is it an `acp-plugins serve`" in done.stderr, done.stderr
            assert "Traceback" not in done.stderr


def test_config_set_through_the_server_takes_effect_live(
    plain_server: Server,
    installed: Path,
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
    assert bad.returncode == 1 and "prefix" in bad.stderr, bad.stderr  # as without --server
    removed = _acp(plain_server, installed, "config", "unset", "echo", "prefix")
    assert removed.returncode == 0, removed.stderr
    assert (
        not _acp(plain_server, installed, "send", "--type", "echo", "hi")
        .stdout.strip()
        .endswith("live> hi")
    )
