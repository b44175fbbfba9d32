"""Plugin configuration: five layers merged by pydantic-settings, and where each value came from.

Every test writes real TOML files into ``tmp_path`` and passes the environment as
a plain dict (``ConfigSources.environ``), so nothing depends on the process's own
environment.
"""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from acp_plugins.config.layers import (
    ConfigSources,
    Layer,
    PluginConfig,
    PluginSettings,
    ResolvedConfig,
    ValueOrigin,
    plugin_env_prefix,
    resolve_plugin_config,
)
from acp_plugins.errors import ConfigError, ConfigProblem

MASK = "**********"
SECRET = "hunter2-very-secret"


class Pool(PluginSettings):
    size: int = 4
    recycle: int = 60


class Database(PluginSettings):
    path: Path = Path("store.db")
    timeout: float = 1.5
    pool: Pool = Pool()
    password: SecretStr = SecretStr("default-password")


class EchoSettings(PluginSettings):
    prefix: str = "> "
    repeat: int = 1
    loud: bool = False
    ratio: float = 0.5
    tags: list[str] = Field(default_factory=list)
    home: Path = Path("/srv/echo")
    token: SecretStr | None = None
    db: Database = Database()


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
        environ=dict(environ or {}),
    )


def resolve(
    src: ConfigSources,
    runtime: Mapping[str, Any] | None = None,
    model: type[BaseModel] | None = EchoSettings,
) -> ResolvedConfig:
    return resolve_plugin_config("echo", model, src, runtime)


def problems_of(
    src: ConfigSources, runtime: Mapping[str, Any] | None = None, **kw: Any
) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        resolve(src, runtime, **kw)
    assert caught.value.summary == "invalid settings for 'echo'"
    assert caught.value.plugin_id == "echo"
    return [str(problem) for problem in caught.value.problems]


# -- the layers ----------------------------------------------------------------------------


def test_the_layers_in_order_of_precedence() -> None:
    assert [layer.value for layer in Layer] == [
        "defaults", "global", "environment", "user", "runtime",
    ]  # fmt: skip
    assert str(Layer.USER) == "user"


def _set_prefix(tmp_path: Path, layers: Mapping[Layer, str]) -> ResolvedConfig:
    """Resolve with each given layer setting ``prefix`` to its value."""
    text = {
        layer: f'[plugins.echo]\nprefix = "{value}"\n'
        for layer, value in layers.items()
        if layer in (Layer.GLOBAL, Layer.USER)
    }
    src = sources(
        tmp_path,
        global_text=text.get(Layer.GLOBAL),
        user_text=text.get(Layer.USER),
        environ={"ACP_PLUGIN_ECHO__PREFIX": layers[Layer.ENVIRONMENT]}
        if Layer.ENVIRONMENT in layers
        else {},
    )
    runtime = {"prefix": layers[Layer.RUNTIME]} if Layer.RUNTIME in layers else None
    return resolve(src, runtime)


SOURCE_OF = {
    Layer.DEFAULTS: "default",
    Layer.GLOBAL: "global.toml:2",
    Layer.ENVIRONMENT: "ACP_PLUGIN_ECHO__PREFIX",
    Layer.USER: "user.toml:2",
    Layer.RUNTIME: "runtime override",
}


@pytest.mark.parametrize(
    ("lower", "higher"),
    list(itertools.combinations(Layer, 2)),
    ids=lambda layer: layer.value,
)
def test_every_layer_beats_the_ones_below_it(tmp_path: Path, lower: Layer, higher: Layer) -> None:
    given_values = {layer: f"from {layer.value}" for layer in (lower, higher)}
    given_values.pop(Layer.DEFAULTS, None)  # the default is the model's own "> "

    resolved = _set_prefix(tmp_path, given_values)

    assert resolved.values["prefix"] == f"from {higher.value}"
    origin = resolved.origins["prefix"]
    assert origin.layer is higher
    assert origin.source.endswith(SOURCE_OF[higher])


def test_all_five_layers_at_once_runtime_wins(tmp_path: Path) -> None:
    resolved = _set_prefix(tmp_path, {layer: layer.value for layer in list(Layer)[1:]})
    assert resolved.values["prefix"] == "runtime"
    assert resolved.settings == EchoSettings(prefix="runtime")


def test_nested_tables_merge_key_by_key_two_levels_deep(tmp_path: Path) -> None:
    src = sources(
        tmp_path,
        global_text=(
            "[plugins.echo.db]\n"
            'path = "/g/global.db"\n'
            "timeout = 9.0\n"
            "[plugins.echo.db.pool]\n"
            "size = 10\n"
            "recycle = 100\n"
        ),
        environ={"ACP_PLUGIN_ECHO__DB__POOL__RECYCLE": "200"},
        user_text="[plugins.echo.db.pool]\nsize = 20\n",
    )

    resolved = resolve(src, runtime={"db": {"timeout": 3.0}})

    assert resolved.values["db"] == {
        "path": Path("/g/global.db"),  # global: the others do not name it
        "timeout": 3.0,  # runtime names db.timeout only
        "pool": {"size": 20, "recycle": 200},  # user names db.pool.size, env db.pool.recycle
        "password": resolved.values["db"]["password"],
    }
    assert resolved.values["db"]["password"].get_secret_value() == "default-password"
    origins = {path: str(origin) for path, origin in resolved.origins.items()}
    assert origins == {
        "prefix": "defaults (default)",
        "repeat": "defaults (default)",
        "loud": "defaults (default)",
        "ratio": "defaults (default)",
        "tags": "defaults (default)",
        "home": "defaults (default)",
        "token": "defaults (default)",
        "db.path": f"global ({tmp_path / 'global.toml'}:2)",
        "db.timeout": "runtime (runtime override)",
        "db.pool.size": f"user ({tmp_path / 'user.toml'}:2)",
        "db.pool.recycle": "environment (ACP_PLUGIN_ECHO__DB__POOL__RECYCLE)",
        "db.password": "defaults (default)",
    }


def test_the_settings_are_an_instance_of_the_plugins_own_model(tmp_path: Path) -> None:
    resolved = resolve(sources(tmp_path), runtime={"repeat": 2})

    assert type(resolved.settings) is EchoSettings
    assert resolved.settings == EchoSettings(repeat=2)
    assert resolved.settings.model_fields_set == {"repeat"}  # what the layers set
    assert resolved.values == EchoSettings(repeat=2).model_dump()


def test_a_model_that_is_already_a_base_settings_works_too(tmp_path: Path) -> None:
    class Tuned(BaseSettings):
        level: int = 1

    src = sources(tmp_path, environ={"ACP_PLUGIN_ECHO__LEVEL": "3"})
    resolved = resolve(src, model=Tuned)

    assert type(resolved.settings) is Tuned
    assert resolved.values == {"level": 3}
    assert resolved.origins["level"] == ValueOrigin(Layer.ENVIRONMENT, "ACP_PLUGIN_ECHO__LEVEL")


# -- the environment -----------------------------------------------------------------------


def test_environment_values_are_parsed_to_their_types(tmp_path: Path) -> None:
    environ = {
        "ACP_PLUGIN_ECHO__REPEAT": "3",
        "ACP_PLUGIN_ECHO__LOUD": "true",
        "ACP_PLUGIN_ECHO__RATIO": "0.25",
        "ACP_PLUGIN_ECHO__TAGS": '["a", "b"]',
        "ACP_PLUGIN_ECHO__HOME": "/home/echo",
        "ACP_PLUGIN_ECHO__TOKEN": SECRET,
        "ACP_PLUGIN_ECHO__DB": '{"path": "/j/json.db", "pool": {"size": 7}}',
        "ACP_PLUGIN_ECHO__DB__POOL__RECYCLE": "5",
        "UNRELATED": "1",
    }

    resolved = resolve(sources(tmp_path, environ=environ))
    settings = resolved.settings
    assert isinstance(settings, EchoSettings)

    assert (settings.repeat, settings.loud, settings.ratio) == (3, True, 0.25)
    assert settings.tags == ["a", "b"]
    assert settings.home == Path("/home/echo")
    assert settings.token is not None and settings.token.get_secret_value() == SECRET
    assert settings.db.path == Path("/j/json.db")
    assert (settings.db.pool.size, settings.db.pool.recycle) == (7, 5)
    assert resolved.origins["db.path"].source == "ACP_PLUGIN_ECHO__DB"
    assert resolved.origins["db.pool.size"].source == "ACP_PLUGIN_ECHO__DB"
    assert resolved.origins["db.pool.recycle"].source == "ACP_PLUGIN_ECHO__DB__POOL__RECYCLE"
    assert resolved.origins["db.timeout"] == ValueOrigin(Layer.DEFAULTS, "default")


def test_environment_names_are_case_insensitive_and_reported_as_written(tmp_path: Path) -> None:
    resolved = resolve(sources(tmp_path, environ={"acp_plugin_echo__Repeat": "4"}))

    assert resolved.values["repeat"] == 4
    assert resolved.origins["repeat"].source == "acp_plugin_echo__Repeat"


def test_only_the_given_environment_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACP_PLUGIN_ECHO__PREFIX", "from os.environ")

    assert resolve(sources(tmp_path, environ={})).values["prefix"] == "> "


@pytest.mark.parametrize(
    ("plugin_id", "prefix"),
    [
        ("echo", "ACP_PLUGIN_ECHO__"),
        ("sqlite-store", "ACP_PLUGIN_SQLITE_STORE__"),
        ("org.tools", "ACP_PLUGIN_ORG_TOOLS__"),
    ],
)
def test_plugin_env_prefix(plugin_id: str, prefix: str) -> None:
    assert plugin_env_prefix(plugin_id) == prefix


# -- where values came from ------------------------------------------------------------------


def test_explain_lists_every_value_masked_with_its_origin(tmp_path: Path) -> None:
    src = sources(
        tmp_path,
        global_text=f'[plugins.echo]\nprefix = "g> "\ntoken = "{SECRET}"\n',
        environ={"ACP_PLUGIN_ECHO__TAGS": '["x"]'},
    )
    resolved = resolve(src, runtime={"db": {"pool": {"size": 8}}})
    global_file = tmp_path / "global.toml"

    assert resolved.explain() == [
        ("db.password", MASK, ValueOrigin(Layer.DEFAULTS, "default")),
        ("db.path", "store.db", ValueOrigin(Layer.DEFAULTS, "default")),
        ("db.pool.recycle", 60, ValueOrigin(Layer.DEFAULTS, "default")),
        ("db.pool.size", 8, ValueOrigin(Layer.RUNTIME, "runtime override")),
        ("db.timeout", 1.5, ValueOrigin(Layer.DEFAULTS, "default")),
        ("home", "/srv/echo", ValueOrigin(Layer.DEFAULTS, "default")),
        ("loud", False, ValueOrigin(Layer.DEFAULTS, "default")),
        ("prefix", "g> ", ValueOrigin(Layer.GLOBAL, f"{global_file}:2")),
        ("ratio", 0.5, ValueOrigin(Layer.DEFAULTS, "default")),
        ("repeat", 1, ValueOrigin(Layer.DEFAULTS, "default")),
        ("tags", ["x"], ValueOrigin(Layer.ENVIRONMENT, "ACP_PLUGIN_ECHO__TAGS")),
        ("token", MASK, ValueOrigin(Layer.GLOBAL, f"{global_file}:3")),
    ]
    assert set(resolved.origins) == {path for path, _, _ in resolved.explain()}


def test_masked_values_are_json_ready_and_hide_every_secret(tmp_path: Path) -> None:
    src = sources(tmp_path, environ={"ACP_PLUGIN_ECHO__TOKEN": SECRET})
    resolved = resolve(src, runtime={"db": {"password": SECRET}})

    masked = resolved.masked()

    assert masked["token"] == MASK
    assert masked["db"]["password"] == MASK
    assert masked["home"] == "/srv/echo"
    assert SECRET not in json.dumps(masked)
    assert SECRET not in repr(resolved.explain())
    # the values themselves keep the secrets, as SecretStr
    assert resolved.values["token"].get_secret_value() == SECRET


def test_a_secret_is_masked_even_when_a_serializer_would_reveal_it(tmp_path: Path) -> None:
    from pydantic import field_serializer

    class Revealing(PluginSettings):
        key: SecretStr = SecretStr(SECRET)

        @field_serializer("key")
        def _reveal(self, key: SecretStr) -> str:
            return key.get_secret_value()

    resolved = resolve(sources(tmp_path), model=Revealing)

    assert resolved.values == {"key": SECRET}  # what the plugin's model dumps
    assert resolved.masked() == {"key": MASK}


def test_secrets_inside_lists_of_tables_are_masked(tmp_path: Path) -> None:
    class Server(PluginSettings):
        host: str
        password: SecretStr

    class Cluster(PluginSettings):
        servers: list[Server] = Field(default_factory=list)
        keys: dict[str, SecretStr] = Field(default_factory=dict)

    src = sources(
        tmp_path,
        global_text=(
            "[[plugins.echo.servers]]\n"
            'host = "a"\n'
            f'password = "{SECRET}"\n'
            "[plugins.echo.keys]\n"
            f'api = "{SECRET}"\n'
        ),
    )
    resolved = resolve(src, model=Cluster)

    assert resolved.masked() == {
        "servers": [{"host": "a", "password": MASK}],
        "keys": {"api": MASK},
    }
    assert resolved.origins["keys.api"].source == f"{tmp_path / 'global.toml'}:5"
    assert resolved.origins["servers"].source == f"{tmp_path / 'global.toml'}:1"
    with pytest.raises(ConfigError) as caught:
        resolve(src, runtime={"servers": [{"password": SECRET}]}, model=Cluster)
    assert SECRET not in str(caught.value)
    assert [str(p) for p in caught.value.problems] == [
        "'echo' setting 'servers.0.host': required [from runtime override]"
    ]


def test_a_model_may_name_fields_like_the_settings_machinery(tmp_path: Path) -> None:
    class Odd(PluginSettings):
        settings_file: str = "a"

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolved = resolve(
            sources(tmp_path, environ={"ACP_PLUGIN_ECHO__SETTINGS_FILE": "b"}), model=Odd
        )

    assert resolved.values == {"settings_file": "b"}


def test_where_keys_are_written_in_a_toml_file(tmp_path: Path) -> None:
    src = sources(
        tmp_path,
        global_text=(
            "[plugins]\n"  # 1
            'echo.prefix = ">"\n'  # 2
            "\n"  # 3
            "[plugins.echo.db]\n"  # 4
            '"path" = "a.db"\n'  # 5
            "pool = { size = 3 }\n"  # 6
            'notes = """\n'  # 7
            "timeout = 1\n"  # 8: inside a string, not a key
            '"""\n'  # 9
            "timeout = 2.0\n"  # 10
            '[plugins."org.tools"]\n'  # 11
            "level = 1\n"  # 12
        ),
    )
    table, where = src.table(Layer.GLOBAL, "echo")
    name = str(tmp_path / "global.toml")

    assert table["db"]["pool"] == {"size": 3}
    assert where("prefix") == f"{name}:2"
    assert where("db.path") == f"{name}:5"
    assert where("db.pool.size") == f"{name}:6"  # inside the inline table
    assert where("db.timeout") == f"{name}:10"
    assert where("db.unknown") == f"{name}:4"  # the nearest: its table
    assert where("repeat") == f"{name}:2"  # nearest line naming the plugin's table
    tools, where_tools = src.table(Layer.GLOBAL, "org.tools")
    assert tools == {"level": 1}
    assert where_tools("level") == f"{name}:12"
    assert src.table(Layer.USER, "echo")[0] == {}


def test_the_host_table_is_separate(tmp_path: Path) -> None:
    src = sources(tmp_path, user_text="[host]\ntimeout = 2\n[plugins.host]\nx = 1\n")

    table, where = src.host_table(Layer.USER)

    assert table == {"timeout": 2}
    assert where("timeout") == f"{tmp_path / 'user.toml'}:2"
    assert src.table(Layer.USER, "host")[0] == {"x": 1}
    with pytest.raises(ValueError, match="only the global and user layers"):
        src.host_table(Layer.RUNTIME)


def test_settings_given_to_the_host_belong_to_the_global_layer(tmp_path: Path) -> None:
    src = sources(tmp_path, global_text='[plugins.echo]\nprefix = "file"\nrepeat = 2\n')
    src = src.with_global_tables({"echo": {"prefix": "given", "db": {"timeout": 4.0}}})

    resolved = resolve(src)

    assert (resolved.values["prefix"], resolved.values["repeat"]) == ("given", 2)
    assert resolved.origins["prefix"] == ValueOrigin(Layer.GLOBAL, "PluginHost(settings=...)")
    assert resolved.origins["db.timeout"] == ValueOrigin(Layer.GLOBAL, "PluginHost(settings=...)")
    assert resolved.origins["repeat"].source == f"{tmp_path / 'global.toml'}:3"


# -- unknown keys and bad values, reported with where they were written --------------------

KNOWN = "known: db, home, loud, prefix, ratio, repeat, tags, token"


@pytest.mark.parametrize(
    ("layer", "source"),
    [
        (Layer.GLOBAL, "global.toml:3"),
        (Layer.ENVIRONMENT, "ACP_PLUGIN_ECHO__COLOUR"),
        (Layer.USER, "user.toml:3"),
        (Layer.RUNTIME, "runtime override"),
    ],
    ids=str,
)
def test_an_unknown_key_is_reported_with_its_layer(
    tmp_path: Path, layer: Layer, source: str
) -> None:
    text = '[plugins.echo]\nprefix = "x"\ncolour = "red"\n'
    src = sources(
        tmp_path,
        global_text=text if layer is Layer.GLOBAL else None,
        user_text=text if layer is Layer.USER else None,
        environ={"ACP_PLUGIN_ECHO__COLOUR": "red"} if layer is Layer.ENVIRONMENT else {},
    )
    runtime = {"colour": "red"} if layer is Layer.RUNTIME else None

    with pytest.raises(ConfigError) as caught:
        resolve(src, runtime)

    (problem,) = caught.value.problems
    assert (problem.path, problem.layer) == ("colour", layer.value)
    assert problem.source.endswith(source)
    assert str(problem) == (
        f"'echo' setting 'colour': unknown setting; remove it or fix its spelling ({KNOWN}) "
        f"[from {problem.source}]"
    )


@pytest.mark.parametrize(
    ("layer", "source"),
    [
        (Layer.GLOBAL, "global.toml:4"),
        (Layer.ENVIRONMENT, "ACP_PLUGIN_ECHO__DB__POOL__SISE"),
        (Layer.USER, "user.toml:4"),
        (Layer.RUNTIME, "runtime override"),
    ],
    ids=str,
)
def test_a_nested_unknown_key_is_reported_with_its_layer(
    tmp_path: Path, layer: Layer, source: str
) -> None:
    text = "[plugins.echo.db.pool]\nsize = 1\n\nsise = 2\n"
    src = sources(
        tmp_path,
        global_text=text if layer is Layer.GLOBAL else None,
        user_text=text if layer is Layer.USER else None,
        environ={"ACP_PLUGIN_ECHO__DB__POOL__SISE": "2"} if layer is Layer.ENVIRONMENT else {},
    )
    runtime = {"db": {"pool": {"sise": 2}}} if layer is Layer.RUNTIME else None

    (problem,) = problems_of(src, runtime)

    assert problem.startswith(
        "'echo' setting 'db.pool.sise': unknown setting; remove it or fix its spelling "
        "(known: recycle, size) [from "
    )
    assert problem.endswith(f"{source}]")


@pytest.mark.parametrize(
    ("layer", "source"),
    [
        (Layer.GLOBAL, "global.toml:3"),
        (Layer.ENVIRONMENT, "ACP_PLUGIN_ECHO__REPEAT"),
        (Layer.USER, "user.toml:3"),
        (Layer.RUNTIME, "runtime override"),
    ],
    ids=str,
)
def test_a_bad_value_is_reported_with_where_it_was_written(
    tmp_path: Path, layer: Layer, source: str
) -> None:
    text = '[plugins.echo]\nprefix = "x"\nrepeat = "many"\n'
    src = sources(
        tmp_path,
        global_text=text if layer is Layer.GLOBAL else None,
        user_text=text if layer is Layer.USER else None,
        environ={"ACP_PLUGIN_ECHO__REPEAT": "many"} if layer is Layer.ENVIRONMENT else {},
    )
    runtime = {"repeat": "many"} if layer is Layer.RUNTIME else None

    (problem,) = problems_of(src, runtime)

    where = str(tmp_path / source) if source.endswith(".toml:3") else source
    assert problem == (
        "'echo' setting 'repeat': Input should be a valid integer, unable to parse string "
        f"as an integer (got 'many') [from {where}]"
    )


def test_a_bad_value_is_blamed_on_the_layer_whose_value_won(tmp_path: Path) -> None:
    src = sources(
        tmp_path,
        global_text="[plugins.echo.db.pool]\nsize = 2\n",
        user_text='[plugins.echo.db.pool]\nsize = "big"\n',
    )
    with pytest.raises(ConfigError) as caught:
        resolve(src)

    assert caught.value.problems == (
        ConfigProblem(
            "echo",
            "db.pool.size",
            "user",
            f"{tmp_path / 'user.toml'}:2",
            "Input should be a valid integer, unable to parse string as an integer",
            "big",
        ),
    )


def test_malformed_json_in_the_environment_names_the_variable(tmp_path: Path) -> None:
    src = sources(
        tmp_path, environ={"ACP_PLUGIN_ECHO__TAGS": "a,b", "ACP_PLUGIN_ECHO__REPEAT": "x"}
    )

    problems = problems_of(src)

    assert problems[0] == (
        "'echo' setting 'tags': not valid JSON (Expecting value: line 1 column 1 (char 0)) "
        "(got 'a,b') [from ACP_PLUGIN_ECHO__TAGS]"
    )
    assert problems[1].endswith("(got 'x') [from ACP_PLUGIN_ECHO__REPEAT]")  # reported together


def test_every_problem_of_every_layer_is_reported_at_once(tmp_path: Path) -> None:
    src = sources(
        tmp_path,
        global_text='[plugins.echo]\nratio = "half"\n',
        environ={"ACP_PLUGIN_ECHO__LOUD": "maybe"},
        user_text="[plugins.echo]\nextra = 1\n",
    )

    problems = problems_of(src, runtime={"tags": "not-a-list"})

    assert [problem.rsplit("[from ", 1)[1] for problem in problems] == [
        "ACP_PLUGIN_ECHO__LOUD]",
        f"{tmp_path / 'global.toml'}:2]",
        "runtime override]",
        f"{tmp_path / 'user.toml'}:2]",
    ]


def test_a_missing_required_setting_says_no_layer_sets_it(tmp_path: Path) -> None:
    class Needy(PluginSettings):
        url: str
        token: SecretStr = SecretStr(SECRET)

    with pytest.raises(ConfigError) as caught:
        resolve(sources(tmp_path), runtime={"token": SECRET}, model=Needy)

    (problem,) = caught.value.problems
    assert (problem.path, problem.layer, problem.source, problem.value) == (
        "url", "defaults", "no layer sets it", None,
    )  # fmt: skip
    assert str(problem) == (
        "'echo' setting 'url': required; set it in [plugins.echo] of a config file or with "
        "ACP_PLUGIN_ECHO__URL [from no layer sets it]"
    )
    assert SECRET not in str(caught.value)


def test_the_alternatives_of_a_union_make_one_problem(tmp_path: Path) -> None:
    class Either(PluginSettings):
        port: int | bool = 1

    (problem,) = problems_of(sources(tmp_path), runtime={"port": [1]}, model=Either)

    assert problem == (
        "'echo' setting 'port': Input should be a valid integer; Input should be a valid "
        "boolean (got [1]) [from runtime override]"
    )


def test_a_check_of_the_whole_settings_is_blamed_on_all_layers(tmp_path: Path) -> None:
    class Range(PluginSettings):
        low: int = 0
        high: int = 10

        @model_validator(mode="after")
        def _ordered(self) -> Range:
            if self.low > self.high:
                raise ValueError("low must not exceed high")
            return self

    with pytest.raises(ConfigError) as caught:
        resolve(sources(tmp_path), runtime={"low": 20}, model=Range)

    (problem,) = caught.value.problems
    assert (problem.path, problem.layer, problem.source) == ("", "all", "the merged layers")
    assert "low must not exceed high" in problem.problem


# -- secrets never appear in errors --------------------------------------------------------


class Guarded(PluginSettings):
    token: SecretStr = SecretStr("x" * 12)
    db: Database = Database()

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: SecretStr) -> SecretStr:
        if len(token.get_secret_value()) < 100:
            # a careless validator that quotes the secret
            raise ValueError(f"{token.get_secret_value()!r} is too short")
        return token


@pytest.mark.parametrize(
    ("environ", "runtime", "path"),
    [
        ({}, {"token": SECRET}, "token"),  # a validator quoting it
        ({"ACP_PLUGIN_ECHO__TOKEN": SECRET}, {}, "token"),
        ({}, {"db": {"password": 12345}}, "db.password"),  # wrong type
        ({"ACP_PLUGIN_ECHO__DB": f'{{"password": "{SECRET}", '}, {}, "db"),  # broken JSON
        ({}, {"db": f"password={SECRET}"}, "db"),  # a string where a table holding it belongs
    ],
)
def test_secret_values_are_masked_in_errors(
    tmp_path: Path, environ: dict[str, str], runtime: dict[str, Any], path: str
) -> None:
    src = sources(tmp_path, environ=environ)

    with pytest.raises(ConfigError) as caught:
        resolve(src, runtime, model=Guarded)

    error = caught.value
    problem = next(problem for problem in error.problems if problem.path == path)
    assert problem.value == MASK
    for text in (SECRET, "12345"):
        assert text not in str(error)
        assert all(text not in str(p.value) for p in error.problems)


def test_a_secret_in_a_toml_file_is_masked_in_errors(tmp_path: Path) -> None:
    src = sources(tmp_path, user_text=f'[plugins.echo]\ntoken = "{SECRET}"\n')

    with pytest.raises(ConfigError) as caught:
        resolve(src, model=Guarded)

    assert str(caught.value) == (
        "invalid settings for 'echo'\n"
        f"  - 'echo' setting 'token': Value error, {MASK!r} is too short (got '{MASK}') "
        f"[from {tmp_path / 'user.toml'}:2]"
    )


# -- a plugin without a settings model -----------------------------------------------------


def test_a_plugin_without_a_model_and_without_settings_resolves_to_nothing(
    tmp_path: Path,
) -> None:
    src = sources(tmp_path, global_text="[plugins.other]\nx = 1\n", environ={"ACP_X": "1"})

    resolved = resolve(src, model=None)

    assert resolved == ResolvedConfig("echo", None, {}, {})
    assert resolved.masked() == {} and resolved.explain() == []


def test_a_plugin_without_a_model_refuses_every_setting(tmp_path: Path) -> None:
    src = sources(
        tmp_path,
        global_text='[plugins.echo]\nprefix = "x"\n',
        environ={"ACP_PLUGIN_ECHO__DB__PATH": "y"},
        user_text="[plugins.echo.db]\npath = 1\n",
    )

    problems = problems_of(src, runtime={"z": 1}, model=None)

    assert problems == [
        f"'echo' setting 'prefix': 'echo' has no settings; remove it "
        f"[from {tmp_path / 'global.toml'}:2]",
        "'echo' setting 'db.path': 'echo' has no settings; remove it from the environment "
        "[from ACP_PLUGIN_ECHO__DB__PATH]",
        f"'echo' setting 'db': 'echo' has no settings; remove it [from {tmp_path / 'user.toml'}:1]",
        "'echo' setting 'z': 'echo' has no settings; remove it [from runtime override]",
    ]


# -- the files -----------------------------------------------------------------------------


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    src = sources(tmp_path, user_text='[plugins.echo]\nprefix = "a"\nrepeat = = 2\n')

    with pytest.raises(ConfigError) as caught:
        resolve(src)

    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'user.toml'}:3: config file is not valid TOML: ")
    assert "line 3" in message


def test_a_plugin_table_that_is_not_a_table_is_reported(tmp_path: Path) -> None:
    src = sources(tmp_path, global_text='[plugins]\necho = "loud"\n')

    with pytest.raises(
        ConfigError, match=r"global.toml:2: 'plugins.echo' must be a table, not str"
    ):
        resolve(src)


def test_a_named_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    src = ConfigSources(global_file=tmp_path / "missing.toml", environ={})

    with pytest.raises(ConfigError, match=r"config file .*missing.toml does not exist"):
        resolve(src)


def test_sources_from_the_command_line_win(tmp_path: Path) -> None:
    environ = {"ACP_CONFIG_FILE": "/env/global.toml", "ACP_USER_CONFIG": "/env/user.toml"}

    src = ConfigSources.from_environment(
        global_file=tmp_path / "g.toml", user_file=tmp_path / "u.toml", environ=environ
    )

    assert (src.global_file, src.user_file) == (tmp_path / "g.toml", tmp_path / "u.toml")
    assert src.environ == environ


def test_sources_from_the_environment(tmp_path: Path) -> None:
    environ = {"ACP_CONFIG_FILE": "/env/global.toml", "ACP_USER_CONFIG": "/env/user.toml"}

    src = ConfigSources.from_environment(environ=environ)

    assert (src.global_file, src.user_file) == (Path("/env/global.toml"), Path("/env/user.toml"))


def test_default_sources_are_used_only_if_they_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}

    assert ConfigSources.from_environment(environ=environ) == ConfigSources(environ=environ)

    toml(tmp_path / "acp-plugins.toml", "")
    (tmp_path / "xdg" / "acp-plugins").mkdir(parents=True)
    user = toml(tmp_path / "xdg" / "acp-plugins" / "config.toml", "")
    src = ConfigSources.from_environment(environ=environ)

    assert (src.global_file, src.user_file) == (Path("acp-plugins.toml"), user)


def test_the_user_file_defaults_to_home_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    user = tmp_path / ".config" / "acp-plugins" / "config.toml"
    user.parent.mkdir(parents=True)
    toml(user, "")

    assert ConfigSources.from_environment(environ={}).user_file == user


def test_by_default_the_sources_read_this_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACP_PLUGIN_ECHO__REPEAT", "6")
    monkeypatch.delenv("ACP_CONFIG_FILE", raising=False)

    assert resolve(ConfigSources()).values["repeat"] == 6


# -- PluginConfig --------------------------------------------------------------------------


def config(settings: Mapping[str, Any]) -> PluginConfig:
    return PluginConfig(plugin_id="echo", version="1.0.0", settings=settings)


def test_validate_accepts_settings_that_fit_the_model() -> None:
    assert config({"repeat": 2, "db": {"pool": {"size": 3}}}).validate(EchoSettings) is True
    assert config({}).validate(EchoSettings) is True
    assert config({}).validate() is True


def test_validate_refuses_settings_that_do_not_fit() -> None:
    with pytest.raises(ConfigError) as caught:
        config({"repeat": "x", "colour": 1, "token": 5}).validate(EchoSettings)

    assert [(p.path, p.layer, p.source, p.value) for p in caught.value.problems] == [
        ("repeat", "settings", "PluginConfig.settings", "x"),
        ("token", "settings", "PluginConfig.settings", MASK),
        ("colour", "settings", "PluginConfig.settings", None),
    ]


def test_validate_without_a_model_refuses_any_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        config({"x": 1}).validate()

    assert [str(p) for p in caught.value.problems] == [
        "'echo' setting 'x': 'echo' has no settings; remove it [from PluginConfig.settings]"
    ]


def test_merge_makes_a_new_config_with_nested_settings_merged() -> None:
    base = PluginConfig(
        "echo", "1.0.0", False, {"db": {"path": "a", "pool": {"size": 1}}}, {"A": "1"}
    )

    merged = base.merge({"db": {"pool": {"recycle": 2}}, "tags": ["x"]})

    assert merged == PluginConfig(
        "echo",
        "1.0.0",
        False,
        {"db": {"path": "a", "pool": {"size": 1, "recycle": 2}}, "tags": ["x"]},
        {"A": "1"},
    )
    assert base.settings == {"db": {"path": "a", "pool": {"size": 1}}}  # unchanged


def test_merge_replaces_what_is_not_a_mapping_on_both_sides() -> None:
    base = config({"db": {"path": "a"}, "tags": ["x"]})

    assert base.merge({"db": "flat", "tags": ["y"]}).settings == {"db": "flat", "tags": ["y"]}
    assert config({"db": "flat"}).merge({"db": {"path": "b"}}).settings == {"db": {"path": "b"}}


def reference_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = reference_merge(out[key], value)
        else:
            out[key] = value
    return out


def settings(depth: int = 2) -> st.SearchStrategy[dict[str, Any]]:
    """Nested settings in which a key keeps its shape (a table stays a table), as a settings
    model guarantees: "a" to "c" hold plain values, "x" and "y" tables."""
    plain = st.dictionaries(
        st.sampled_from("abc"),
        st.integers() | st.text(max_size=3) | st.none() | st.lists(st.integers(), max_size=2),
        max_size=3,
    )
    if depth == 0:
        return plain
    tables = st.dictionaries(st.sampled_from("xy"), settings(depth - 1), max_size=2)
    return st.builds(lambda values, nested: {**values, **nested}, plain, tables)


SETTINGS = settings()


@given(SETTINGS, SETTINGS, SETTINGS)
def test_merging_twice_is_merging_the_merged_overrides(
    base: dict[str, Any], first: dict[str, Any], second: dict[str, Any]
) -> None:
    start = config(base)

    assert start.merge(first).merge(second) == start.merge(reference_merge(first, second))
    assert start.merge(first).settings == reference_merge(base, first)


@given(SETTINGS)
def test_merging_nothing_changes_nothing(settings: dict[str, Any]) -> None:
    assert config(settings).merge({}) == config(settings)


def test_validate_reports_a_broken_constraint() -> None:
    class Bounded(PluginSettings):
        workers: int = Field(2, ge=1)

    with pytest.raises(ConfigError, match="'echo' setting 'workers': Input should be greater"):
        config({"workers": 0}).validate(Bounded)
