"""Lazy activation: plugins whose manifests declare their contributions start on first use.

The four samples declare theirs (echo: message types, tools: commands, sqlite-store:
data sources, activity-analytics: nothing but its interface); the lazy fixture holds a
greeter that declares exactly what it offers and a promiser whose hooks differ from
its manifest. All are real installed distributions.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from acp_plugins import (
    TRUST_ALL,
    Interface,
    ManifestError,
    Message,
    PluginHost,
    PluginState,
    TimeRange,
    UnknownCommand,
    UnsupportedReportFormat,
    parse_manifest,
)
from acp_plugins.cli import main
from conftest import SAMPLE_PROJECTS, fixture_plugin, sample

Run = Callable[..., object]
SAMPLES = {"echo", "tools", "sqlite-store", "activity-analytics"}


@pytest.fixture(scope="module")
def lazy_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(
        fixture_plugin("acp-fx-lazy"), *(sample(name) for name in SAMPLE_PROJECTS)
    )


def _host(directory: Path, tmp_path: Path, **options: object) -> PluginHost:
    return PluginHost(
        search_path=[directory],
        data_root=tmp_path / "data",
        isolation=TRUST_ALL,
        **{"on_demand": True, **options},  # type: ignore[arg-type]
    )


def _states(host: PluginHost) -> dict[str, str]:
    return {
        pid: "waiting" if r.waiting else r.state.value for pid, r in sorted(host.records.items())
    }


def test_declared_plugins_wait_and_each_request_starts_only_what_it_needs(
    lazy_dir: Path, tmp_path: Path, run: Run
) -> None:
    host = _host(lazy_dir, tmp_path)
    run(host.start())
    try:
        assert {pid for pid, state in _states(host).items() if state == "waiting"} == {
            *SAMPLES,
            "greeter",
            "promiser",
        }
        assert host.active() == []
        answer = run(host.send(Message(type="echo", content="hi", sender="t")))
        assert answer.response.content == "echo: hi"  # type: ignore[attr-defined]
        assert [r.plugin_id for r in host.active()] == ["echo"]
        assert run(host.run_command("add", ["1", "2"])).output == "3"  # type: ignore[attr-defined]
        assert {r.plugin_id for r in host.active()} == {"echo", "tools"}
        run(host.query("agents"))
        assert {r.plugin_id for r in host.active()} == {"echo", "tools", "sqlite-store"}
        assert host.record("activity-analytics").waiting
        assert host.record("greeter").waiting and host.record("promiser").waiting
    finally:
        run(host.stop())


def test_a_plugin_started_on_first_use_starts_its_dependencies_first(
    lazy_dir: Path, tmp_path: Path, run: Run
) -> None:
    host = _host(lazy_dir, tmp_path)
    run(host.start())
    try:
        definitions = run(host.metric_definitions())
        assert list(definitions) == ["activity-analytics"]  # type: ignore[call-overload]
        assert {r.plugin_id for r in host.active()} == {"activity-analytics", "sqlite-store"}
        metrics = run(
            host.collect_metrics("activity-analytics", TimeRange.last(timedelta(hours=1)))
        )
        assert metrics.source == "activity-analytics"  # type: ignore[attr-defined]
    finally:
        run(host.stop())


def test_concurrent_first_uses_start_the_plugin_once(
    lazy_dir: Path, tmp_path: Path, run: Run
) -> None:
    host = _host(lazy_dir, tmp_path)
    run(host.start())

    async def together() -> list[str]:
        commands = [host.run_command("greet") for _ in range(5)]
        messages = [host.send(Message(type="greeting", content="hi", sender="t"))]
        done = await asyncio.gather(*commands, *messages)
        return [
            getattr(result, "output", None) or result.response.content  # type: ignore[attr-defined]
            for result in done
        ]

    try:
        answers = run(together())
        assert answers == ["hello (activated 1 time(s))"] * 5 + ["greetings (activated 1 time(s))"]
        loads = [e for e in host.audit.entries("greeter") if e.action == "load"]
        assert len(loads) == 1
    finally:
        run(host.stop())


def test_hooks_that_differ_from_the_declared_contributions_fail_the_plugin_once(
    lazy_dir: Path, tmp_path: Path, run: Run
) -> None:
    host = _host(lazy_dir, tmp_path)
    run(host.start())
    try:
        with pytest.raises(UnknownCommand, match="promise"):
            run(host.run_command("promise"))
        record = host.record("promiser")
        assert record.state is PluginState.INITIALIZED and not record.waiting
        assert record.reason == (
            "'promiser' does not match its manifest's contributes: declares commands "
            "'deliver' it does not offer; offers commands 'surprise' it does not declare "
            "(list exactly what its hooks return in manifest.json)"
        )
        with pytest.raises(UnknownCommand):
            run(host.run_command("promise"))  # not tried again
        assert len([e for e in host.audit.entries("promiser") if e.action == "load"]) == 1
        assert run(host.run_command("greet")).output  # type: ignore[attr-defined]
    finally:
        run(host.stop())


def test_without_on_demand_every_plugin_starts_with_the_host(
    lazy_dir: Path, tmp_path: Path, run: Run
) -> None:
    host = _host(lazy_dir, tmp_path, on_demand=False)
    run(host.start())
    try:
        assert {r.plugin_id for r in host.active()} == {*SAMPLES, "greeter"}
        assert host.record("promiser").state is PluginState.INITIALIZED
        assert not any(r.waiting for r in host.records.values())
    finally:
        run(host.stop())


def test_a_plugin_that_declares_nothing_starts_with_the_host(
    install_plugins: Callable[..., Path], tmp_path: Path, run: Run
) -> None:
    directory = install_plugins(fixture_plugin("acp-fx-calc"), sample("acp-echo"))
    host = _host(directory, tmp_path)
    run(host.start())
    try:
        assert _states(host) == {"calc": "active", "echo": "waiting"}
    finally:
        run(host.stop())


def test_a_waiting_plugin_that_a_starting_plugin_depends_on_starts_with_the_host(
    install_plugins: Callable[..., Path], tmp_path: Path, run: Run
) -> None:
    directory = install_plugins(
        fixture_plugin("acp-fx-fan"), sample("acp-tools"), sample("acp-echo")
    )
    host = _host(directory, tmp_path)
    run(host.start())
    try:
        assert _states(host) == {"echo": "waiting", "fan": "active", "tools": "active"}
    finally:
        run(host.stop())


def test_start_waiting_starts_every_waiting_plugin_of_an_interface(
    lazy_dir: Path, tmp_path: Path, run: Run
) -> None:
    host = _host(lazy_dir, tmp_path)
    run(host.start())
    try:
        run(host.start_waiting(Interface.COMMAND_HANDLER))
        entries = {e.qualified_name for e in host.command_entries()}
        assert {"tools:add", "greeter:greet"} <= entries
        assert host.record("echo").waiting  # a message handler only
        run(host.start_waiting())
        assert not any(r.waiting for r in host.records.values())
    finally:
        run(host.stop())


def test_a_waiting_plugin_that_is_uninstalled_is_no_longer_waited_for(
    lazy_dir: Path, tmp_path: Path, run: Run
) -> None:
    plugins = tmp_path / "plugins"
    shutil.copytree(lazy_dir, plugins)
    host = _host(plugins, tmp_path)
    run(host.start())
    try:
        assert host.record("echo").waiting
        for metadata in plugins.glob("acp_echo-*.dist-info"):
            shutil.rmtree(metadata)
        assert run(host.rescan()).removed == ["echo"]  # type: ignore[attr-defined]
        # every kind of request looks through the waiting plugins: none trips on echo
        answer = run(host.send(Message(type="echo", content="hi", sender="t")))
        assert not answer.response.handled  # type: ignore[attr-defined]
        assert run(host.run_command("add", ["1", "2"])).output == "3"  # type: ignore[attr-defined]
        run(host.start_waiting())
        assert "echo" not in host.records
        assert not any(r.waiting for r in host.records.values())
    finally:
        run(host.stop())


def test_a_report_format_outside_the_list_is_refused_before_the_plugin_is_asked(
    lazy_dir: Path, tmp_path: Path, run: Run
) -> None:
    host = _host(lazy_dir, tmp_path, on_demand=False)
    run(host.start())
    try:
        with pytest.raises(UnsupportedReportFormat) as refused:
            run(host.report("activity-analytics", "xml"))
        assert refused.value.message == (
            "report format 'xml' is not supported; use one of json, markdown, csv"
        )
        assert "generate_report" not in host.record("activity-analytics").metrics
        assert run(host.report("activity-analytics", "CSV")).format == "csv"  # type: ignore[attr-defined]
    finally:
        run(host.stop())


MANIFEST = {
    "manifest_version": "1.0",
    "plugin_id": "p",
    "name": "P",
    "version": "1.0.0",
    "interfaces": ["IMessageHandler"],
}


@pytest.mark.parametrize(
    ("contributes", "problem"),
    [
        ({"commands": ["go"]}, "contributes commands but interfaces does not list ICommandHandler"),
        ({"data_sources": ["x"]}, "interfaces does not list IDataProvider"),
        ({"commands": ["Bad Name"]}, "String should match pattern"),
        ({"message_types": ["a", "a"]}, "a is listed twice"),
        ({"events": ["x"]}, "unknown field"),
    ],
)
def test_a_contributes_block_is_validated_at_discovery(
    contributes: dict[str, object], problem: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(json.dumps({**MANIFEST, "contributes": contributes}))
    assert problem in str(caught.value)


def test_the_command_line_lists_waiting_plugins_and_starts_only_what_a_command_needs(
    lazy_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def cli(*argv: str) -> tuple[int, str]:
        common = ["--plugin-path", str(lazy_dir), "--data-dir", str(tmp_path / "data")]
        status = main([argv[0], *common, "--trust", "*", *argv[1:]])
        return status, capsys.readouterr().out

    status, listed = cli("list")
    assert status == 0
    assert re.search(r"^echo +1\.0\.0 +waiting ", listed, re.M), listed
    assert "0 of 6 plugins active, 6 waiting for their first use" in listed
    records = json.loads(cli("list", "--json")[1])
    assert {r["plugin_id"]: r["waiting"] for r in records}["echo"] is True
    status, sent = cli("send", "--type", "echo", "hello")
    assert status == 0 and "echo: hello" in sent
    assert "greeter:greet" in cli("commands", "--json")[1]
    assert "agent-events" in cli("sources", "--json")[1]
    status, shown = cli("config", "show", "echo")
    assert status == 0 and "prefix" in shown
    status, info = cli("info", "echo")  # about one plugin: it is started to show it
    assert status == 0 and re.search(r"^state +active$", info, re.M), info
