"""End-to-end tests of the ``acp-plugins`` command line.

Most run ``main(argv)`` in-process (fast, output captured); a few run the real
``python -m acp_plugins`` in a subprocess to prove that errors are one line and
a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from acp_plugins.cli import main
from conftest import fixture_plugin, sample

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def zoo_dir(install_plugins: Callable[..., Path]) -> Path:
    """The samples next to every broken fixture plugin."""
    return install_plugins(
        sample("acp-echo"),
        sample("acp-tools"),
        sample("acp-sqlite-store"),
        sample("acp-activity-analytics"),
        fixture_plugin("acp-fx-rejected"),
        fixture_plugin("acp-fx-deps"),
        fixture_plugin("acp-fx-faulty"),
        fixture_plugin("acp-fx-calc"),
    )


def _cli_for(
    plugin_dir: Path, data_dir: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> Cli:
    def cli(*argv: str) -> tuple[int, str, str]:
        common = ["--plugin-path", str(plugin_dir), "--data-dir", str(data_dir), *extra]
        status = main([argv[0], *common, *argv[1:]])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return cli


@pytest.fixture()
def cli(samples_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    # the command line's own behaviour, on trusted samples: isolation is tested below,
    # in test_cli_config.py (every config command) and in test_isolation.py
    return _cli_for(samples_dir, tmp_path / "data", capsys, "--trust", "*")


@pytest.fixture()
def isolated_cli(samples_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return _cli_for(samples_dir, tmp_path / "data", capsys)


@pytest.fixture()
def zoo_cli(zoo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    # the broken fixture plugins use what isolation refuses (os, files): trust them
    return _cli_for(zoo_dir, tmp_path / "data", capsys, "--trust", "*")


def test_list_shows_every_sample_waiting_for_its_first_use(cli: Cli) -> None:
    status, out, _ = cli("list")
    assert status == 0
    for plugin_id in ("echo", "tools", "sqlite-store", "activity-analytics"):
        line = next(line for line in out.splitlines() if line.startswith(plugin_id + " "))
        assert " waiting " in line
    assert "0 of 4 plugins active, 4 waiting for their first use (started when needed)" in out


def test_list_shows_every_sample_active_without_on_demand(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACP_HOST_ON_DEMAND", "false")
    status, out, _ = cli("list")
    assert status == 0
    for plugin_id in ("echo", "tools", "sqlite-store", "activity-analytics"):
        line = next(line for line in out.splitlines() if line.startswith(plugin_id + " "))
        assert " active " in line
    assert "4 of 4 plugins active" in out and "waiting" not in out


def test_list_json_reports_refused_plugins_with_reasons(zoo_cli: Cli) -> None:
    status, out, _ = zoo_cli("list", "--json")
    assert status == 0
    records = {item["plugin_id"]: item for item in json.loads(out)}
    assert records["echo"]["state"] == "active"
    assert records["greedy"]["state"] == "discovered"
    assert "'manage-database'" in records["greedy"]["reason"]
    assert "cycle-a -> cycle-b -> cycle-c -> cycle-a" in records["cycle-b"]["reason"]
    assert "permissions.1" in records["bad-manifest"]["reason"]


def test_info_prints_the_manifest_and_state(cli: Cli) -> None:
    status, out, _ = cli("info", "activity-analytics")
    assert status == 0
    assert "state" in out and "active" in out
    assert "sqlite-store ^1.0.0" in out
    assert "IAnalyticsProvider" in out


def test_info_of_a_refused_plugin_exits_1_with_reason(zoo_cli: Cli) -> None:
    status, out, _ = zoo_cli("info", "needs-ghost", "--json")
    assert status == 1
    info = json.loads(out)
    assert info["state"] == "discovered"
    assert "'ghost'" in info["reason"]


def test_info_of_an_unknown_plugin_is_not_found(cli: Cli) -> None:
    status, out, err = cli("info", "no-such-plugin")
    assert status == 3
    assert out == ""
    assert err.startswith("error: no plugin 'no-such-plugin' is installed")


def test_send_prints_who_answered(cli: Cli) -> None:
    status, out, _ = cli("send", "--type", "echo", "hello", "agents")
    assert status == 0
    assert out.strip() == "echo (confidence 1.00): echo: hello agents"


def test_send_json_and_unhandled_message(cli: Cli) -> None:
    status, out, _ = cli("send", "--type", "telepathy", "--json", "hi")
    assert status == 1
    routed = json.loads(out)
    assert routed["handled"] is False
    assert routed["plugin_id"] is None
    assert "telepathy" in routed["response"]["content"]


def test_run_command_and_json(cli: Cli) -> None:
    status, out, _ = cli("run", "add", "2", "40")
    assert status == 0
    assert out.strip() in {"42", "42.0"}
    status, out, _ = cli("run", "--json", "tools:add", "1.5", "1")
    assert status == 0
    assert json.loads(out)["plugin_id"] == "tools"
    assert json.loads(out)["data"] == {"sum": 2.5}


def test_run_with_bad_arguments_prints_usage(cli: Cli) -> None:
    status, out, err = cli("run", "add", "1")
    assert status == 2
    assert out == ""
    assert "usage: add A B" in err


def test_conflicting_command_names_both_plugins(zoo_cli: Cli) -> None:
    status, _, err = zoo_cli("run", "add", "1", "2")
    assert status == 2
    assert "calc:add" in err and "tools:add" in err
    status, out, _ = zoo_cli("run", "calc:add", "1", "2", "3")
    assert (status, out.strip()) == (0, "6")
    status, out, _ = zoo_cli("commands")
    assert "conflict: 'add' is offered by calc, tools" in out


def test_unknown_command_is_not_found(cli: Cli) -> None:
    status, _, err = cli("run", "teleport")
    assert status == 3
    assert "no active plugin offers command 'teleport'" in err


def test_query_table_and_json(cli: Cli) -> None:
    status, out, _ = cli("query", "agent-events", "--limit", "3", "--order-by=-at")
    assert status == 0
    assert out.splitlines()[0].split()[:2] == ["id", "agent"]
    assert "3 of" in out
    status, out, _ = cli("query", "agent-events", "--json", "--limit", "2", "--fields", "agent")
    result = json.loads(out)
    assert result["source_id"] == "agent-events"
    assert [list(row) for row in result["rows"]] == [["agent"], ["agent"]]


def test_query_unknown_source_is_not_found(cli: Cli) -> None:
    status, _, err = cli("query", "nowhere")
    assert status == 3
    assert "no active plugin provides data source 'nowhere'" in err


def test_query_bad_field_is_a_plugin_error_in_one_line(cli: Cli) -> None:
    status, _, err = cli("query", "agent-events", "--where", "colour=blue")
    assert status == 4
    assert "colour" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["markdown", "json", "csv"])
def test_report_in_each_format(cli: Cli, fmt: str) -> None:
    status, out, _ = cli("report", "--format", fmt)
    assert status == 0
    if fmt == "json":
        assert json.loads(out)["source"] == "activity-analytics"
    elif fmt == "csv":
        assert out.splitlines()[0] == "metric,labels,value,start,end"
    else:
        assert "| metric | labels | value |" in out


def test_sources_and_metrics_listings(cli: Cli) -> None:
    status, out, _ = cli("sources", "--json")
    assert status == 0
    assert {s["source_id"] for s in json.loads(out)} >= {"agent-events", "agents"}
    status, out, _ = cli("metrics", "--json")
    assert status == 0
    assert "events_total" in {m["name"] for m in json.loads(out)["activity-analytics"]}


def test_schema_is_the_manifest_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert set(schema["required"]) == {"manifest_version", "plugin_id", "name", "version"}
    assert "read-messaging" in json.dumps(schema)


def test_validate_a_good_project(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(sample("acp-echo"))]) == 0
    assert capsys.readouterr().out.startswith("ok    echo:")


def test_validate_a_bad_project_names_fields(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["validate", "--json", str(fixture_plugin("acp-fx-rejected"))])
    assert status == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    by_id = {plugin["plugin_id"]: plugin for plugin in report["plugins"]}
    paths = {error["path"]: error["value"] for error in by_id["bad-manifest"]["errors"]}
    assert paths["permissions.1"] == "read-everything"
    assert paths["interfaces.1"] == "ITeleporter"
    assert paths["version"] == "one.two"
    assert "colour" in paths
    assert (
        by_id["greedy"]["valid"] is True
    )  # its manifest is fine; only the host's policy refuses it
    [impostor] = by_id["impostor"]["errors"]
    assert impostor["path"] == "plugin_id"
    assert "differs from the entry point name" in impostor["problem"]


def test_validate_an_installed_plugin_imports_and_checks_hooks(zoo_cli: Cli) -> None:
    status, out, _ = zoo_cli("validate", "echo")
    assert status == 0
    status, out, _ = zoo_cli("validate", "half-handler")
    assert status == 1
    assert "does not implement get_supported_message_types" in out


def test_grant_option_lets_a_refused_plugin_load(zoo_cli: Cli) -> None:
    status, out, _ = zoo_cli(
        "info", "greedy", "--json", "--grant", "greedy=manage-database,execute-commands"
    )
    assert status == 0
    assert json.loads(out)["state"] == "active"
    status, _, err = zoo_cli("list", "--grant", "greedy=fly")
    assert status == 2
    assert "--grant" in err and "fly" in err


def _subprocess_cli(
    *argv: str, plugin_dir: Path, data_dir: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ACP_HOST_PLUGIN_PATH": json.dumps([str(plugin_dir)]),
        "ACP_HOST_DATA_DIR": str(data_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "acp_plugins", *argv],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("argv", "status", "fragment"),
    [
        (("run", "add", "x", "1"), 2, "A must be float, not 'x'; usage: add A B"),
        (("info", "ghost"), 3, "no plugin 'ghost' is installed"),
        (("query", "agent-events", "--since", "soon"), 2, "is not a duration"),
        (("frobnicate",), 2, "invalid choice"),
        (("send",), 2, "the following arguments are required"),
    ],
)
def test_real_process_errors_are_one_clear_line(
    samples_dir: Path, tmp_path: Path, argv: tuple[str, ...], status: int, fragment: str
) -> None:
    result = _subprocess_cli(*argv, plugin_dir=samples_dir, data_dir=tmp_path)
    assert result.returncode == status
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_plugin_over_its_timeout_fails_cleanly(zoo_dir: Path, tmp_path: Path) -> None:
    result = _subprocess_cli(
        "send", "--timeout", "0.3", "--type", "block", "0.8",
        plugin_dir=zoo_dir, data_dir=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert "unhandled: every plugin that could handle this 'block' message failed" in result.stdout
    assert "warning: blocking: 'blocking' did not answer handle_message within 0.3 s" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_listings_for_people_and_for_scripts(cli: Cli) -> None:
    status, out, _ = cli("commands", "--json")
    assert status == 0
    commands = {item["qualified_name"]: item for item in json.loads(out)}
    assert commands["tools:add"]["usage"] == "add A B [--digits INT]"
    assert commands["tools:add"]["conflict"] is False
    status, out, _ = cli("sources")
    assert status == 0
    assert out.splitlines()[0].split() == ["SOURCE", "PLUGIN", "FIELDS", "DESCRIPTION"]
    assert any(line.startswith("agent-events  sqlite-store") for line in out.splitlines())
    status, out, _ = cli("metrics")
    assert status == 0
    assert any(line.startswith("events_total") for line in out.splitlines())


def test_help_and_version_exit_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert "core 2.0.0" in capsys.readouterr().out
    assert main(["run", "--help"]) == 0
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["new", "schema"])
def test_the_help_of_a_command_without_a_host_shows_no_host_options(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"]) == 0
    shown = capsys.readouterr().out
    assert "--debug" in shown
    for option in ("--trust", "--grant", "--plugin-path", "--server", "--timeout"):
        assert option not in shown, option
    assert main(["list", "--help"]) == 0
    assert "--trust" in capsys.readouterr().out  # a command with a host shows them
    # accepted after it all the same, as after every command
    assert main(["schema", "--trust", "echo"]) == 0


def test_audit_lists_refusals_and_loads_filtered_by_plugin(zoo_cli: Cli, cli: Cli) -> None:
    status, _, _ = zoo_cli("list")
    assert status == 0
    status, out, _ = zoo_cli("audit", "--plugin", "greedy", "--json")
    assert status == 0
    entries = json.loads(out)
    refused = {(e["action"], e["outcome"], e["permission"]) for e in entries}
    assert ("refuse", "denied", "manage-database") in refused
    assert {e["plugin_id"] for e in entries} == {"greedy"}
    status, out, _ = zoo_cli("audit", "--action", "load", "--last", "1")
    assert status == 0 and "ACTION" in out and " load " in out
    assert len(out.strip().splitlines()) == 3  # header, rule, one entry


def test_the_samples_run_isolated_unless_trusted(isolated_cli: Cli) -> None:
    status, out, _ = isolated_cli("info", "echo", "--json")
    assert status == 0
    isolation = json.loads(out)["isolation"]
    assert isolation["mode"] == "isolated" and isolation["memory_mb"] == 100
    status, out, _ = isolated_cli("info", "echo")
    assert re.search(r"^runs +isolated worker, 100 MiB, 10% CPU, pid \d+$", out, re.MULTILINE)
    status, out, _ = isolated_cli("info", "echo", "--json", "--trust", "echo")
    assert json.loads(out)["isolation"] == {"mode": "in-process"}
    status, out, _ = isolated_cli("info", "echo", "--trust", "*")
    assert re.search(r"^runs +in-process \(trusted\)$", out, re.MULTILINE)
    status, out, _ = isolated_cli("audit", "--plugin", "echo", "--action", "worker", "--json")
    assert [e["outcome"] for e in json.loads(out)] == ["started", "started"]  # one per isolated run


def test_every_sample_answers_the_same_isolated(isolated_cli: Cli) -> None:
    status, out, _ = isolated_cli("send", "--type", "echo", "hello", "agents")
    assert (status, out.strip()) == (0, "echo (confidence 1.00): echo: hello agents")
    status, out, _ = isolated_cli("run", "add", "2", "40")
    assert (status, out.strip()) == (0, "42")
    status, out, _ = isolated_cli("query", "agents", "--json")
    assert status == 0 and json.loads(out)["total"] == 3
    status, out, _ = isolated_cli("report", "--format", "csv")
    assert status == 0 and out.startswith("metric,")
