"""The tools sample, installed with pip and driven through a real host."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from acp_plugins import (
    CommandResult,
    CommandUsageError,
    PluginHost,
    PluginState,
    UnknownCommand,
)
from acp_plugins.loading.trust import TRUST_ALL

Run = Callable[..., Any]


@pytest.fixture()
def host(samples_dir: Path, tmp_path: Path, run: Run) -> Iterator[PluginHost]:
    host = PluginHost(isolation=TRUST_ALL, search_path=[samples_dir], data_root=tmp_path / "data")
    run(host.start())
    yield host
    run(host.stop())


def test_tools_is_active_with_its_commands(host: PluginHost) -> None:
    assert host.record("tools").state is PluginState.ACTIVE
    names = {entry.qualified_name for entry in host.command_entries()}
    assert {"tools:add", "tools:upper", "tools:wordcount", "tools:time"} <= names


@pytest.mark.parametrize(
    ("args", "output", "total"),
    [
        (["1", "2"], "3", 3.0),
        (["1.5", "2.25"], "3.75", 3.75),
        (["-4", "1e3"], "996", 996.0),
        (["0.1", "0.2"], repr(0.1 + 0.2), 0.1 + 0.2),
    ],
)
def test_add(host: PluginHost, run: Run, args: list[str], output: str, total: float) -> None:
    result: CommandResult = run(host.run_command("add", args))
    assert result.success
    assert result.exit_code == 0
    assert result.output == output
    assert result.data == {"sum": total}


@pytest.fixture(params=["trusted", "isolated"])
def either_host(
    request: pytest.FixtureRequest, samples_dir: Path, tmp_path: Path, run: Run
) -> Iterator[PluginHost]:
    isolation = TRUST_ALL if request.param == "trusted" else None
    host = PluginHost(isolation=isolation, search_path=[samples_dir], data_root=tmp_path / "d")
    run(host.start())
    handle = host.record("tools").handle
    assert handle is not None and handle.isolated is (request.param == "isolated")
    yield host
    run(host.stop())


@pytest.mark.parametrize(
    ("command", "args", "output"),
    [
        ("add", ["1", "--digits", "1", "1.26"], "2.3"),
        ("add", ["--digits=0", "1.4", "1.4"], "3"),
        ("upper", ["--reverse", "ab", "cd"], "DC BA"),
        ("upper", ["ab", "--", "--reverse"], "AB --REVERSE"),
    ],
)
def test_options_reach_the_plugin_converted_in_either_mode(
    either_host: PluginHost, run: Run, command: str, args: list[str], output: str
) -> None:
    assert either_host.record("tools").state is PluginState.ACTIVE
    result: CommandResult = run(either_host.run_command(command, args))
    assert result.output == output


def test_upper_takes_every_argument(host: PluginHost, run: Run) -> None:
    result: CommandResult = run(host.run_command("upper", ["hello", "big world"]))
    assert result.output == "HELLO BIG WORLD"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["one"], 1),
        (["one", "two three"], 3),
        (["  spaced   out  ", "x"], 3),
        ([""], 0),
    ],
)
def test_wordcount(host: PluginHost, run: Run, args: list[str], words: int) -> None:
    result: CommandResult = run(host.run_command("wordcount", args))
    assert result.output == str(words)
    assert result.data == {"words": words}


def test_time_is_current_utc_iso(host: PluginHost, run: Run) -> None:
    result: CommandResult = run(host.run_command("time"))
    moment = datetime.fromisoformat(result.output)
    assert moment.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - moment) < timedelta(seconds=30)
    assert result.data == {"time": result.output}


def test_namespaced_command(host: PluginHost, run: Run) -> None:
    result: CommandResult = run(host.run_command("tools:add", ["2", "40"]))
    assert result.output == "42"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["1"], "missing argument B"),
        (["1", "x"], "B must be float, not 'x'"),
        (["1", "2", "3"], "1 argument(s) too many"),
        ([], "missing argument A"),
    ],
)
def test_add_bad_arguments(host: PluginHost, run: Run, args: list[str], problem: str) -> None:
    with pytest.raises(CommandUsageError) as caught:
        run(host.run_command("add", args))
    assert "usage: add A B" in str(caught.value)
    assert problem in str(caught.value)
    assert caught.value.plugin_id == "tools"


@pytest.mark.parametrize("command", ["upper", "wordcount"])
def test_variadic_commands_need_some_text(host: PluginHost, run: Run, command: str) -> None:
    with pytest.raises(CommandUsageError, match=rf"usage: {command} TEXT\.\.\."):
        run(host.run_command(command, []))


def test_time_takes_no_arguments(host: PluginHost, run: Run) -> None:
    with pytest.raises(CommandUsageError, match="usage: time"):
        run(host.run_command("time", ["now"]))


@pytest.mark.parametrize("name", ["subtract", "tools:subtract", "nobody:add"])
def test_unknown_command(host: PluginHost, run: Run, name: str) -> None:
    with pytest.raises(UnknownCommand):
        run(host.run_command(name, ["1", "2"]))


def test_calls_are_counted_on_the_record(host: PluginHost, run: Run) -> None:
    run(host.run_command("add", ["1", "2"]))
    run(host.run_command("upper", ["a"]))
    stats = host.record("tools").stats("execute_command")
    assert stats.calls == 2
    assert stats.errors == 0
