"""The host's own settings: the five layers of a plugin's, in ``[host]`` and ``ACP_HOST_*``."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from acp_plugins.config.layers import ConfigSources, Layer, ValueOrigin
from acp_plugins.config.settings import HostSettings, default_data_root, load_host_settings
from acp_plugins.errors import ConfigError
from acp_plugins.loading.permissions import DEFAULT_GRANTS, Permission, PermissionPolicy

P = Permission


def toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def sources(
    tmp_path: Path,
    *,
    global_text: str | None = None,
    user_text: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConfigSources:
    return ConfigSources(
        global_file=toml(tmp_path / "global.toml", global_text) if global_text else None,
        user_file=toml(tmp_path / "user.toml", user_text) if user_text else None,
        environ={"XDG_DATA_HOME": str(tmp_path / "data"), **(environ or {})},
    )


def test_the_defaults(tmp_path: Path) -> None:
    settings, origins = load_host_settings(sources(tmp_path))

    assert settings == HostSettings(data_dir=tmp_path / "data" / "acp-plugins")
    assert settings.timeout == 5.0 and settings.sync_in_thread is False
    assert settings.effective_overrides_file == tmp_path / "data" / "acp-plugins" / "overrides.json"
    assert settings.default_grants == sorted(DEFAULT_GRANTS)
    assert (settings.plugin_path, settings.grants, settings.disabled) == ([], {}, [])
    assert set(origins.values()) == {ValueOrigin(Layer.DEFAULTS, "default")}
    isolation = {
        f"isolation.{key}"
        for key in (
            "memory_mb", "cpu_share", "open_files", "file_mb", "trusted", "limits_by_plugin",
            "allowed_modules", "max_failures", "failure_window", "seccomp", "drop_privileges",
            "disk_mb", "frames_per_second", "context_calls", "namespaces", "landlock",
            "cgroups", "own_uid", "python_layer", "strict_layers", "zygote",
        )
    }  # fmt: skip
    assert set(origins) == {
        "timeout", "sync_in_thread", "data_dir", "overrides_file", "plugin_path",
        "default_grants", "grants", "disabled", "audit_log", "on_demand", "drain_timeout",
        "subscribe_topics", "publish_topics",
        *isolation,
        *(f"telemetry.{key}" for key in ("enabled", "interval", "retention_days", "database",
                                         "error_window", "degraded_error_rate",
                                         "failing_error_rate")),
        "server.indexes", "server.install_target", "server.pip_timeout", "server.metrics_port",
        "server.metrics_host",
    }  # fmt: skip
    assert settings.drain_timeout == 10.0
    assert (settings.telemetry.enabled, settings.telemetry.interval) == (True, 10.0)
    assert settings.telemetry.database is None  # <data_dir>/telemetry.sqlite
    assert settings.isolation.trusted == [] and settings.audit_log is None
    policy = settings.isolation.policy()
    assert not policy.is_trusted("echo")  # isolated unless trusted
    assert (policy.limits.memory_mb, policy.limits.cpu_share) == (100, 0.1)  # the spec's


def test_the_default_data_dir_follows_the_given_environment(tmp_path: Path) -> None:
    environ = {"ACP_PLUGINS_DATA_DIR": str(tmp_path / "explicit")}

    settings, origins = load_host_settings(sources(tmp_path, environ=environ))

    assert settings.data_dir == tmp_path / "explicit" == default_data_root(environ)
    assert origins["data_dir"] == ValueOrigin(Layer.DEFAULTS, "ACP_PLUGINS_DATA_DIR")
    assert default_data_root({"XDG_DATA_HOME": "/x"}) == Path("/x/acp-plugins")
    assert default_data_root({}) == Path.home() / ".local" / "share" / "acp-plugins"


def _set_timeout(tmp_path: Path, layers: Mapping[Layer, float]) -> tuple[HostSettings, ValueOrigin]:
    text = {
        layer: f"[host]\ntimeout = {value}\n"
        for layer, value in layers.items()
        if layer in (Layer.GLOBAL, Layer.USER)
    }
    src = sources(
        tmp_path,
        global_text=text.get(Layer.GLOBAL),
        user_text=text.get(Layer.USER),
        environ={"ACP_HOST_TIMEOUT": str(layers[Layer.ENVIRONMENT])}
        if Layer.ENVIRONMENT in layers
        else {},
    )
    overrides = {"timeout": layers[Layer.RUNTIME]} if Layer.RUNTIME in layers else None
    settings, origins = load_host_settings(src, overrides)
    return settings, origins["timeout"]


SOURCE_OF = {
    Layer.DEFAULTS: "default",
    Layer.GLOBAL: "global.toml:2",
    Layer.ENVIRONMENT: "ACP_HOST_TIMEOUT",
    Layer.USER: "user.toml:2",
    Layer.RUNTIME: "command line",
}
TIMEOUT_OF = {layer: float(index + 1) for index, layer in enumerate(Layer)}
TIMEOUT_OF[Layer.DEFAULTS] = 5.0


@pytest.mark.parametrize(
    ("lower", "higher"),
    list(itertools.combinations(Layer, 2)),
    ids=lambda layer: layer.value,
)
def test_every_layer_beats_the_ones_below_it(tmp_path: Path, lower: Layer, higher: Layer) -> None:
    given = {layer: TIMEOUT_OF[layer] for layer in (lower, higher) if layer is not Layer.DEFAULTS}

    settings, origin = _set_timeout(tmp_path, given)

    assert settings.timeout == TIMEOUT_OF[higher]
    assert origin.layer is higher
    assert origin.source.endswith(SOURCE_OF[higher])


def test_tables_merge_key_by_key_across_layers(tmp_path: Path) -> None:
    src = sources(
        tmp_path,
        global_text='[host.grants]\necho = ["write-data"]\ntools = ["execute-commands"]\n',
        environ={
            "ACP_HOST_GRANTS__ECHO": '["manage-database"]',
            "ACP_HOST_GRANTS__AUDIT": "read-data",
        },
        user_text='[host.grants]\nstore = "write-data"\n',  # one name stands for a list of one
    )

    settings, origins = load_host_settings(src)

    assert settings.grants == {
        "echo": [P.MANAGE_DATABASE],
        "tools": [P.EXECUTE_COMMANDS],
        "store": [P.WRITE_DATA],
        "audit": [P.READ_DATA],  # in the environment too, a name may stand for a list of one
    }
    assert origins["grants.echo"] == ValueOrigin(Layer.ENVIRONMENT, "ACP_HOST_GRANTS__ECHO")
    assert origins["grants.tools"] == ValueOrigin(Layer.GLOBAL, f"{tmp_path / 'global.toml'}:3")
    assert origins["grants.store"] == ValueOrigin(Layer.USER, f"{tmp_path / 'user.toml'}:2")


def test_the_policy(tmp_path: Path) -> None:
    src = sources(
        tmp_path,
        global_text='[host]\ndefault_grants = ["read-messaging"]\n',
        environ={"ACP_HOST_GRANTS": '{"echo": ["write-data", "read-data"]}'},
    )

    settings, _ = load_host_settings(src)

    assert settings.policy() == PermissionPolicy(
        defaults=frozenset({P.READ_MESSAGING}),
        grants={"echo": frozenset({P.WRITE_DATA, P.READ_DATA})},
    )
    assert settings.policy().granted("echo") == {P.READ_MESSAGING, P.WRITE_DATA, P.READ_DATA}
    default, _ = load_host_settings(sources(tmp_path))
    assert default.policy() == PermissionPolicy()


def test_per_topic_grants_from_the_config_file_as_the_readme_writes_them(tmp_path: Path) -> None:
    src = sources(
        tmp_path,
        global_text=(
            '[host.subscribe_topics]\n"user.*" = ["activity-analytics"]\n'
            '[host.publish_topics]\n"billing.*" = ["billing"]\n'
        ),
    )

    policy = load_host_settings(src)[0].policy()

    assert policy.topic_refusal("echo", "user.login", "subscribe") == (
        "only 'activity-analytics' may subscribe on topics matching 'user.*' (the host's "
        "policy, subscribe_topics); 'echo' asked for 'user.login'"
    )
    assert policy.topic_refusal("activity-analytics", "user.*", "subscribe") is None
    assert policy.topic_refusal("echo", "user.login", "publish") is None  # publishing is open
    assert "only 'billing' may publish" in (
        policy.topic_refusal("echo", "billing.due", "publish") or ""
    )
    assert policy.topic_refusal("echo", "news.today", "subscribe") is None


def test_disabled_plugins_and_the_rest_from_every_layer(tmp_path: Path) -> None:
    src = sources(
        tmp_path,
        global_text=f'[host]\ndisabled = ["old"]\ndata_dir = "{tmp_path / "d"}"\n',
        environ={
            "ACP_HOST_SYNC_IN_THREAD": "1",
            "ACP_HOST_PLUGIN_PATH": f'["{tmp_path}"]',
            "ACP_HOST_OVERRIDES_FILE": str(tmp_path / "o.json"),
        },
        user_text='[host]\ndisabled = ["broken", "slow"]\n',
    )

    settings, origins = load_host_settings(src, {"plugin_path": [str(tmp_path / "p")]})

    assert settings.disabled == ["broken", "slow"]  # a list replaces the one below
    assert settings.sync_in_thread is True
    assert settings.data_dir == tmp_path / "d"
    assert settings.effective_overrides_file == tmp_path / "o.json"
    assert settings.plugin_path == [tmp_path / "p"]
    assert origins["plugin_path"] == ValueOrigin(Layer.RUNTIME, "command line")
    assert origins["disabled"].layer is Layer.USER
    assert origins["data_dir"].layer is Layer.GLOBAL


@pytest.mark.parametrize(
    ("layer", "path", "source"),
    [
        (Layer.GLOBAL, "grants.echo.0", "global.toml:2"),
        (Layer.ENVIRONMENT, "grants.echo.0", "ACP_HOST_GRANTS__ECHO"),
        (Layer.USER, "grants.echo.0", "user.toml:2"),
        (Layer.RUNTIME, "grants.echo.0", "command line"),
    ],
    ids=str,
)
def test_a_bad_grant_name_is_reported_with_its_layer(
    tmp_path: Path, layer: Layer, path: str, source: str
) -> None:
    text = '[host.grants]\necho = ["root"]\n'
    src = sources(
        tmp_path,
        global_text=text if layer is Layer.GLOBAL else None,
        user_text=text if layer is Layer.USER else None,
        environ={"ACP_HOST_GRANTS__ECHO": '["root"]'} if layer is Layer.ENVIRONMENT else {},
    )
    overrides = {"grants": {"echo": ["root"]}} if layer is Layer.RUNTIME else None

    with pytest.raises(ConfigError) as caught:
        load_host_settings(src, overrides)

    error = caught.value
    assert (error.summary, error.plugin_id) == ("invalid settings for 'host'", "host")
    (problem,) = error.problems
    assert (problem.plugin_id, problem.path, problem.layer, problem.value) == (
        "host", path, layer.value, "root",
    )  # fmt: skip
    assert problem.source.endswith(source)
    assert problem.problem.startswith("Input should be 'read-messaging', 'write-messaging'")


def test_unknown_and_bad_host_settings_are_all_reported(tmp_path: Path) -> None:
    src = sources(
        tmp_path,
        global_text="[host]\ntimeout = 0\nverbose = true\n",
        environ={"ACP_HOST_TIMOUT": "3", "ACP_HOST_PLUGIN_PATH": "/a:/b"},
    )

    with pytest.raises(ConfigError) as caught:
        load_host_settings(src)

    known = (
        "known: audit_log, data_dir, default_grants, disabled, drain_timeout, grants, isolation, "
        "on_demand, overrides_file, plugin_path, publish_topics, server, subscribe_topics, "
        "sync_in_thread, telemetry, timeout"
    )
    global_file = tmp_path / "global.toml"
    assert [str(problem) for problem in caught.value.problems] == [
        f"'host' setting 'timout': unknown setting; remove it or fix its spelling ({known}) "
        "[from ACP_HOST_TIMOUT]",
        "'host' setting 'plugin_path': not valid JSON (Expecting value: line 1 column 1 (char 0)) "
        "(got '/a:/b') [from ACP_HOST_PLUGIN_PATH]",
        f"'host' setting 'timeout': Input should be greater than 0 (got 0) [from {global_file}:2]",
        f"'host' setting 'verbose': unknown setting; remove it or fix its spelling ({known}) "
        f"[from {global_file}:3]",
    ]


def test_plugin_tables_do_not_reach_the_host(tmp_path: Path) -> None:
    src = sources(tmp_path, global_text="[plugins.echo]\ntimeout = 1\n")

    settings, _ = load_host_settings(src)

    assert settings.timeout == 5.0
    assert src.plugin_tables(Layer.GLOBAL) == {"echo": {"timeout": 1}}


def test_host_settings_alone_read_this_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACP_HOST_TIMEOUT", "7.5")

    assert HostSettings().timeout == 7.5


def test_the_json_schema_describes_the_settings() -> None:
    properties: dict[str, Any] = HostSettings.model_json_schema()["properties"]

    assert properties["timeout"]["exclusiveMinimum"] == 0
    assert set(properties) == set(HostSettings.model_fields)
