"""Tests for acp_plugins.runtime.commands: command names, conflicts and argument checks.

``calc`` (fixture ``acp-fx-calc``: ``add N...`` and ``neg N``) and the ``tools``
sample (``add A B``, ``upper TEXT...``, ``wordcount TEXT...``, ``time``) both
offer ``add``: the plain name is a conflict, each namespaced name works.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from acp_plugins import (
    ArgumentDefinition,
    CommandConflictError,
    CommandDefinition,
    CommandResult,
    CommandUsageError,
    OptionDefinition,
    PluginHost,
    UnknownCommand,
)
from acp_plugins.loading.trust import TRUST_ALL
from acp_plugins.runtime.commands import parse_arguments
from conftest import fixture_plugin, sample


@pytest.fixture(scope="module")
def plugins_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(sample("acp-tools"), fixture_plugin("acp-fx-calc"))


@pytest.fixture()
def host(plugins_dir: Path, tmp_path: Path, run: Callable[..., Any]) -> PluginHost:
    started = PluginHost(
        isolation=TRUST_ALL, search_path=[plugins_dir], data_root=tmp_path, timeout=0.5
    )
    run(started.start())
    assert {record.plugin_id for record in started.active()} == {"calc", "tools"}
    return started


# -- names and conflicts ----------------------------------------------------------------


def test_a_shared_command_name_is_reported_as_a_conflict(host: PluginHost) -> None:
    assert host.commands.conflicts == {"add": ["calc", "tools"]}


def test_the_plain_name_of_a_conflicting_command_is_refused(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    with pytest.raises(CommandConflictError) as caught:
        run(host.run_command("add", ["1", "2"]))
    assert caught.value.message == (
        "command 'add' is offered by several plugins; name one of: calc:add, tools:add"
    )
    assert "execute_command" not in host.record("calc").metrics  # nobody was called
    assert "execute_command" not in host.record("tools").metrics


@pytest.mark.parametrize(
    ("name", "args", "output"),
    [
        ("calc:add", ["1", "2", "3"], "6"),
        ("tools:add", ["1.5", "2"], "3.5"),
        ("upper", ["quiet", "please"], "QUIET PLEASE"),  # one offerer: the plain name works
        ("tools:upper", ["x"], "X"),
    ],
)
def test_namespaced_names_reach_each_plugin(
    host: PluginHost, run: Callable[..., Any], name: str, args: list[str], output: str
) -> None:
    result = run(host.run_command(name, args))
    assert isinstance(result, CommandResult)
    assert result.success
    assert result.output == output


def test_a_dict_returned_by_execute_command_becomes_a_command_result(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    result = run(host.run_command("neg", ["3"]))  # calc answers {"output": "-3"}
    assert result == CommandResult(success=True, output="-3", data=None, exit_code=0)


def test_the_conflict_ends_when_one_side_leaves(host: PluginHost, run: Callable[..., Any]) -> None:
    run(host.suspend("tools"))
    assert host.commands.conflicts == {}
    assert run(host.run_command("add", ["1", "2"])).output == "3"  # calc's add now
    with pytest.raises(UnknownCommand):
        run(host.run_command("upper", ["x"]))
    run(host.resume("tools"))
    assert host.commands.conflicts == {"add": ["calc", "tools"]}


def test_every_command_is_listed_by_qualified_name(host: PluginHost) -> None:
    assert [entry.qualified_name for entry in host.command_entries()] == [
        "calc:add",
        "calc:neg",
        "tools:add",
        "tools:time",
        "tools:upper",
        "tools:wordcount",
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("divide", "no active plugin offers command 'divide'; "
         "`acp-plugins commands` lists what is available"),
        ("calc:upper", "no active plugin 'calc' offers command 'upper'; "
         "`acp-plugins commands` lists what is available"),
        ("ghost:add", "no active plugin 'ghost' offers command 'add'; "
         "`acp-plugins commands` lists what is available; no plugin 'ghost' is installed"),
    ],
)  # fmt: skip
def test_unknown_commands(
    host: PluginHost, run: Callable[..., Any], name: str, message: str
) -> None:
    with pytest.raises(UnknownCommand) as caught:
        run(host.run_command(name))
    assert caught.value.message == message


def test_an_unloaded_plugins_commands_are_gone(host: PluginHost, run: Callable[..., Any]) -> None:
    run(host.unload("calc"))
    with pytest.raises(UnknownCommand, match="no active plugin 'calc' offers command 'add'"):
        run(host.run_command("calc:add", ["1"]))
    assert run(host.run_command("add", ["1", "2"])).output == "3"  # tools' add, unambiguous


# -- arguments are checked before the plugin runs -----------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("calc:neg", [], "calc:neg: missing argument N; usage: neg N"),
        ("calc:neg", ["1", "2"], "calc:neg: 1 argument(s) too many; usage: neg N"),
        ("calc:add", ["1", "two"], "calc:add: N must be int, not 'two'; usage: add N..."),
        ("tools:add", ["1"], "tools:add: missing argument B; usage: add A B [--digits INT]"),
        ("tools:time", ["now"], "tools:time: 1 argument(s) too many; usage: time"),
    ],
)
def test_bad_arguments_are_refused_with_the_usage(
    host: PluginHost, run: Callable[..., Any], name: str, args: list[str], message: str
) -> None:
    plugin_id = name.partition(":")[0]
    with pytest.raises(CommandUsageError) as caught:
        run(host.run_command(name, args))
    assert caught.value.message == message
    assert caught.value.plugin_id == plugin_id
    assert "execute_command" not in host.record(plugin_id).metrics


ADD = CommandDefinition(
    name="add",
    arguments=[
        ArgumentDefinition(name="a", type="float"),
        ArgumentDefinition(name="b", type="float"),
    ],
)
GREET = CommandDefinition(name="greet", arguments=[ArgumentDefinition(name="name", required=False)])
UPPER = CommandDefinition(name="upper", arguments=[ArgumentDefinition(name="text", variadic=True)])
SUM = CommandDefinition(
    name="sum", arguments=[ArgumentDefinition(name="n", type="int", variadic=True, required=False)]
)
HEAD = CommandDefinition(
    name="head",
    arguments=[
        ArgumentDefinition(name="file"),
        ArgumentDefinition(name="lines", type="int", required=False),
    ],
)
SET = CommandDefinition(
    name="set",
    arguments=[ArgumentDefinition(name="key"), ArgumentDefinition(name="value", type="bool")],
)
TIME = CommandDefinition(name="time")


@pytest.mark.parametrize(
    ("definition", "usage"),
    [
        (ADD, "add A B"),
        (GREET, "greet [NAME]"),
        (UPPER, "upper TEXT..."),
        (SUM, "sum [N...]"),
        (HEAD, "head FILE [LINES]"),
        (SET, "set KEY VALUE"),
        (TIME, "time"),
    ],
)
def test_usage_lines(definition: CommandDefinition, usage: str) -> None:
    assert definition.usage == usage


@pytest.mark.parametrize(
    ("definition", "args", "problem"),
    [
        # missing
        (ADD, [], "missing argument A"),
        (ADD, ["1"], "missing argument B"),
        (UPPER, [], "missing argument TEXT"),
        (HEAD, [], "missing argument FILE"),
        (SET, ["debug"], "missing argument VALUE"),
        # too many
        (ADD, ["1", "2", "3"], "1 argument(s) too many"),
        (GREET, ["ann", "bob", "cy"], "2 argument(s) too many"),
        (HEAD, ["f", "3", "x"], "1 argument(s) too many"),
        (TIME, ["now"], "1 argument(s) too many"),
        # wrong type
        (ADD, ["one", "2"], "A must be float, not 'one'"),
        (ADD, ["1", "2x"], "B must be float, not '2x'"),
        (SUM, ["1", "2", "3.5"], "N must be int, not '3.5'"),
        (HEAD, ["f", "ten"], "LINES must be int, not 'ten'"),
        (SET, ["debug", "maybe"], "VALUE must be bool, not 'maybe'"),
    ],
)
def test_parse_arguments_refuses(
    definition: CommandDefinition, args: list[str], problem: str
) -> None:
    with pytest.raises(CommandUsageError) as caught:
        parse_arguments("demo", definition, args)
    assert caught.value.message == (f"demo:{definition.name}: {problem}; usage: {definition.usage}")
    assert caught.value.plugin_id == "demo"


@pytest.mark.parametrize(
    ("definition", "args"),
    [
        (ADD, ["1", "2.5"]),
        (ADD, ["-1e3", "0"]),
        (GREET, []),
        (GREET, ["ann"]),
        (UPPER, ["a"]),
        (UPPER, ["a", "b", "c", "d"]),
        (SUM, []),
        (SUM, ["1", "2", "3"]),
        (HEAD, ["f"]),
        (HEAD, ["f", "10"]),
        (SET, ["debug", "yes"]),
        (SET, ["debug", "FALSE"]),
        (SET, ["debug", "0"]),
        (TIME, []),
    ],
)
def test_parse_arguments_accepts(definition: CommandDefinition, args: list[str]) -> None:
    assert parse_arguments("demo", definition, args).args == args


FORECAST = CommandDefinition(
    name="forecast",
    arguments=[
        ArgumentDefinition(name="city"),
        ArgumentDefinition(name="extra", type="int", required=False, variadic=True),
    ],
    options=[
        OptionDefinition(name="days", type="int", default=1),
        OptionDefinition(name="metric", type="bool"),
        OptionDefinition(name="max-temp", type="float", required=True),
    ],
)


def test_a_usage_line_shows_the_options() -> None:
    assert FORECAST.usage == "forecast CITY [EXTRA...] [--days INT] [--metric] --max-temp FLOAT"


@pytest.mark.parametrize(
    ("tokens", "args", "params"),
    [
        (["paris", "--max-temp", "30"], ["paris"],
         {"city": "paris", "extra": [], "days": 1, "metric": False, "max_temp": 30.0}),
        (["--days=3", "paris", "--metric", "--max-temp=1.5", "4", "5"], ["paris", "4", "5"],
         {"city": "paris", "extra": [4, 5], "days": 3, "metric": True, "max_temp": 1.5}),
        (["--max-temp", "-2", "--", "--paris"], ["--paris"],
         {"city": "--paris", "extra": [], "days": 1, "metric": False, "max_temp": -2.0}),
    ],
)  # fmt: skip
def test_options_are_parsed_anywhere_and_delivered_typed(
    tokens: list[str], args: list[str], params: dict[str, object]
) -> None:
    parsed = parse_arguments("weather", FORECAST, tokens)
    assert parsed.args == args
    assert parsed.params == params
    assert all(type(parsed.params[k]) is type(v) for k, v in params.items())


def test_positional_arguments_are_delivered_converted() -> None:
    parsed = parse_arguments("demo", ADD, ["1", "2.5"])
    assert parsed.params == {"a": 1.0, "b": 2.5}
    assert parse_arguments("demo", SET, ["debug", "no"]).params["value"] is False
    assert parse_arguments("demo", GREET, []).params == {"name": None}


@pytest.mark.parametrize(
    ("tokens", "problem"),
    [
        (["paris"], "missing option --max-temp"),
        (["paris", "--max-temp"], "--max-temp needs a value (float)"),
        (["paris", "--max-temp", "hot"], "--max-temp must be float, not 'hot'"),
        (["paris", "--max-temp", "nan"], "--max-temp must be float, not 'nan'"),
        (["paris", "--max-temp=1", "--metric=yes"], "--metric is a flag and takes no value"),
        (["paris", "--max-temp=1", "--dayz", "2"], "unknown option --dayz (did you mean --days?)"),
        (["paris", "--max-temp=1", "--zzz"],
         "unknown option --zzz (options: --days, --metric, --max-temp)"),
        (["paris", "--max-temp=1", "x"], "EXTRA must be int, not 'x'"),
    ],
)  # fmt: skip
def test_bad_options_are_refused_with_the_usage(tokens: list[str], problem: str) -> None:
    with pytest.raises(CommandUsageError) as caught:
        parse_arguments("weather", FORECAST, tokens)
    assert caught.value.message == f"weather:forecast: {problem}; usage: {FORECAST.usage}"


def test_a_command_without_options_says_how_to_pass_dashes() -> None:
    with pytest.raises(CommandUsageError, match="put '--' before arguments"):
        parse_arguments("demo", UPPER, ["--loud"])
    assert parse_arguments("demo", UPPER, ["--", "--loud"]).args == ["--loud"]


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ([{"name": "x", "type": "bool", "required": True}], "flag '--x' cannot be required"),
        ([{"name": "city"}], "names used twice among arguments and options: city"),
        ([{"name": "Days"}], "String should match pattern"),
    ],
)
def test_bad_option_definitions_are_refused(options: list[dict[str, object]], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        CommandDefinition.model_validate(
            {"name": "forecast", "arguments": [{"name": "city"}], "options": options}
        )
