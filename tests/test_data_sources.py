"""Tests for acp_plugins.runtime.data_sources: which plugin answers a query for a source id.

``calc`` (fixture ``acp-fx-calc``) and ``slow-numbers`` (fixture ``acp-fx-slow``)
both provide a source ``numbers``: calc's rows are 0..9, slow-numbers' are
100, 101, 102 (after ``filters["sleep"]`` seconds).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from acp_plugins import (
    CallTimeout,
    DataQuery,
    DataResult,
    DataSourceConflictError,
    DataSourceDefinition,
    PluginHost,
    UnknownDataSource,
)
from acp_plugins.loading.trust import TRUST_ALL
from conftest import fixture_plugin


@pytest.fixture(scope="module")
def plugins_dir(install_plugins: Callable[..., Path]) -> Path:
    return install_plugins(fixture_plugin("acp-fx-calc"), fixture_plugin("acp-fx-slow"))


@pytest.fixture()
def host(plugins_dir: Path, tmp_path: Path, run: Callable[..., Any]) -> PluginHost:
    started = PluginHost(
        isolation=TRUST_ALL, search_path=[plugins_dir], data_root=tmp_path, timeout=0.5
    )
    run(started.start())
    return started


def numbers(result: DataResult) -> list[int]:
    return [row["n"] for row in result.rows]


def test_both_providers_are_listed(host: PluginHost) -> None:
    definition = DataSourceDefinition(source_id="numbers", fields={"n": "int"})
    assert host.data_sources() == [definition, definition]
    assert host.sources.owners() == {"numbers": ["calc", "slow-numbers"]}


def test_a_conflicting_plain_id_is_refused_naming_the_choices(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    with pytest.raises(DataSourceConflictError) as caught:
        run(host.query("numbers"))
    assert caught.value.message == (
        "data source 'numbers' is provided by several plugins; "
        "name one of: calc:numbers, slow-numbers:numbers"
    )
    assert "query_data" not in host.record("calc").metrics


@pytest.mark.parametrize(
    ("name", "expected"),
    [("calc:numbers", [0, 1, 2]), ("slow-numbers:numbers", [100, 101, 102])],
)
def test_the_namespaced_id_picks_the_provider(
    host: PluginHost, run: Callable[..., Any], name: str, expected: list[int]
) -> None:
    result = run(host.query(name, DataQuery(limit=3)))
    assert isinstance(result, DataResult)
    assert result.source_id == "numbers"  # the plugin sees its own id, not the namespaced one
    assert numbers(result) == expected


def test_the_plain_id_works_once_there_is_one_provider(
    host: PluginHost, run: Callable[..., Any]
) -> None:
    run(host.suspend("slow-numbers"))
    assert host.sources.owners() == {"numbers": ["calc"]}
    result = run(host.query("numbers", DataQuery(limit=2)))
    assert numbers(result) == [0, 1]
    assert result.total == 10
    run(host.resume("slow-numbers"))
    assert host.sources.owners() == {"numbers": ["calc", "slow-numbers"]}


def test_the_default_query_is_an_empty_one(host: PluginHost, run: Callable[..., Any]) -> None:
    assert numbers(run(host.query("calc:numbers"))) == list(range(10))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("letters", "no active plugin provides data source 'letters'; "
         "`acp-plugins sources` lists what is available"),
        ("calc:letters", "no active plugin 'calc' provides data source 'letters'; "
         "`acp-plugins sources` lists what is available"),
        ("ghost:numbers", "no active plugin 'ghost' provides data source 'numbers'; "
         "`acp-plugins sources` lists what is available; no plugin 'ghost' is installed"),
    ],
)  # fmt: skip
def test_unknown_sources(
    host: PluginHost, run: Callable[..., Any], name: str, message: str
) -> None:
    with pytest.raises(UnknownDataSource) as caught:
        run(host.query(name))
    assert caught.value.message == message


def test_an_unloaded_providers_sources_are_gone(host: PluginHost, run: Callable[..., Any]) -> None:
    run(host.unload("calc"))
    with pytest.raises(UnknownDataSource, match="no active plugin 'calc' provides"):
        run(host.query("calc:numbers"))
    assert numbers(run(host.query("numbers"))) == [100, 101, 102]


def test_a_slow_query_times_out(host: PluginHost, run: Callable[..., Any]) -> None:
    with pytest.raises(CallTimeout) as caught:
        run(host.query("slow-numbers:numbers", DataQuery(filters={"sleep": 2})))
    assert caught.value.message == "'slow-numbers' did not answer query_data within 0.5 s"
    assert host.record("slow-numbers").metrics["query_data"].timeouts == 1
