"""The activity-analytics sample on top of sqlite-store, through a real host.

Every number the plugin reports is checked against counts made here from the
SQLite file itself.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from acp_plugins import (
    MetricsData,
    PluginHost,
    PluginNotActive,
    PluginState,
    Report,
    TimeRange,
    UnsupportedReportFormat,
)
from acp_plugins.loading.trust import TRUST_ALL

Run = Callable[..., Any]
PLUGIN = "activity-analytics"
WIDE = timedelta(days=30)


@pytest.fixture()
def host(samples_dir: Path, tmp_path: Path, run: Run) -> Iterator[PluginHost]:
    host = PluginHost(isolation=TRUST_ALL, search_path=[samples_dir], data_root=tmp_path / "data")
    run(host.start())
    yield host
    run(host.stop())


@pytest.fixture()
def database(host: PluginHost, tmp_path: Path) -> Path:
    del host  # started, so sqlite-store has created and seeded its file
    return tmp_path / "data" / "plugins" / "sqlite-store" / "events.sqlite3"


def events_in(path: Path, window: TimeRange) -> list[tuple[str, str, float]]:
    """(agent, kind, value) of every event in ``window``, read straight from the file."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT agent, kind, value, at FROM agent_events").fetchall()
    finally:
        connection.close()
    return [(a, k, v) for a, k, v, at in rows if datetime.fromisoformat(at) in window]


def by_name(metrics: MetricsData, name: str, label: str | None = None) -> dict[str, float]:
    """Values of metric ``name``, keyed by the value of ``label`` (or ``""``)."""
    return {
        (point.labels[label] if label else ""): point.value
        for point in metrics.points
        if point.name == name
    }


def collect(host: PluginHost, run: Run, window: TimeRange) -> MetricsData:
    metrics: MetricsData = run(host.collect_metrics(PLUGIN, window))
    return metrics


def test_the_dependency_is_started_first(host: PluginHost) -> None:
    order = host.load_order
    assert order.index("sqlite-store") < order.index(PLUGIN)
    assert host.record("sqlite-store").state is PluginState.ACTIVE
    assert host.record(PLUGIN).state is PluginState.ACTIVE
    manifest = host.record(PLUGIN).manifest
    assert manifest is not None
    assert manifest.dependencies["sqlite-store"] == "^1.0.0"


def test_metric_definitions(host: PluginHost, run: Run) -> None:
    definitions = run(host.metric_definitions())[PLUGIN]
    kinds = {definition.name: definition.kind for definition in definitions}
    assert kinds == {
        "events_total": "counter",
        "events_per_agent": "counter",
        "events_per_kind": "counter",
        "echo_answers": "counter",
        "mean_value": "gauge",
    }


def test_the_echo_answers_heard_on_the_bus_are_counted(host: PluginHost, run: Run) -> None:
    from acp_plugins import Message

    for text in ("one", "two", "three"):
        assert run(host.send(Message(type="echo", content=text))).handled
    run(asyncio.sleep(0.05))  # the events reach the subscriber's handler
    assert by_name(collect(host, run, TimeRange.last(timedelta(hours=1))), "echo_answers") == {
        "": 3
    }
    # an hour ago nothing was heard: absent, like mean_value without events
    earlier = TimeRange(start=datetime.now(timezone.utc) - timedelta(hours=3),
                        end=datetime.now(timezone.utc) - timedelta(hours=1))  # fmt: skip
    assert "echo_answers" not in {p.name for p in collect(host, run, earlier).points}


@pytest.mark.parametrize("days", [1, 2, 4, 7, 30])
def test_metrics_equal_counts_from_the_database(
    host: PluginHost, run: Run, database: Path, days: int
) -> None:
    window = TimeRange.last(timedelta(days=days))
    events = events_in(database, window)
    metrics = collect(host, run, window)
    assert metrics.source == PLUGIN
    assert metrics.time_range == window
    assert by_name(metrics, "events_total") == {"": len(events)}
    assert by_name(metrics, "events_per_agent", "agent") == Counter(a for a, _, _ in events)
    assert by_name(metrics, "events_per_kind", "kind") == Counter(k for _, k, _ in events)
    if events:
        mean = sum(v for _, _, v in events) / len(events)
        assert by_name(metrics, "mean_value") == {"": pytest.approx(mean)}
    else:
        assert by_name(metrics, "mean_value") == {}


def test_every_seeded_event_is_counted(host: PluginHost, run: Run, database: Path) -> None:
    connection = sqlite3.connect(database)
    try:
        (total,) = connection.execute("SELECT COUNT(*) FROM agent_events").fetchone()
    finally:
        connection.close()
    metrics = collect(host, run, TimeRange.last(WIDE))
    assert by_name(metrics, "events_total") == {"": total}
    assert sum(by_name(metrics, "events_per_agent", "agent").values()) == total
    assert sum(by_name(metrics, "events_per_kind", "kind").values()) == total


def test_narrow_range_counts_fewer_events(host: PluginHost, run: Run) -> None:
    narrow = by_name(collect(host, run, TimeRange.last(timedelta(days=2))), "events_total")[""]
    wide = by_name(collect(host, run, TimeRange.last(WIDE)), "events_total")[""]
    assert 0 < narrow < wide


def test_a_range_without_events(host: PluginHost, run: Run) -> None:
    window = TimeRange(
        start=datetime(2000, 1, 1, tzinfo=timezone.utc),
        end=datetime(2000, 2, 1, tzinfo=timezone.utc),
    )
    metrics = collect(host, run, window)
    assert [(p.name, p.value, p.labels) for p in metrics.points] == [("events_total", 0.0, {})]


def test_data_comes_through_the_data_provider(host: PluginHost, run: Run) -> None:
    before = host.record("sqlite-store").stats("query_data").calls
    collect(host, run, TimeRange.last(WIDE))
    assert host.record("sqlite-store").stats("query_data").calls == before + 1


def test_known_events_give_exact_metrics(samples_dir: Path, tmp_path: Path, run: Run) -> None:
    path = tmp_path / "known.sqlite3"
    now = datetime.now(timezone.utc)

    def ago(**delta: float) -> str:  # the fixed-width UTC text sqlite-store writes
        return (now - timedelta(**delta)).isoformat(timespec="microseconds")

    connection = sqlite3.connect(path)
    with connection:
        connection.execute(
            "CREATE TABLE agent_events "
            "(id INTEGER PRIMARY KEY, agent TEXT, kind TEXT, value REAL, at TEXT)"
        )
        connection.executemany(
            "INSERT INTO agent_events (agent, kind, value, at) VALUES (?, ?, ?, ?)",
            [
                ("ann", "message", 1.0, ago(hours=1)),
                ("ann", "command", 2.0, ago(hours=2)),
                ("bob", "message", 6.0, ago(hours=3)),
                ("bob", "message", 100.0, ago(days=10)),
            ],
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
        metrics = collect(host, run, TimeRange.last(timedelta(days=1), now=now))
    finally:
        run(host.stop())
    assert [(p.name, p.labels, p.value) for p in metrics.points] == [
        ("events_total", {}, 3),
        ("events_per_agent", {"agent": "ann"}, 2),
        ("events_per_agent", {"agent": "bob"}, 1),
        ("events_per_kind", {"kind": "command"}, 1),
        ("events_per_kind", {"kind": "message"}, 2),
        ("mean_value", {}, 3.0),
    ]


def test_json_report(host: PluginHost, run: Run) -> None:
    window = TimeRange.last(WIDE)
    metrics = collect(host, run, window)
    report: Report = run(host.report(PLUGIN, "json", window))
    assert report.media_type == "application/json"
    document = json.loads(report.content)
    assert document["title"] == "Agent activity report"
    assert document["source"] == PLUGIN
    assert [(p["name"], p["labels"], p["value"]) for p in document["points"]] == [
        (p.name, p.labels, p.value) for p in metrics.points
    ]


def test_csv_report(host: PluginHost, run: Run) -> None:
    window = TimeRange.last(WIDE)
    metrics = collect(host, run, window)
    report: Report = run(host.report(PLUGIN, "csv", window))
    assert report.media_type == "text/csv"
    header, *rows = list(csv.reader(io.StringIO(report.content)))
    assert header == ["metric", "labels", "value", "start", "end"]
    assert len(rows) == len(metrics.points)
    totals = [float(row[2]) for row in rows if row[0] == "events_total"]
    assert totals == [by_name(metrics, "events_total")[""]]
    per_agent = {row[1]: float(row[2]) for row in rows if row[0] == "events_per_agent"}
    assert per_agent == {
        f"agent={agent}": value
        for agent, value in by_name(metrics, "events_per_agent", "agent").items()
    }


def test_markdown_report(host: PluginHost, run: Run) -> None:
    window = TimeRange.last(WIDE)
    metrics = collect(host, run, window)
    report: Report = run(host.report(PLUGIN, "markdown", window))
    assert report.media_type == "text/markdown"
    lines = report.content.splitlines()
    assert lines[0] == "# Agent activity report"
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| metric | labels | value |"
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert len(cells) == len(metrics.points)
    assert ["events_total", "", f"{by_name(metrics, 'events_total')['']:g}"] in cells
    kinds = {c[1]: float(c[2]) for c in cells if c[0] == "events_per_kind"}
    assert kinds == {
        f"kind={kind}": value for kind, value in by_name(metrics, "events_per_kind", "kind").items()
    }


def test_unknown_report_format(host: PluginHost, run: Run) -> None:
    # the host refuses a format outside json, markdown and csv before the plugin is asked
    with pytest.raises(UnsupportedReportFormat) as caught:
        run(host.report(PLUGIN, "pdf"))
    assert "'pdf'" in str(caught.value)
    assert "json, markdown, csv" in str(caught.value)
    assert "generate_report" not in host.record(PLUGIN).metrics


def test_report_title_setting(samples_dir: Path, tmp_path: Path, run: Run) -> None:
    host = PluginHost(
        isolation=TRUST_ALL,
        search_path=[samples_dir],
        data_root=tmp_path / "data",
        settings={PLUGIN: {"title": "Weekly activity"}},
    )
    run(host.start())
    try:
        report: Report = run(host.report(PLUGIN, "markdown"))
    finally:
        run(host.stop())
    assert report.title == "Weekly activity"
    assert report.content.startswith("# Weekly activity\n")


def test_no_data_provider_no_analytics(samples_dir: Path, tmp_path: Path, run: Run) -> None:
    host = PluginHost(
        isolation=TRUST_ALL,
        search_path=[samples_dir],
        data_root=tmp_path / "data",
        settings={"sqlite-store": {"database": ""}},  # refused by sqlite-store
    )
    run(host.start())
    try:
        assert host.record("sqlite-store").state is not PluginState.ACTIVE
        record = host.record(PLUGIN)
        assert record.state is not PluginState.ACTIVE
        assert record.reason is not None and "sqlite-store" in record.reason
    finally:
        run(host.stop())


def test_suspending_the_provider_suspends_its_dependent(host: PluginHost, run: Run) -> None:
    run(host.suspend("sqlite-store"))
    analytics = host.record("activity-analytics")
    assert analytics.state is PluginState.SUSPENDED
    assert analytics.reason == "suspended with its dependency 'sqlite-store'"
    with pytest.raises(PluginNotActive):
        collect(host, run, TimeRange.last(WIDE))
    run(host.resume("sqlite-store"))
    run(host.resume("activity-analytics"))
    assert by_name(collect(host, run, TimeRange.last(WIDE)), "events_total")[""] > 0
