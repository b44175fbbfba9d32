"""Tests for acp_plugins.runtime.reports: every format parses back to the metrics it came from."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest

from acp_plugins import (
    REPORT_FORMATS,
    MetricPoint,
    MetricsData,
    Report,
    TimeRange,
    UnsupportedReportFormat,
    render_report,
)

WINDOW = TimeRange(
    start=datetime(2024, 5, 1, tzinfo=timezone.utc),
    end=datetime(2024, 5, 8, tzinfo=timezone.utc),
)

METRICS = MetricsData(
    time_range=WINDOW,
    source="activity",
    points=[
        MetricPoint(name="messages", value=1234567.0),
        MetricPoint(name="messages", value=42.0, labels={"agent": "ann", "kind": "chat"}),
        MetricPoint(name="latency_ms", value=0.1 + 0.2, labels={"agent": "b|c"}),
        MetricPoint(name="errors", value=0.0),
    ],
)

#: What each point is, as (name, labels as rendered, value).
EXPECTED_ROWS = [
    ("messages", "", 1234567.0),
    ("messages", "agent=ann,kind=chat", 42.0),
    ("latency_ms", "agent=b|c", 0.1 + 0.2),
    ("errors", "", 0.0),
]


def test_the_formats() -> None:
    assert REPORT_FORMATS == ("json", "markdown", "csv")


@pytest.mark.parametrize(
    ("format", "media_type"),
    [("json", "application/json"), ("markdown", "text/markdown"), ("csv", "text/csv")],
)
def test_each_format_has_its_media_type(format: str, media_type: str) -> None:
    report = render_report(METRICS, format, title="Weekly activity")
    assert isinstance(report, Report)
    assert (report.format, report.media_type, report.title) == (
        format,
        media_type,
        "Weekly activity",
    )


def test_format_names_are_case_insensitive() -> None:
    assert render_report(METRICS, "JSON").format == "json"


def test_json_parses_back_to_the_metrics() -> None:
    report = render_report(METRICS, "json", title="Weekly activity")
    parsed = json.loads(report.content)
    assert parsed.pop("title") == "Weekly activity"
    assert MetricsData.model_validate(parsed) == METRICS


def test_markdown_table_parses_back_to_the_points() -> None:
    report = render_report(METRICS, "markdown", title="Weekly activity")
    lines = report.content.splitlines()
    assert lines[0] == "# Weekly activity"
    assert lines[2] == (
        "From 2024-05-01T00:00:00+00:00 to 2024-05-08T00:00:00+00:00, collected by `activity`."
    )
    assert lines[4:6] == ["| metric | labels | value |", "|---|---|---:|"]
    rows = []
    for line in lines[6:]:
        # split on the pipes that are not escaped
        cells = [cell.strip().replace("\\|", "|") for cell in _split_row(line)]
        rows.append((cells[0], cells[1], float(cells[2])))
    assert rows == EXPECTED_ROWS


def test_markdown_writes_whole_numbers_in_full() -> None:
    content = render_report(METRICS, "markdown").content
    assert "| messages |  | 1234567 |" in content  # not 1.23457e+06
    assert "| errors |  | 0 |" in content


def test_markdown_without_points_says_so() -> None:
    empty = MetricsData(time_range=WINDOW)
    content = render_report(empty, "markdown", title="Nothing").content
    assert content.endswith("|---|---|---:|\n| (no data) | | |\n")
    assert "From 2024-05-01T00:00:00+00:00 to 2024-05-08T00:00:00+00:00.\n" in content


def test_csv_parses_back_to_the_points() -> None:
    report = render_report(METRICS, "csv")
    reader = csv.DictReader(io.StringIO(report.content))
    assert reader.fieldnames == ["metric", "labels", "value", "start", "end"]
    rows = list(reader)
    assert [(row["metric"], row["labels"], float(row["value"])) for row in rows] == EXPECTED_ROWS
    for row in rows:
        assert datetime.fromisoformat(row["start"]) == WINDOW.start
        assert datetime.fromisoformat(row["end"]) == WINDOW.end


def test_csv_without_points_is_just_the_header() -> None:
    content = render_report(MetricsData(time_range=WINDOW), "csv").content
    assert content == "metric,labels,value,start,end\n"


@pytest.mark.parametrize("format", ["pdf", "", "md", "xlsx"])
def test_an_unsupported_format_lists_the_supported_ones(format: str) -> None:
    with pytest.raises(UnsupportedReportFormat) as caught:
        render_report(METRICS, format)
    assert caught.value.message == (
        f"report format {format!r} is not supported; use one of json, markdown, csv"
    )


def _split_row(line: str) -> list[str]:
    assert line.startswith("| ") and line.endswith(" |"), line
    cells, current, escaped = [], "", False
    for char in line[1:-1]:
        if char == "|" and not escaped:
            cells.append(current)
            current = ""
        else:
            current += char
        escaped = char == "\\"
    cells.append(current)
    return cells
