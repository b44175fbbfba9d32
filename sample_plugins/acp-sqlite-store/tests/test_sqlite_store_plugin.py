"""The sqlite-store sample, installed with pip and queried through a real host.

What the plugin answers is checked against the SQLite file itself, read here
with the standard library's sqlite3.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from acp_plugins import (
    DataQuery,
    DataResult,
    PluginCallError,
    PluginHost,
    PluginState,
    TimeRange,
    UnknownDataSource,
)
from acp_plugins.loading.trust import TRUST_ALL

Run = Callable[..., Any]
EVENT_FIELDS = {"id", "agent", "kind", "value", "at"}


@pytest.fixture()
def host(samples_dir: Path, tmp_path: Path, run: Run) -> Iterator[PluginHost]:
    host = PluginHost(isolation=TRUST_ALL, search_path=[samples_dir], data_root=tmp_path / "data")
    run(host.start())
    yield host
    run(host.stop())


@pytest.fixture()
def database(host: PluginHost, tmp_path: Path) -> Path:
    """The default database file of the host's sqlite-store."""
    del host  # started, so the file exists
    return tmp_path / "data" / "plugins" / "sqlite-store" / "events.sqlite3"


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every event in the file, by id, read without the plugin."""
    connection = sqlite3.connect(path)
    try:
        connection.row_factory = sqlite3.Row
        rows = connection.execute("SELECT id, agent, kind, value, at FROM agent_events ORDER BY id")
        return [dict(row) for row in rows]
    finally:
        connection.close()


def query(host: PluginHost, run: Run, source: str = "agent-events", **fields: Any) -> DataResult:
    result: DataResult = run(host.query(source, DataQuery(**fields)))
    return result


def test_sources_are_offered(host: PluginHost) -> None:
    assert host.record("sqlite-store").state is PluginState.ACTIVE
    sources = {source.source_id: source for source in host.data_sources()}
    assert set(sources) >= {"agent-events", "agents"}
    assert set(sources["agent-events"].fields) == EVENT_FIELDS
    assert sources["agent-events"].time_field == "at"


def test_database_file_is_real_and_seeded(host: PluginHost, database: Path) -> None:
    assert database.is_file()
    events = read_events(database)
    assert 50 <= len(events) <= 100
    assert {event["agent"] for event in events} == {"agent-alpha", "agent-beta", "agent-gamma"}
    assert len({event["kind"] for event in events}) >= 3
    now = datetime.now(timezone.utc)
    for event in events:
        at = datetime.fromisoformat(event["at"])
        assert at.utcoffset() == timedelta(0)
        assert now - timedelta(days=7) < at <= now


def test_demo_data_is_deterministic(
    samples_dir: Path, tmp_path: Path, run: Run, database: Path
) -> None:
    other = PluginHost(isolation=TRUST_ALL, search_path=[samples_dir], data_root=tmp_path / "other")
    run(other.start())
    run(other.stop())
    again = read_events(other.data_dir("sqlite-store") / "events.sqlite3")

    def strip(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(e["id"], e["agent"], e["kind"], e["value"]) for e in events]

    assert strip(again) == strip(read_events(database))


def test_query_everything(host: PluginHost, run: Run, database: Path) -> None:
    result = query(host, run)
    events = read_events(database)
    assert result.source_id == "agent-events"
    assert result.total == len(events)
    assert result.rows == events  # in id order, every field


@pytest.mark.parametrize(
    "filters",
    [
        {"agent": "agent-alpha"},
        {"kind": "message"},
        {"agent": "agent-beta", "kind": "command"},
        {"agent": "nobody"},
    ],
)
def test_equality_filters(
    host: PluginHost, run: Run, database: Path, filters: dict[str, str]
) -> None:
    expected = [
        event for event in read_events(database) if all(event[k] == v for k, v in filters.items())
    ]
    result = query(host, run, filters=filters)
    assert result.rows == expected
    assert result.total == len(expected)


def test_filter_on_a_number(host: PluginHost, run: Run, database: Path) -> None:
    first = read_events(database)[0]
    result = query(host, run, filters={"id": first["id"]})
    assert result.rows == [first]
    result = query(host, run, filters={"value": first["value"], "id": first["id"]})
    assert result.rows == [first]


def test_limit_and_offset_page_through_in_order(host: PluginHost, run: Run, database: Path) -> None:
    events = read_events(database)
    pages = [query(host, run, limit=7, offset=offset) for offset in range(0, len(events), 7)]
    assert [row for page in pages for row in page.rows] == events
    assert all(page.total == len(events) for page in pages)
    assert query(host, run, offset=len(events)).rows == []
    assert query(host, run, limit=0).rows == []
    assert query(host, run, offset=5).rows == events[5:]


@pytest.mark.parametrize(
    ("order_by", "key", "reverse"),
    [
        ("value", "value", False),
        ("-value", "value", True),
        ("-at", "at", True),
        ("-id", "id", True),
    ],
)
def test_order_by(
    host: PluginHost, run: Run, database: Path, order_by: str, key: str, reverse: bool
) -> None:
    rows = query(host, run, order_by=order_by).rows
    values = [row[key] for row in rows]
    assert values == sorted(values, reverse=reverse)
    assert len(rows) == len(read_events(database))


def test_order_limit_and_filter_together(host: PluginHost, run: Run, database: Path) -> None:
    alpha = [e for e in read_events(database) if e["agent"] == "agent-alpha"]
    top = sorted(alpha, key=lambda e: (-e["value"], e["id"]))[:3]
    result = query(host, run, filters={"agent": "agent-alpha"}, order_by="-value", limit=3)
    assert result.rows == top
    assert result.total == len(alpha)


def test_projection(host: PluginHost, run: Run, database: Path) -> None:
    result = query(host, run, fields=["agent", "value"], limit=5)
    assert result.rows == [
        {"agent": e["agent"], "value": e["value"]} for e in read_events(database)[:5]
    ]


@pytest.mark.parametrize("days", [1, 2, 3.5, 7, 30])
def test_time_range(host: PluginHost, run: Run, database: Path, days: float) -> None:
    window = TimeRange.last(timedelta(days=days))
    expected = [e for e in read_events(database) if datetime.fromisoformat(e["at"]) in window]
    result = query(host, run, time_range=window)
    assert result.rows == expected
    assert result.total == len(expected)


def test_narrow_time_range_holds_fewer_events(host: PluginHost, run: Run) -> None:
    narrow = query(host, run, time_range=TimeRange.last(timedelta(days=2)))
    wide = query(host, run, time_range=TimeRange.last(timedelta(days=7)))
    assert narrow.total is not None and wide.total is not None
    assert 0 < narrow.total < wide.total


def test_time_range_in_another_timezone(host: PluginHost, run: Run, database: Path) -> None:
    plus_five = timezone(timedelta(hours=5))
    now = datetime.now(plus_five)
    window = TimeRange(start=now - timedelta(days=3), end=now)
    expected = [e for e in read_events(database) if datetime.fromisoformat(e["at"]) in window]
    assert query(host, run, time_range=window).rows == expected


@pytest.mark.parametrize(
    "value",
    [
        "agent-alpha' OR '1'='1",
        "x'; DROP TABLE agent_events; --",
        '" OR 1=1 --',
        "%",
    ],
)
def test_injection_in_a_filter_value_is_just_data(
    host: PluginHost, run: Run, database: Path, value: str
) -> None:
    result = query(host, run, filters={"agent": value})
    assert result.rows == []
    assert result.total == 0
    assert len(read_events(database)) == query(host, run).total  # the table is still there


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"filters": {"nope": 1}}, "nope"),
        ({"fields": ["agent", "password"]}, "password"),
        ({"order_by": "-colour"}, "colour"),
        ({"order_by": "value; DROP TABLE agent_events"}, "value; DROP TABLE agent_events"),
        ({"filters": {"agent = agent OR 1": 1}}, "agent = agent OR 1"),
    ],
)
def test_unknown_field_is_an_error_the_host_reports(
    host: PluginHost, run: Run, database: Path, fields: dict[str, Any], bad: str
) -> None:
    with pytest.raises(PluginCallError) as caught:
        query(host, run, **fields)
    message = str(caught.value)
    assert repr(bad) in message
    assert "valid fields: agent, at, id, kind, value" in message
    assert caught.value.plugin_id == "sqlite-store"
    assert caught.value.hook == "query_data"
    assert host.record("sqlite-store").call_errors[-1].message == message
    assert len(read_events(database)) == query(host, run).total


def test_empty_projection_is_refused(host: PluginHost, run: Run) -> None:
    with pytest.raises(PluginCallError, match="at least one field"):
        query(host, run, fields=[])


def test_agents_source(host: PluginHost, run: Run, database: Path) -> None:
    events = read_events(database)
    result = query(host, run, "agents")
    assert [row["agent"] for row in result.rows] == ["agent-alpha", "agent-beta", "agent-gamma"]
    for row in result.rows:
        mine = [e for e in events if e["agent"] == row["agent"]]
        assert row["events"] == len(mine)
        assert row["first_at"] == min(e["at"] for e in mine)
        assert row["last_at"] == max(e["at"] for e in mine)
    busiest = query(host, run, "agents", order_by="-events", limit=1, fields=["agent"])
    assert busiest.total == 3
    top = min(result.rows, key=lambda row: (-row["events"], row["agent"]))  # ties: by agent
    assert busiest.rows == [{"agent": top["agent"]}]


def test_agents_source_counts_only_the_time_range(
    host: PluginHost, run: Run, database: Path
) -> None:
    window = TimeRange.last(timedelta(days=2))
    recent = [e for e in read_events(database) if datetime.fromisoformat(e["at"]) in window]
    rows = query(host, run, "agents", time_range=window).rows
    assert {row["agent"]: row["events"] for row in rows} == {
        agent: sum(1 for e in recent if e["agent"] == agent)
        for agent in {e["agent"] for e in recent}
    }


def test_database_setting_is_honoured(samples_dir: Path, tmp_path: Path, run: Run) -> None:
    path = tmp_path / "elsewhere" / "x.db"
    host = PluginHost(
        isolation=TRUST_ALL,
        search_path=[samples_dir],
        data_root=tmp_path / "data",
        settings={"sqlite-store": {"database": str(path)}},
    )
    run(host.start())
    try:
        assert path.is_file()
        assert not (tmp_path / "data" / "plugins" / "sqlite-store" / "events.sqlite3").exists()
        assert query(host, run).total == len(read_events(path))
    finally:
        run(host.stop())


def test_existing_events_are_kept_and_not_reseeded(
    samples_dir: Path, tmp_path: Path, run: Run
) -> None:
    path = tmp_path / "mine.sqlite3"
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(
            "CREATE TABLE agent_events "
            "(id INTEGER PRIMARY KEY, agent TEXT, kind TEXT, value REAL, at TEXT)"
        )
        connection.execute(
            "INSERT INTO agent_events (agent, kind, value, at) VALUES (?, ?, ?, ?)",
            ("robot", "message", 1.5, "2024-05-01T12:00:00.000000+00:00"),
        )
    connection.close()
    host = PluginHost(
        isolation=TRUST_ALL,
        search_path=[samples_dir],
        data_root=tmp_path / "data",
        settings={"sqlite-store": {"database": str(path)}},
    )
    run(host.start())
    try:
        result = query(host, run)
        assert result.total == 1
        assert result.rows[0]["agent"] == "robot"
        may = TimeRange(
            start=datetime(2024, 5, 1, tzinfo=timezone.utc),
            end=datetime(2024, 6, 1, tzinfo=timezone.utc),
        )
        assert query(host, run, time_range=may).total == 1
        assert query(host, run, time_range=TimeRange.last(timedelta(days=7))).total == 0
    finally:
        run(host.stop())


def test_seeding_can_be_turned_off(samples_dir: Path, tmp_path: Path, run: Run) -> None:
    host = PluginHost(
        isolation=TRUST_ALL,
        search_path=[samples_dir],
        data_root=tmp_path / "data",
        settings={"sqlite-store": {"seed_demo_data": False}},
    )
    run(host.start())
    try:
        assert query(host, run) == DataResult(source_id="agent-events", rows=[], total=0)
        assert query(host, run, "agents").rows == []
    finally:
        run(host.stop())


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"database": 3}, "'sqlite-store' setting 'database': Input should be a valid string"),
        ({"database": ""}, "'sqlite-store' setting 'database': String should have at least 1"),
        ({"seed_demo_data": "maybe"}, "setting 'seed_demo_data': Input should be a valid boolean"),
        ({"databse": "x.db"}, "setting 'databse': unknown setting; remove it or fix its spelling"),
    ],
)
def test_bad_settings_keep_the_plugin_out(
    samples_dir: Path, tmp_path: Path, run: Run, settings: dict[str, Any], problem: str
) -> None:
    host = PluginHost(
        isolation=TRUST_ALL,
        search_path=[samples_dir],
        data_root=tmp_path / "data",
        settings={"sqlite-store": settings},
    )
    run(host.start())
    try:
        record = host.record("sqlite-store")
        assert record.state is PluginState.LOADED
        assert record.reason is not None and problem in record.reason
        with pytest.raises(UnknownDataSource):
            query(host, run)
    finally:
        run(host.stop())


def test_suspend_closes_and_resume_reopens(host: PluginHost, run: Run) -> None:
    total = query(host, run).total
    run(host.suspend("sqlite-store"))
    with pytest.raises(UnknownDataSource):
        query(host, run)
    assert run(host.resume("sqlite-store"))
    assert query(host, run).total == total


def test_unload_closes_cleanly(host: PluginHost, run: Run) -> None:
    assert run(host.unload("sqlite-store"))
    record = host.record("sqlite-store")
    assert record.state is PluginState.UNLOADED
    assert record.failures == []
    assert record.handle is None


def test_the_host_reports_its_settings_schema(host: PluginHost, run: Run) -> None:
    schema = run(host.config_schema("sqlite-store"))
    assert set(schema["properties"]) == {"database", "seed_demo_data"}
    assert run(host.config_schema("echo"))["properties"]["prefix"]["default"] == "echo: "
    assert run(host.config_schema("tools")) == {}  # tools declares no settings
