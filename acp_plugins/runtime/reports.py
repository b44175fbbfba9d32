"""Rendering metrics as reports in json, markdown and csv."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Literal, get_args

from acp_plugins.errors import UnsupportedReportFormat
from acp_plugins.models import MetricsData, Report

__all__ = ["REPORT_FORMATS", "ReportFormat", "check_report_format", "render_report"]


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _number(value: float) -> str:
    """Every digit of ``value`` (``1234567``, not ``1.23457e+06``); whole numbers without ``.0``."""
    return str(int(value)) if value.is_integer() else repr(value)


def _json(metrics: MetricsData, title: str) -> str:
    return json.dumps({"title": title, **metrics.model_dump(mode="json")}, indent=2)


def _markdown(metrics: MetricsData, title: str) -> str:
    lines = [
        f"# {title}",
        "",
        f"From {metrics.time_range.start.isoformat()} to {metrics.time_range.end.isoformat()}"
        + (f", collected by `{metrics.source}`." if metrics.source else "."),
        "",
        "| metric | labels | value |",
        "|---|---|---:|",
    ]
    for point in metrics.points:
        labels = _labels(point.labels).replace("|", "\\|")
        lines.append(f"| {point.name} | {labels} | {_number(point.value)} |")
    if not metrics.points:
        lines.append("| (no data) | | |")
    return "\n".join(lines) + "\n"


def _csv(metrics: MetricsData, title: str) -> str:
    del title  # csv has no place for a title; the header row says what the columns are
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["metric", "labels", "value", "start", "end"])
    start, end = metrics.time_range.start.isoformat(), metrics.time_range.end.isoformat()
    for point in metrics.points:
        writer.writerow([point.name, _labels(point.labels), repr(point.value), start, end])
    return out.getvalue()


#: A report format every analytics provider is expected to support.
ReportFormat = Literal["json", "markdown", "csv"]
REPORT_FORMATS: tuple[str, ...] = get_args(ReportFormat)

_RENDERERS: dict[str, tuple[str, Callable[[MetricsData, str], str]]] = {
    "json": ("application/json", _json),
    "markdown": ("text/markdown", _markdown),
    "csv": ("text/csv", _csv),
}
assert set(_RENDERERS) == set(REPORT_FORMATS)


def check_report_format(format: str) -> str:
    """``format`` in lower case, or :class:`UnsupportedReportFormat` naming the ones there are."""
    if format.lower() not in _RENDERERS:
        raise UnsupportedReportFormat(
            f"report format {format!r} is not supported; use one of {', '.join(REPORT_FORMATS)}"
        )
    return format.lower()


def render_report(metrics: MetricsData, format: str, *, title: str = "Metrics report") -> Report:
    """Render ``metrics`` as a :class:`Report` in ``format`` (one of :data:`REPORT_FORMATS`)."""
    chosen = check_report_format(format)
    media_type, render = _RENDERERS[chosen]
    return Report(format=chosen, media_type=media_type, content=render(metrics, title), title=title)
