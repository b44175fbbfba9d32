"""Installing plugins into a running server from a real package index on 127.0.0.1.

The index is a static PEP 503 folder served over HTTP (``python -m http.server``)
holding wheels this test builds: ``acp-live`` 1.0.0, 1.1.0 and 2.0.0 (2.0.0 asks for
a permission the host does not grant), ``acp-live-bad`` 1.0.0 (the same), and
``acp-live-broken`` 1.0.0, a file that is not a wheel at all.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_server import ADMIN_TOKEN, Server, _start, serving_folder
from websockets.asyncio.client import connect

from acp_plugins.testing.packaging import write_wheel

PLUGIN = """
from acp_plugins import Plugin, hookimpl


class Live(Plugin):
    @hookimpl
    def get_supported_message_types(self):
        return ["live"]

    @hookimpl
    def can_handle(self, message):
        return 1.0

    @hookimpl
    def handle_message(self, message, context):
        return f"live {self.version}"
"""


def _wheel(folder: Path, dist: str, plugin_id: str, version: str, permissions: list[str]) -> None:
    package = dist.replace("-", "_")
    manifest = {
        "manifest_version": "1.0", "plugin_id": plugin_id, "name": "Live", "version": version,
        "dependencies": {"core": "^2.0.0"}, "interfaces": ["IMessageHandler"],
        "permissions": ["read-messaging", *permissions],
    }  # fmt: skip
    files = {
        f"{package}/__init__.py": b"",
        f"{package}/plugin.py": PLUGIN.encode(),
        f"{package}/manifest.json": json.dumps(manifest).encode(),
    }
    write_wheel(folder, dist_name=dist, package=package, version=version,
                entry_point=f"{plugin_id} = {package}.plugin:Live", files=files)  # fmt: skip


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("index")
    files = root / "files"
    files.mkdir()
    _wheel(files, "acp-live", "live", "1.0.0", [])
    _wheel(files, "acp-live", "live", "1.1.0", [])
    _wheel(files, "acp-live", "live", "2.0.0", ["execute-commands"])
    _wheel(files, "acp-live-bad", "live-bad", "1.0.0", ["execute-commands"])
    (files / "acp_live_broken-1.0.0-py3-none-any.whl").write_bytes(b"not a zip archive")
    for project in ("acp-live", "acp-live-bad", "acp-live-broken"):
        page = root / "simple" / project
        page.mkdir(parents=True)
        links = "".join(
            f'<a href="../../files/{w.name}">{w.name}</a>\n'
            for w in sorted(files.glob(project.replace("-", "_") + "-[0-9]*.whl"))
        )
        (page / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
    with serving_folder(root, "simple/acp-live/") as url:
        yield f"{url}simple"


@pytest.fixture(scope="module")
def live_server(index: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("live")
    target, data = base / "plugins", base / "data"
    target.mkdir()
    target.chmod(0o755)
    running = _start(target, data, trust=(), ACP_SERVER_TOKEN=ADMIN_TOKEN,
                     ACP_HOST_SERVER__INDEXES=json.dumps([index]))  # fmt: skip
    yield running
    running.process.send_signal(signal.SIGTERM)
    running.process.wait(timeout=60)


def _target(server: Server) -> Path:
    return server.data.parent / "plugins"


def _say(client: httpx.Client) -> str:
    answer = client.post("/api/v1/messages", json={"type": "live", "content": "?"}).json()
    return str(answer["response"]["content"])


def test_install_upgrade_refused_upgrade_and_uninstall_while_running(
    live_server: Server, index: str
) -> None:
    client = live_server.client()
    client.timeout = httpx.Timeout(120)
    assert client.get("/api/v1/plugins").json() == []

    async def install_watching() -> tuple[httpx.Response, list[dict[str, Any]]]:
        uri = live_server.url.replace("http", "ws") + f"/api/v1/events?token={ADMIN_TOKEN}"
        async with connect(uri) as stream:
            await stream.recv()  # the snapshot
            done = await asyncio.to_thread(
                client.post, "/api/v1/plugins/live/install",
                json={"version": "~1.0.0", "distribution": "acp-live"},
            )  # fmt: skip
            seen = []
            while not any(e["topic"] == "plugin:installed" for e in seen):
                seen.append(json.loads(await asyncio.wait_for(stream.recv(), 30)))
            return done, seen

    done, seen = asyncio.run(install_watching())
    assert done.status_code == 200, done.text
    installed = done.json()
    assert (installed["version"], installed["state"], installed["index_url"]) == (
        "1.0.0", "active", index,
    )  # fmt: skip
    assert "Successfully installed acp-live-1.0.0" in installed["pip_output"]
    event = next(e for e in seen if e["topic"] == "plugin:installed")
    assert event["data"] == {"plugin_id": "live", "version": "1.0.0", "status": "active"}
    assert _say(client) == "live 1.0.0"

    # an installed plugin is upgraded from its own distribution (not one named like its id)
    upgraded = client.post("/api/v1/plugins/live/install", json={"version": "^1.0"})
    assert upgraded.status_code == 200, upgraded.text
    assert (upgraded.json()["distribution"], upgraded.json()["version"]) == ("acp-live", "1.1.0")
    assert [r["outcome"] for r in upgraded.json()["rescan"]["reloads"]] == ["upgraded"]
    assert _say(client) == "live 1.1.0"

    refused = client.post("/api/v1/plugins/live/install",
                          json={"version": "^2", "distribution": "acp-live"})  # fmt: skip
    assert refused.status_code == 400
    assert "1.1.0 was put back" in refused.json()["detail"]
    assert "execute-commands" in refused.json()["detail"]
    assert _say(client) == "live 1.1.0"
    versions = sorted(p.name for p in _target(live_server).glob("acp_live-*.dist-info"))
    assert versions == ["acp_live-1.1.0.dist-info"]

    audit = client.get("/api/v1/audit", params={"action": "install"}).json()["entries"]
    assert [(e["outcome"], e["detail"].partition(": ")[0]) for e in audit] == [
        ("ok", f"acp-live 1.0.0 from {index}"), ("ok", f"acp-live 1.1.0 from {index}"),
        ("refused", "acp-live 2.0.0"),
    ]  # fmt: skip

    gone = client.delete("/api/v1/plugins/live")
    assert gone.status_code == 200, gone.text
    assert gone.json()["rescan"]["removed"] == ["live"]
    assert client.get("/api/v1/plugins").json() == []
    assert list(_target(live_server).iterdir()) == []


def test_a_plugin_that_cannot_run_is_not_left_installed(live_server: Server) -> None:
    client = live_server.client()
    client.timeout = httpx.Timeout(120)
    refused = client.post("/api/v1/plugins/live-bad/install",
                          json={"distribution": "acp-live-bad"})  # fmt: skip
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert "it was removed again" in detail and "execute-commands" in detail
    assert client.get("/api/v1/plugins").json() == []
    assert not list(_target(live_server).glob("acp_live_bad*"))


def test_another_plugin_s_distribution_is_not_installed_under_a_new_id(
    live_server: Server,
) -> None:
    client = live_server.client()
    client.timeout = httpx.Timeout(120)
    done = client.post("/api/v1/plugins/live/install",
                       json={"distribution": "acp-live", "version": "~1.1"})  # fmt: skip
    assert done.status_code == 200, done.text
    try:
        # 'other' is not in acp-live: undoing that install would remove live itself
        taken = client.post("/api/v1/plugins/other/install", json={"distribution": "acp-live"})
        assert taken.status_code == 400, taken.text
        assert taken.json()["detail"].startswith(
            "acp-live is installed already (the distribution of live)"
        )
        assert _say(client) == "live 1.1.0"
        assert [p["plugin_id"] for p in client.get("/api/v1/plugins").json()] == ["live"]
        assert list(_target(live_server).glob("acp_live-*.dist-info"))
    finally:
        assert client.delete("/api/v1/plugins/live").status_code == 200


def test_bad_installs_are_clear_4xx(live_server: Server) -> None:
    client = live_server.client()
    client.timeout = httpx.Timeout(120)
    elsewhere = {"distribution": "acp-live", "index_url": "https://pypi.org/simple"}
    not_allowed = client.post("/api/v1/plugins/live/install", json=elsewhere)
    assert not_allowed.status_code == 400
    assert "is not one the host allows" in not_allowed.json()["detail"]
    no_version = client.post("/api/v1/plugins/live/install",
                             json={"version": "^9", "distribution": "acp-live"})  # fmt: skip
    assert no_version.status_code == 404
    assert "it offers: 1.0.0, 1.1.0, 2.0.0" in no_version.json()["detail"]
    bad_range = client.post("/api/v1/plugins/live/install",
                            json={"version": "^^1", "distribution": "acp-live"})  # fmt: skip
    assert bad_range.status_code == 400
    unknown = client.post("/api/v1/plugins/nothing/install", json={})
    assert unknown.status_code == 404 and "no distribution 'nothing'" in unknown.json()["detail"]
    assert client.delete("/api/v1/plugins/nothing").status_code == 404


def test_a_wheel_pip_cannot_install_is_a_502_with_pip_s_output_and_audited(
    live_server: Server, index: str
) -> None:
    client = live_server.client()
    client.timeout = httpx.Timeout(120)
    failed = client.post("/api/v1/plugins/live-broken/install",
                         json={"distribution": "acp-live-broken"})  # fmt: skip
    assert failed.status_code == 502
    problem = failed.json()
    assert problem["detail"] == f"pip could not install acp-live-broken 1.0.0 from {index}"
    assert "acp_live_broken-1.0.0-py3-none-any.whl" in problem["pip_output"]
    audit = client.get("/api/v1/audit", params={"action": "install", "plugin": "live-broken"})
    assert [(e["outcome"], e["detail"]) for e in audit.json()["entries"]] == [
        ("failed", "acp-live-broken 1.0.0: pip failed")
    ]
    assert client.get("/api/v1/plugins").json() == []


def test_the_install_target_setting_picks_the_folder_and_must_be_searched(
    index: str, tmp_path: Path
) -> None:
    first, second, elsewhere = tmp_path / "first", tmp_path / "second", tmp_path / "elsewhere"
    for folder in (first, second, elsewhere):
        folder.mkdir()
    running = _start([first, second], tmp_path / "data", trust=(), ACP_SERVER_TOKEN=ADMIN_TOKEN,
                     ACP_HOST_SERVER__INDEXES=json.dumps([index]),
                     ACP_HOST_SERVER__INSTALL_TARGET=str(second))  # fmt: skip
    try:
        client = running.client()
        client.timeout = httpx.Timeout(120)
        done = client.post("/api/v1/plugins/live/install", json={"distribution": "acp-live",
                                                                  "version": "~1.0.0"})  # fmt: skip
        assert done.status_code == 200, done.text
        assert done.json()["target"] == str(second)
        assert [p.name for p in second.glob("acp_live-*.dist-info")] == ["acp_live-1.0.0.dist-info"]
        assert list(first.iterdir()) == []
        assert _say(client) == "live 1.0.0"
    finally:
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(timeout=60)
    # a target the host does not search: refused before pip runs, nothing installed
    running = _start(first, tmp_path / "data2", trust=(), ACP_SERVER_TOKEN=ADMIN_TOKEN,
                     ACP_HOST_SERVER__INDEXES=json.dumps([index]),
                     ACP_HOST_SERVER__INSTALL_TARGET=str(elsewhere))  # fmt: skip
    try:
        refused = running.client().post("/api/v1/plugins/live/install",
                                        json={"distribution": "acp-live"})  # fmt: skip
        assert refused.status_code == 400
        assert (
            f"server.install_target {elsewhere} is not a folder the host searches"
            in (refused.json()["detail"])
        )
        assert list(elsewhere.iterdir()) == []
    finally:
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(timeout=60)


@pytest.mark.parametrize("distribution", ["pydantic", "acp-plugins"])
def test_a_package_of_the_host_s_own_environment_is_refused_before_pip_runs(
    distribution: str, tmp_path: Path
) -> None:
    from acp_plugins import PluginHost
    from acp_plugins.config.settings import ServerSettings
    from acp_plugins.server.install import PackageInstaller
    from acp_plugins.server.problems import Problem

    host = PluginHost(data_root=tmp_path / "data")  # its own environment: no plugin_path
    installer = PackageInstaller(host, ServerSettings(indexes=["http://127.0.0.1:9/simple"]))
    assert installer.target is None
    with pytest.raises(Problem) as refused:
        asyncio.run(installer.install("anything", version="*", index_url=None,
                                      distribution=distribution))  # fmt: skip
    assert refused.value.status == 400
    assert refused.value.detail.startswith(f"{distribution} is installed already (not a plugin's)")
