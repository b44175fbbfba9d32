"""Configuration in a running host: layers applied at start, runtime overrides, refusals.

Plugins are the samples and the ``vault`` fixture (nested, typed and secret settings).
Environment variables are given to the host as a mapping, config files are real TOML
files, runtime overrides a real JSON file under the host's data directory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from acp_plugins import (
    ConfigError,
    ConfigSources,
    Layer,
    Message,
    OverrideStore,
    PluginHost,
    PluginState,
)
from acp_plugins.loading.trust import TRUST_ALL, IsolationPolicy
from conftest import SAMPLE_PROJECTS, fixture_plugin, sample

Run = Callable[..., Any]


@pytest.fixture(scope="module")
def plugins_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(
        fixture_plugin("acp-fx-settings"), *(sample(name) for name in SAMPLE_PROJECTS)
    )


_STARTED: list[PluginHost] = []


@pytest.fixture(params=["in-process", "isolated"])
def isolation(request: pytest.FixtureRequest, run: Run) -> Iterator[IsolationPolicy]:
    """Every test runs twice: the plugins in the host's process, then each in a worker."""
    yield TRUST_ALL if request.param == "in-process" else IsolationPolicy()
    while _STARTED:  # stop what the test started, workers included
        run(_STARTED.pop().stop())


def make_host(
    plugins_dir: Path,
    tmp_path: Path,
    isolation: IsolationPolicy,
    *,
    environ: dict[str, str] | None = None,
    global_toml: str | None = None,
    user_toml: str | None = None,
) -> PluginHost:
    global_file = user_file = None
    if global_toml is not None:
        global_file = tmp_path / "acp-plugins.toml"
        global_file.write_text(global_toml)
    if user_toml is not None:
        user_file = tmp_path / "user.toml"
        user_file.write_text(user_toml)
    sources = ConfigSources(global_file=global_file, user_file=user_file, environ=environ or {})
    host = PluginHost(
        isolation=isolation, search_path=[plugins_dir], data_root=tmp_path / "data", config=sources
    )
    _STARTED.append(host)
    return host


def send(host: PluginHost, run: Run, kind: str, text: str = "hi") -> str:
    routed = run(host.send(Message(type=kind, content=text)))
    return str(routed.response.content)


def test_every_layer_reaches_the_running_plugin(
    plugins_dir: Path, tmp_path: Path, isolation: IsolationPolicy, run: Run
) -> None:
    host = make_host(
        plugins_dir,
        tmp_path,
        isolation,
        global_toml='[plugins.vault]\ntags = ["g"]\n[plugins.vault.endpoint]\nretries = 1\n',
        environ={"ACP_PLUGIN_VAULT__ENDPOINT__URL": "http://127.0.0.1:8080"},
        user_toml="[plugins.vault.endpoint]\nretries = 2\n",
    )
    run(host.start())
    assert host.record("vault").state is PluginState.ACTIVE
    assert send(host, run, "vault") == ("url=http://127.0.0.1:8080 retries=2 tags=g key-length=20")
    origins = {path: origin for path, _, origin in host.config_of("vault").explain()}
    assert origins["endpoint.retries"].layer is Layer.USER
    assert origins["endpoint.url"].layer is Layer.ENVIRONMENT
    assert origins["endpoint.url"].source == "ACP_PLUGIN_VAULT__ENDPOINT__URL"
    assert origins["tags"].layer is Layer.GLOBAL
    assert origins["endpoint.verify"].layer is Layer.DEFAULTS


def test_an_invalid_config_keeps_that_plugin_loaded_and_the_others_going(
    plugins_dir: Path, tmp_path: Path, isolation: IsolationPolicy, run: Run
) -> None:
    host = make_host(
        plugins_dir,
        tmp_path,
        isolation,
        environ={"ACP_PLUGIN_VAULT__ENDPOINT__RETRIES": "eleven"},
    )
    run(host.start())
    record = host.record("vault")
    assert record.state is PluginState.LOADED
    assert "endpoint.retries" in (record.reason or "")
    assert "ACP_PLUGIN_VAULT__ENDPOINT__RETRIES" in (record.reason or "")
    assert host.record("echo").state is PluginState.ACTIVE
    assert send(host, run, "echo") == "echo: hi"


def test_a_runtime_override_is_validated_saved_and_applied(
    plugins_dir: Path, tmp_path: Path, isolation: IsolationPolicy, run: Run
) -> None:
    host = make_host(plugins_dir, tmp_path, isolation)
    run(host.start())
    run(host.set_config("echo", "prefix", ">> "))
    assert send(host, run, "echo") == ">> hi"
    saved = json.loads((tmp_path / "data" / "overrides.json").read_text())
    assert saved == {"echo": {"prefix": ">> "}}
    [(path, value, origin)] = host.config_of("echo").explain()
    assert (path, value, origin.layer) == ("prefix", ">> ", Layer.RUNTIME)

    restarted = make_host(plugins_dir, tmp_path, isolation)  # the override survives a restart
    run(restarted.start())
    assert send(restarted, run, "echo") == ">> hi"
    run(restarted.unset_config("echo", "prefix"))
    assert send(restarted, run, "echo") == "echo: hi"
    assert json.loads((tmp_path / "data" / "overrides.json").read_text()) == {}


def test_a_bad_override_is_refused_and_changes_nothing(
    plugins_dir: Path, tmp_path: Path, isolation: IsolationPolicy, run: Run
) -> None:
    host = make_host(plugins_dir, tmp_path, isolation)
    run(host.start())
    run(host.set_config("vault", "endpoint.retries", 4))
    before = (tmp_path / "data" / "overrides.json").read_text()
    with pytest.raises(ConfigError) as caught:
        run(host.set_config("vault", "endpoint.retries", 99))
    assert "endpoint.retries" in str(caught.value) and "runtime override" in str(caught.value)
    with pytest.raises(ConfigError, match="colour"):
        run(host.set_config("vault", "colour", "blue"))  # unknown keys are not kept
    assert (tmp_path / "data" / "overrides.json").read_text() == before
    assert "retries=4" in send(host, run, "vault")
    changes = [(e.outcome, e.detail) for e in host.audit.entries("vault") if e.action == "config"]
    assert changes == [
        ("applied", "set endpoint.retries"),
        ("refused", "set endpoint.retries: invalid settings for 'vault'"),
        ("refused", "set colour: invalid settings for 'vault'"),
    ]


def test_a_plugin_that_refuses_a_change_keeps_the_old_config(
    plugins_dir: Path, tmp_path: Path, isolation: IsolationPolicy, run: Run
) -> None:
    host = make_host(
        plugins_dir, tmp_path, isolation, global_toml='[plugins.vault]\ntags = ["frozen"]\n'
    )
    run(host.start())
    with pytest.raises(ConfigError, match="refused the new configuration"):
        run(host.set_config("vault", "endpoint.retries", 5))
    assert "retries=3" in send(host, run, "vault")
    assert OverrideStore(tmp_path / "data" / "overrides.json").get("vault") == {}
    assert host.record("vault").state is PluginState.ACTIVE


def test_the_sqlite_store_moves_to_a_new_database_while_serving(
    plugins_dir: Path, tmp_path: Path, isolation: IsolationPolicy, run: Run
) -> None:
    host = make_host(plugins_dir, tmp_path, isolation)
    run(host.start())
    moved = tmp_path / "data" / "plugins" / "sqlite-store" / "moved.sqlite3"
    run(host.set_config("sqlite-store", "database", str(moved)))
    assert moved.is_file()
    result = run(host.query("agent-events"))
    assert result.total == 60  # seeded afresh in the new file
    with pytest.raises(ConfigError, match="refused"):
        run(host.set_config("sqlite-store", "database", "/proc/no-such-dir/x.sqlite3"))
    if not isolation.is_trusted("sqlite-store"):  # isolated: its data directory only
        elsewhere = tmp_path / "elsewhere.sqlite3"
        with pytest.raises(ConfigError, match="refused"):
            run(host.set_config("sqlite-store", "database", str(elsewhere)))
        assert not elsewhere.exists()
        refusals = [e.detail for e in host.audit.entries("sqlite-store") if e.action == "sandbox"]
        assert any(str(elsewhere) in detail for detail in refusals)
    assert run(host.query("agent-events")).total == 60  # still serving from moved.sqlite3


def test_secrets_never_show(
    plugins_dir: Path,
    tmp_path: Path,
    isolation: IsolationPolicy,
    run: Run,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "s3cr3t-token-value"
    host = make_host(
        plugins_dir, tmp_path, isolation, environ={"ACP_PLUGIN_VAULT__API_KEY": secret}
    )
    run(host.start())
    assert "key-length=18" in send(host, run, "vault")  # the plugin has it...
    shown = json.dumps(host.config_of("vault").masked()) + repr(host.config_of("vault").explain())
    assert secret not in shown  # ...nobody else sees it
    assert "**********" in shown
    assert secret not in json.dumps(host.record("vault").to_dict(), default=str)
    assert secret not in caplog.text


def test_a_disabled_plugin_is_not_loaded(
    plugins_dir: Path, tmp_path: Path, isolation: IsolationPolicy, run: Run
) -> None:
    host = PluginHost(
        isolation=isolation,
        search_path=[plugins_dir],
        data_root=tmp_path,
        config=ConfigSources(environ={}),
        disabled=["vault"],
    )
    _STARTED.append(host)
    run(host.start())
    assert host.record("vault").state is PluginState.DISCOVERED
    assert host.record("vault").reason == "'vault' is disabled in the host's settings"


def test_an_unreadable_overrides_file_stops_the_host_before_any_plugin(
    plugins_dir: Path, tmp_path: Path, isolation: IsolationPolicy, run: Run
) -> None:
    overrides = tmp_path / "overrides-is-a-directory"
    overrides.mkdir()  # reading it fails with an OSError
    host = PluginHost(
        isolation=isolation,
        search_path=[plugins_dir],
        data_root=tmp_path / "data",
        config=ConfigSources(environ={}),
        overrides=OverrideStore(overrides),
    )
    _STARTED.append(host)
    with pytest.raises(ConfigError, match=f"cannot read the runtime overrides in {overrides}"):
        run(host.start())
    assert host.active() == []  # every plugin would have failed on it: none was started
