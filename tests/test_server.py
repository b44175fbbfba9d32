"""The management server, run as ``acp-plugins serve`` on 127.0.0.1, with real clients.

One server per module (the sample plugins and the gauge fixture installed), driven
over HTTP with httpx and over WebSocket with websockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as connect_sync

from acp_plugins.testing.packaging import install_wheels, write_wheel
from conftest import fixture_plugin, sample

ADMIN_TOKEN = "admin-token-for-tests"
READ_TOKEN = "read-token-for-tests"

#: Every route of the API and the scope it needs (None: none). A new route fails
#: test_every_route_is_listed_here until it is listed with its scope.
ROUTES: dict[tuple[str, str], str | None] = {
    ("GET", "/api/v1/health"): None,
    ("GET", "/api/v1/plugins"): "read",
    ("GET", "/api/v1/plugins/{plugin_id}"): "read",
    ("GET", "/api/v1/plugins/{plugin_id}/status"): "read",
    ("GET", "/api/v1/plugins/{plugin_id}/health"): "read",
    ("GET", "/api/v1/plugins/{plugin_id}/config"): "read",
    ("PUT", "/api/v1/plugins/{plugin_id}/config"): "admin",
    ("GET", "/api/v1/plugins/{plugin_id}/config/schema"): "read",
    ("DELETE", "/api/v1/plugins/{plugin_id}/config/{key}"): "admin",
    ("POST", "/api/v1/plugins/{plugin_id}/suspend"): "admin",
    ("POST", "/api/v1/plugins/{plugin_id}/resume"): "admin",
    ("POST", "/api/v1/plugins/{plugin_id}/reload"): "admin",
    ("POST", "/api/v1/plugins/{plugin_id}/install"): "admin",
    ("DELETE", "/api/v1/plugins/{plugin_id}"): "admin",
    ("POST", "/api/v1/messages"): "admin",
    ("GET", "/api/v1/commands"): "read",
    ("GET", "/api/v1/commands/{name}"): "read",
    ("POST", "/api/v1/commands/{name}"): "admin",
    ("GET", "/api/v1/sources"): "read",
    ("POST", "/api/v1/sources/{source}/query"): "read",
    ("GET", "/api/v1/reports"): "read",
    ("GET", "/api/v1/analytics/metrics"): "read",
    ("GET", "/api/v1/telemetry"): "read",
    ("GET", "/api/v1/audit"): "read",
    ("GET", "/metrics"): "read",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving_folder(root: Path, probe: str = "") -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 over ``root`` (a package index, a page of links)."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url + probe, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    data: Path

    def client(self, token: str | None = ADMIN_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def wait_until_up(url: str, process: subprocess.Popen[Any] | None = None) -> None:
    """Wait (up to 60 s) until GET ``url`` answers 200, or ``process`` exits."""
    deadline = time.monotonic() + 60
    while True:
        try:
            answer = httpx.get(url)
            json_body = answer.headers.get("content-type", "").startswith("application/json")
            if answer.status_code == 200 and (not json_body or answer.json()["status"] == "ok"):
                return
        except (httpx.TransportError, ValueError):
            pass
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited: {process.communicate()}")
        if time.monotonic() > deadline:
            if process is not None:
                process.kill()
            raise AssertionError(f"{url} did not come up")
        time.sleep(0.1)


def _start(
    plugins: Path | list[Path], data: Path, *, trust: tuple[str, ...] = ("echo",), **env: str
) -> Server:
    port = _free_port()
    trusted = [arg for plugin_id in trust for arg in ("--trust", plugin_id)]
    folders = plugins if isinstance(plugins, list) else [plugins]
    searched = [arg for folder in folders for arg in ("--plugin-path", str(folder))]
    process = subprocess.Popen(
        [sys.executable, "-m", "acp_plugins", "serve", "--port", str(port), "--json",
         *searched, "--data-dir", str(data), *trusted],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=data.parent,
        env={**os.environ, **env},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/api/v1/health", process)
    return Server(url, process, data)


@pytest.fixture(scope="module")
def installed(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(sample("acp-echo"), sample("acp-tools"), fixture_plugin("acp-fx-gauge"))


@pytest.fixture(scope="module")
def server(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("server") / "data"
    running = _start(installed, data, ACP_SERVER_TOKEN=ADMIN_TOKEN,
                     ACP_SERVER_READ_TOKEN=READ_TOKEN)  # fmt: skip
    yield running
    running.process.send_signal(signal.SIGTERM)
    running.process.wait(timeout=60)


def _example_path(path: str) -> str:
    return (path.replace("{plugin_id}", "gauge").replace("{key}", "prefix")
            .replace("{name}", "tick").replace("{source}", "nothing"))  # fmt: skip


# -- the schema and authentication --------------------------------------------------


def test_every_route_is_listed_here_with_its_models(server: Server) -> None:
    schema = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    found = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    assert found == set(ROUTES)
    models = schema["components"]["schemas"]
    expected = (
        "PluginView",
        "PluginDetail",
        "CommandInfo",
        "CommandAnswer",
        "PluginStatus",
        "PluginHealth",
        "ReloadOutcome",
        "ConfigView",
        "ConfigChange",
        "Message",
        "RoutedAnswer",
        "TelemetryReport",
        "AuditPage",
    )
    for name in expected:
        assert name in models, name


@pytest.mark.parametrize(("method", "path"), sorted(k for k, v in ROUTES.items() if v))
def test_no_token_is_401_and_a_read_token_on_an_admin_route_is_403(
    server: Server, method: str, path: str
) -> None:
    url = _example_path(path)
    anonymous = server.client(token=None).request(method, url)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.headers["www-authenticate"] == "Bearer"
    wrong = server.client(token="not-" + ADMIN_TOKEN).request(method, url)
    assert wrong.status_code == 401
    read = server.client(token=READ_TOKEN).request(method, url)
    if ROUTES[(method, path)] == "admin":
        assert read.status_code == 403
        assert read.json()["detail"] == "this needs the admin token; the read token may only read"
    else:
        assert read.status_code not in (401, 403), read.text


def test_the_health_route_answers_without_a_token(server: Server) -> None:
    answer = server.client(token=None).get("/api/v1/health").json()
    listed = server.client().get("/api/v1/plugins").json()
    active = [p for p in listed if p["state"] == "active"]
    assert answer["status"] == "ok" and answer["plugins"] == 4 and answer["active"] == len(active)
    assert active  # gauge and gauge-user start with the host; the samples on first use


# -- plugins --------------------------------------------------------------------------


def test_plugins_list_detail_status_and_health(server: Server) -> None:
    client = server.client(READ_TOKEN)
    listed = client.get("/api/v1/plugins").json()
    assert [p["plugin_id"] for p in listed] == ["echo", "gauge", "gauge-user", "tools"]
    detail = client.get("/api/v1/plugins/echo").json()
    assert detail["state"] == "active" and detail["isolation"]["mode"] == "in-process"
    status = client.get("/api/v1/plugins/gauge/status").json()
    assert (status["state"], status["mode"]) == ("active", "isolated")
    health = client.get("/api/v1/plugins/gauge/health").json()
    assert health["status"] == "healthy"


def test_an_unknown_plugin_is_a_404_problem(server: Server) -> None:
    routes = [("GET", "/api/v1/plugins/nobody"), ("POST", "/api/v1/plugins/nobody/reload"),
              ("GET", "/api/v1/plugins/nobody/health")]  # fmt: skip
    for method, path in routes:
        answer = server.client().request(method, path)
        assert answer.status_code == 404, (path, answer.text)
        problem = answer.json()
        assert problem["status"] == 404 and problem["title"] == "Not found"
        assert problem["detail"].startswith("no plugin 'nobody' is installed (installed: echo,")
        assert problem["plugin_id"] == "nobody"


def test_a_bad_body_is_422_and_a_bad_config_value_is_400_and_changes_nothing(
    server: Server,
) -> None:
    client = server.client()
    bad_body = client.put("/api/v1/plugins/echo/config", json={"value": "x"})
    assert bad_body.status_code == 422
    assert "key" in bad_body.json()["detail"]
    before = client.get("/api/v1/plugins/echo/config").json()
    bad_value = client.put("/api/v1/plugins/echo/config", json={"key": "prefix", "value": 12})
    assert bad_value.status_code == 400, bad_value.text
    assert "prefix" in bad_value.json()["detail"]
    assert client.get("/api/v1/plugins/echo/config").json() == before
    not_json = client.post(
        "/api/v1/messages", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422


def test_a_report_format_outside_the_schema_is_422_and_no_plugin_is_asked(
    server: Server,
) -> None:
    answer = server.client(READ_TOKEN).get("/api/v1/reports", params={"format": "xml"})
    assert answer.status_code == 422, answer.text
    assert "'json', 'markdown' or 'csv'" in answer.json()["detail"]


def test_a_method_a_path_does_not_answer_is_405_naming_every_method_it_does(
    server: Server,
) -> None:
    for path, allowed in (("/api/v1/plugins/echo", "DELETE, GET"),
                          ("/api/v1/plugins/echo/config", "GET, PUT"),
                          ("/api/v1/commands/add", "GET, POST")):  # fmt: skip
        answer = server.client().request("PATCH", path)
        assert answer.status_code == 405, answer.text
        assert answer.headers["allow"] == allowed
        assert answer.headers["content-type"] == "application/problem+json"


def test_every_error_a_route_answers_is_documented_as_a_problem(server: Server) -> None:
    schema = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    problem = schema["components"]["schemas"]["ProblemDetails"]
    assert {"title", "status", "detail"} <= set(problem["required"])
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if (method.upper(), path) == ("GET", "/api/v1/health"):
                continue
            errors = {code for code in operation["responses"] if code >= "400"}
            assert {"401", "503"} <= errors, (method, path)
            if ROUTES[(method.upper(), path)] == "admin":
                assert "403" in errors, (method, path)
            for code in errors:
                content = operation["responses"][code]["content"]
                assert list(content) == ["application/problem+json"], (method, path, code)


def test_a_config_change_reaches_the_plugin_and_the_event_stream(server: Server) -> None:
    client = server.client()

    async def scenario() -> list[dict[str, Any]]:
        uri = server.url.replace("http", "ws") + f"/api/v1/events?token={READ_TOKEN}"
        async with connect(uri) as stream:
            first = json.loads(await stream.recv())
            assert first["type"] == "snapshot"
            assert {p["plugin_id"]: p["state"] for p in first["plugins"]}["echo"] == "active"
            changed = await asyncio.to_thread(
                client.put, "/api/v1/plugins/echo/config", json={"key": "prefix", "value": "api> "}
            )
            assert changed.status_code == 200, changed.text
            assert changed.json()["values"]["prefix"] == "api> "
            assert changed.json()["origins"]["prefix"]["layer"] == "runtime"
            return [json.loads(await asyncio.wait_for(stream.recv(), 10))]

    (event,) = asyncio.run(scenario())
    assert event["type"] == "event" and event["topic"] == "plugin:configured"
    assert event["data"] == {"plugin_id": "echo", "key": "prefix", "action": "set"}
    answer = client.post("/api/v1/messages", json={"type": "echo", "content": "hi"}).json()
    assert answer["plugin_id"] == "echo" and answer["response"]["content"] == "api> hi"
    reset = client.delete("/api/v1/plugins/echo/config/prefix")
    assert reset.status_code == 200
    assert reset.json()["origins"]["prefix"]["layer"] != "runtime"


def test_suspend_and_resume_show_in_the_status_and_the_event_stream(server: Server) -> None:
    client = server.client()

    async def scenario() -> list[str]:
        uri = server.url.replace("http", "ws") + "/api/v1/events?topic=plugin:*"
        async with connect(
            uri, additional_headers={"Authorization": f"Bearer {READ_TOKEN}"}
        ) as stream:
            await stream.recv()  # the snapshot
            suspended = await asyncio.to_thread(client.post, "/api/v1/plugins/tools/suspend")
            assert suspended.json()["state"] == "suspended"
            resumed = await asyncio.to_thread(client.post, "/api/v1/plugins/tools/resume")
            assert resumed.json()["state"] == "active"
            topics = []
            while len(topics) < 2:
                topics.append(json.loads(await asyncio.wait_for(stream.recv(), 10))["topic"])
            return topics

    assert asyncio.run(scenario()) == ["plugin:deactivated", "plugin:activated"]
    again = client.post("/api/v1/plugins/tools/resume")
    assert again.status_code == 409 and again.json()["plugin_id"] == "tools"
    # both are in the audit log, and the log can be filtered by them
    audit = client.get("/api/v1/audit", params={"plugin": "tools", "action": ["suspend", "resume"]})
    assert [(e["action"], e["outcome"]) for e in audit.json()["entries"]][-2:] == [
        ("suspend", "ok"), ("resume", "ok"),
    ]  # fmt: skip


def test_the_event_stream_refuses_a_missing_token_and_a_bad_topic(server: Server) -> None:
    async def open_stream(query: str) -> Any:
        uri = server.url.replace("http", "ws") + "/api/v1/events" + query
        async with connect(uri) as stream:
            return await stream.recv()

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(open_stream(""))
    assert refused.value.response.status_code == 403
    # a bad pattern is told to the client: close code 1007 and why, cut to fit the frame
    for topic in ("bad..topic", "é" * 300):
        with pytest.raises(ConnectionClosed) as closed:
            asyncio.run(open_stream(f"?token={READ_TOKEN}&topic={topic}"))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
        assert closed.value.rcvd.reason.startswith(f"topic '{topic[:5]}"), closed.value.rcvd


def test_commands_sources_and_messages(server: Server) -> None:
    client = server.client()
    names = {c["name"] for c in client.get("/api/v1/commands").json()}
    assert {"add", "upper", "tick"} <= names
    added = client.post("/api/v1/commands/add", json={"args": ["2", "40"]}).json()
    assert added["success"] is True and added["output"] == "42"
    bad_args = client.post("/api/v1/commands/add", json={"args": ["two"]})
    assert bad_args.status_code == 400 and bad_args.json()["kind"] == "CommandUsageError"
    unknown = client.post("/api/v1/commands/nope")
    assert unknown.status_code == 404
    failed = client.post("/api/v1/messages", json={"type": "gauge", "content": "fail"}).json()
    assert failed["handled"] is False and "told to fail" in failed["errors"]["gauge"]
    assert client.get("/api/v1/sources").json() == []
    assert client.post("/api/v1/sources/nothing/query", json={}).status_code == 404


def test_reload_through_the_api_and_a_second_one_at_once_is_409(server: Server) -> None:
    client = server.client()
    done = client.post("/api/v1/plugins/gauge/reload").json()
    assert done["ok"] is True and done["outcome"] == "reloaded"

    async def twice() -> list[int]:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=server.url, timeout=60, headers=admin) as c:
            answers = await asyncio.gather(
                c.post("/api/v1/plugins/gauge/reload"), c.post("/api/v1/plugins/gauge/reload")
            )
            return sorted(a.status_code for a in answers)

    assert asyncio.run(twice()) == [200, 409]


def test_messages_sent_while_plugins_reload_through_the_api_are_all_answered(
    server: Server,
) -> None:
    # eight clients send without pause while echo (in-process) and gauge (a worker) are
    # reloaded through the API, twice each: every message gets its plugin's answer
    async def load() -> tuple[list[tuple[str, int, dict[str, Any]]], list[dict[str, Any]]]:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=server.url, timeout=60, headers=admin) as c:
            stop = asyncio.Event()
            answers: list[tuple[str, int, dict[str, Any]]] = []

            async def send(kind: str) -> None:
                n = 0
                while not stop.is_set():
                    sent = {"type": kind, "content": f"{kind} {n}"}
                    answer = await c.post("/api/v1/messages", json=sent)
                    answers.append((kind, answer.status_code, answer.json()))
                    n += 1

            senders = [asyncio.ensure_future(send(k)) for k in ("echo", "gauge") * 4]
            await asyncio.sleep(0.3)
            outcomes = []
            for plugin_id in ("echo", "gauge", "echo", "gauge"):
                outcomes.append((await c.post(f"/api/v1/plugins/{plugin_id}/reload")).json())
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*senders)
            return answers, outcomes

    before = {
        p["plugin_id"]: p["generation"] for p in server.client().get("/api/v1/plugins").json()
    }
    answers, outcomes = asyncio.run(load())
    assert [(o["plugin_id"], o["outcome"], o["ok"]) for o in outcomes] == [
        ("echo", "reloaded", True), ("gauge", "reloaded", True),
    ] * 2  # fmt: skip
    assert len(answers) > 100
    lost = [a for a in answers if a[1] != 200 or a[2]["plugin_id"] != a[0] or a[2]["errors"]]
    assert lost == []
    after = {p["plugin_id"]: p["generation"] for p in server.client().get("/api/v1/plugins").json()}
    assert (after["echo"] - before["echo"], after["gauge"] - before["gauge"]) == (2, 2)


def test_telemetry_audit_and_metrics(server: Server) -> None:
    client = server.client(READ_TOKEN)
    server.client().post("/api/v1/messages", json={"type": "gauge", "content": "ok"})
    report = client.get("/api/v1/telemetry", params={"since_seconds": 3600}).json()
    assert any(h["plugin_id"] == "gauge" and h["hook"] == "handle_message" for h in report["hooks"])
    page = client.get("/api/v1/audit", params={"limit": 2, "action": "grant"}).json()
    assert (
        page["limit"] == 2 and len(page["entries"]) <= 2 and page["total"] >= len(page["entries"])
    )
    assert all(e["action"] == "grant" for e in page["entries"])
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'acp_plugin_up{plugin="gauge"} 1.0' in metrics.text
    too_long = client.get("/api/v1/telemetry", params={"since_seconds": -1})
    assert too_long.status_code == 422


# -- starting and stopping ------------------------------------------------------------


def test_a_token_file_is_made_0600_whatever_was_left_beside_it(tmp_path: Path) -> None:
    from acp_plugins.server.tokens import ServerTokens

    data = tmp_path / "data"
    data.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("")
    # what an earlier writer with this pid, or someone else, could have left
    planted = data / f"server.token.{os.getpid()}.tmp"
    planted.symlink_to(elsewhere)
    (data / f"server.read-token.{os.getpid()}.tmp").write_text("")
    tokens = ServerTokens.load(data, environ={})
    for scope, origin in tokens.origins.items():
        made = Path(origin)
        assert made.parent == data and (made.stat().st_mode & 0o777) == 0o600, scope
        assert made.read_text().strip() == getattr(tokens, scope)
    assert elsewhere.read_text() == ""  # not written through the link
    assert sorted(p.name for p in data.iterdir() if p.name.endswith(".tmp")) == sorted(
        [planted.name, f"server.read-token.{os.getpid()}.tmp"]
    )


def test_tokens_are_generated_0600_and_sigterm_stops_cleanly(
    installed: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACP_SERVER_")}
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "acp_plugins", "serve", "--port", str(port), "--json",
         "--plugin-path", str(installed), "--data-dir", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    started = json.loads(process.stdout.readline())
    assert started["serving"] == f"http://127.0.0.1:{port}"
    token_file = data / "server.token"
    assert started["tokens"]["admin"] == str(token_file)
    assert (token_file.stat().st_mode & 0o777) == 0o600
    token = token_file.read_text().strip()
    url = started["serving"]
    wait_until_up(f"{url}/api/v1/health", process)
    admin = {"Authorization": f"Bearer {token}"}
    listed = httpx.get(f"{url}/api/v1/plugins", headers=admin).json()
    # the samples wait for their first use; gauge and gauge-user start with the host
    running = [p["isolation"] for p in listed if p["isolation"]]
    workers = [i["pid"] for i in running if i["mode"] == "isolated"]
    assert len(workers) >= 2 and all(_alive(pid) for pid in workers)
    # an open event stream does not hold the stop back: it is closed ("going away")
    with connect_sync(f"ws://127.0.0.1:{port}/api/v1/events", additional_headers=admin) as stream:
        assert json.loads(stream.recv(timeout=10))["type"] == "snapshot"
        asked = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        assert time.monotonic() - asked < 10
        with pytest.raises(ConnectionClosed):
            stream.recv(timeout=10)
    assert process.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == {"stopped": url}
    assert "Traceback" not in err
    assert not [pid for pid in workers if _alive(pid)]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/api/v1/health")


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (gone, but not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_port_in_use_is_one_line_and_exit_1(installed: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "acp_plugins", "serve", "--port", str(port),
             "--plugin-path", str(installed), "--data-dir", str(tmp_path / "data")],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"error: could not serve on http://127.0.0.1:{port}: ")
    assert "Address already in use" in done.stderr and len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_a_metrics_port_serves_metrics_alone_without_a_token(
    installed: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    metrics_port = _free_port()
    running = _start(installed, data, ACP_SERVER_TOKEN=ADMIN_TOKEN,
                     ACP_HOST_SERVER__METRICS_PORT=str(metrics_port))  # fmt: skip
    try:
        scraper = f"http://127.0.0.1:{metrics_port}"
        scraped = httpx.get(f"{scraper}/metrics")
        assert scraped.status_code == 200
        assert 'acp_plugin_up{plugin="gauge"} 1.0' in scraped.text
        # nothing else on that port, not even with a token; the API's port is as it was
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert httpx.get(f"{scraper}/api/v1/plugins", headers=admin).status_code == 404
        assert httpx.get(f"{scraper}/", headers=admin).status_code == 404
        assert httpx.post(f"{scraper}/metrics").status_code == 405
        assert httpx.get(f"{running.url}/metrics").status_code == 401
        with pytest.raises(InvalidStatus):
            asyncio.run(_handshake(f"ws://127.0.0.1:{metrics_port}/api/v1/events"))
        assert httpx.get(f"{running.url}/metrics", headers=admin).status_code == 200
    finally:
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(timeout=60)
    # the same port as the API's, or one in use: one line, exit 1
    api_port = _free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        in_use = taken.getsockname()[1]
        for port, said in ((api_port, "is the port the API serves on"),
                           (in_use, "choose another server.metrics_port")):  # fmt: skip
            done = subprocess.run(
                [sys.executable, "-m", "acp_plugins", "serve", "--port", str(api_port),
                 "--plugin-path", str(installed), "--data-dir", str(data)],
                capture_output=True, text=True, timeout=60, cwd=tmp_path,
                env={**os.environ, "ACP_HOST_SERVER__METRICS_PORT": str(port)},
            )  # fmt: skip
            assert done.returncode == 1 and said in done.stderr, done.stderr
            assert len(done.stderr.splitlines()) == 1


async def _handshake(url: str) -> None:
    async with connect(url):
        pass


def test_the_listening_socket_says_it_is_tcp_so_replies_are_not_held_back() -> None:
    # asyncio sets TCP_NODELAY on accepted sockets only when the listening one says
    # IPPROTO_TCP; without it every reply waited 40 ms for Nagle and delayed ACKs
    from acp_plugins.cli.serve_command import _bind

    listening = _bind("127.0.0.1", 0, "http://127.0.0.1:0")
    try:
        assert listening.proto == socket.IPPROTO_TCP
    finally:
        listening.close()


SLOW_START = """
import asyncio
from acp_plugins import Plugin, hookimpl


class SlowStart(Plugin):
    @hookimpl
    async def activate(self):
        await asyncio.sleep(3)  # the host is not up until this is done

    @hookimpl
    def get_supported_message_types(self):
        return ["slow"]

    @hookimpl
    def can_handle(self, message):
        return 1.0

    @hookimpl
    def handle_message(self, message, context):
        return "up"
"""


def test_until_the_host_is_up_every_route_but_health_is_503_with_retry_after(
    tmp_path: Path,
) -> None:
    manifest = {"manifest_version": "1.0", "plugin_id": "slow-start", "name": "Slow start",
                "version": "1.0.0", "dependencies": {"core": "^2.0.0"},
                "interfaces": ["IMessageHandler"], "permissions": ["read-messaging"]}  # fmt: skip
    files = {"acp_slow_start/__init__.py": b"",
             "acp_slow_start/plugin.py": SLOW_START.encode(),
             "acp_slow_start/manifest.json": json.dumps(manifest).encode()}  # fmt: skip
    (tmp_path / "wheels").mkdir()
    wheel = write_wheel(tmp_path / "wheels", dist_name="acp-slow-start", package="acp_slow_start",
                        version="1.0.0", entry_point="slow-start = acp_slow_start.plugin:SlowStart",
                        files=files)  # fmt: skip
    plugins = install_wheels([wheel], tmp_path / "plugins")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "acp_plugins", "serve", "--port", str(port), "--plugin-path",
         str(plugins), "--data-dir", str(tmp_path / "data"), "--trust", "slow-start"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "ACP_SERVER_TOKEN": ADMIN_TOKEN},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # the server answers before its host is up
            with contextlib.suppress(httpx.TransportError):
                health = httpx.get(f"{url}/api/v1/health")
                break
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert health.json()["status"] == "starting"
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        for method, path in (("GET", "/api/v1/plugins"), ("POST", "/api/v1/messages"),
                             ("GET", "/metrics")):  # fmt: skip
            early = httpx.request(method, url + path, headers=admin, json={"type": "slow"})
            assert early.status_code == 503, (path, early.text)
            assert early.headers["retry-after"] == "1"
            assert early.headers["content-type"] == "application/problem+json"
            assert "starting" in early.json()["detail"]
        with (
            pytest.raises(ConnectionClosed) as closed,
            connect_sync(f"ws://127.0.0.1:{port}/api/v1/events?token={ADMIN_TOKEN}") as stream,
        ):
            stream.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        wait_until_up(f"{url}/api/v1/health", process)
        answer = httpx.post(f"{url}/api/v1/messages", headers=admin,
                            json={"type": "slow", "content": "?"})  # fmt: skip
        assert answer.status_code == 200 and answer.json()["response"]["content"] == "up"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
