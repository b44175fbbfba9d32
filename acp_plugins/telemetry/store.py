"""The telemetry database: one SQLite file, one row per figure per interval.

Each interval the host writes what changed in it (calls, errors, timeouts, seconds
and the latency buckets of each hook; what each worker used; what the host was
asked; what plugins recorded), so a report over any time range is a sum of rows
and covers more than one process's life. Rows older than the retention are
deleted as new ones are written. Several hosts may share the file (SQLite's WAL
journal, a busy timeout): each writes its own rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FigureRow",
    "HookRow",
    "StoredTelemetry",
    "TelemetryBatch",
    "TelemetryStore",
    "UsageRow",
    "WorkerRow",
]

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS hook_calls (
    at REAL NOT NULL, plugin TEXT NOT NULL, hook TEXT NOT NULL, calls INTEGER NOT NULL,
    errors INTEGER NOT NULL, timeouts INTEGER NOT NULL, seconds REAL NOT NULL,
    max_seconds REAL NOT NULL, buckets TEXT);
CREATE INDEX IF NOT EXISTS hook_calls_at ON hook_calls (at);
CREATE TABLE IF NOT EXISTS worker_usage (
    at REAL NOT NULL, plugin TEXT NOT NULL, resident_bytes INTEGER, cpu_seconds REAL,
    read_bytes INTEGER, write_bytes INTEGER, open_files INTEGER, restarts INTEGER NOT NULL,
    paused_seconds REAL NOT NULL);
CREATE INDEX IF NOT EXISTS worker_usage_at ON worker_usage (at);
CREATE TABLE IF NOT EXISTS usage (
    at REAL NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, count INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS usage_at ON usage (at);
CREATE TABLE IF NOT EXISTS plugin_metrics (
    at REAL NOT NULL, plugin TEXT NOT NULL, name TEXT NOT NULL, count INTEGER NOT NULL,
    total REAL NOT NULL, lowest REAL NOT NULL, highest REAL NOT NULL, last REAL NOT NULL);
CREATE INDEX IF NOT EXISTS plugin_metrics_at ON plugin_metrics (at);
"""
_TABLES = ("hook_calls", "worker_usage", "usage", "plugin_metrics")


@dataclass(frozen=True, slots=True)
class HookRow:
    """One hook of one plugin over one interval: what its calls added."""

    plugin: str
    hook: str
    calls: int
    errors: int
    timeouts: int
    seconds: float
    max_seconds: float
    buckets: tuple[int, ...] | None


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One worker over one interval: its memory and open files at the end, the rest added."""

    plugin: str
    resident_bytes: int | None
    cpu_seconds: float | None
    read_bytes: int | None
    write_bytes: int | None
    open_files: int | None
    restarts: int
    paused_seconds: float


@dataclass(frozen=True, slots=True)
class UsageRow:
    """How many times the host was asked one thing in one interval."""

    kind: str
    name: str
    count: int


@dataclass(frozen=True, slots=True)
class FigureRow:
    """What one plugin recorded under one name in one interval."""

    plugin: str
    name: str
    count: int
    total: float
    lowest: float
    highest: float
    last: float


@dataclass(slots=True)
class TelemetryBatch:
    """Everything one interval changed, written in one transaction; ``at`` (Unix time) is
    when the interval began."""

    at: float
    hooks: list[HookRow] = field(default_factory=list)
    workers: list[WorkerRow] = field(default_factory=list)
    usage: list[UsageRow] = field(default_factory=list)
    figures: list[FigureRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.hooks or self.workers or self.usage or self.figures)


@dataclass(slots=True)
class StoredTelemetry:
    """The rows of a time range, each with its time."""

    hooks: list[tuple[float, HookRow]] = field(default_factory=list)
    workers: list[tuple[float, WorkerRow]] = field(default_factory=list)
    usage: list[tuple[float, UsageRow]] = field(default_factory=list)
    figures: list[tuple[float, FigureRow]] = field(default_factory=list)


class TelemetryStore:
    """Reads and writes the telemetry database at ``path``, keeping ``retention`` seconds."""

    def __init__(self, path: Path, retention: float) -> None:
        self.path = path
        self.retention = retention

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=10.0)) as connection:
            if connection.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.executescript(_SCHEMA)
                connection.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            with connection:  # one transaction
                yield connection

    def write(self, batch: TelemetryBatch, now: float | None = None) -> None:
        """Store ``batch``; delete the rows older than the retention (before ``now``,
        default the batch's time)."""
        with self._connection() as db:
            db.executemany(
                "INSERT INTO hook_calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(batch.at, r.plugin, r.hook, r.calls, r.errors, r.timeouts, r.seconds,
                  r.max_seconds, json.dumps(r.buckets) if r.buckets is not None else None)
                 for r in batch.hooks],
            )  # fmt: skip
            db.executemany(
                "INSERT INTO worker_usage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(batch.at, r.plugin, r.resident_bytes, r.cpu_seconds, r.read_bytes,
                  r.write_bytes, r.open_files, r.restarts, r.paused_seconds)
                 for r in batch.workers],
            )  # fmt: skip
            db.executemany(
                "INSERT INTO usage VALUES (?, ?, ?, ?)",
                [(batch.at, r.kind, r.name, r.count) for r in batch.usage],
            )
            db.executemany(
                "INSERT INTO plugin_metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(batch.at, r.plugin, r.name, r.count, r.total, r.lowest, r.highest, r.last)
                 for r in batch.figures],
            )  # fmt: skip
            oldest = (batch.at if now is None else now) - self.retention
            for table in _TABLES:
                db.execute(f"DELETE FROM {table} WHERE at < ?", (oldest,))

    def read(self, start: float, end: float) -> StoredTelemetry:
        """The rows written at ``start <= at < end``, oldest first."""
        stored = StoredTelemetry()
        if not self.path.exists():
            return stored
        with self._connection() as db:
            span = (start, end)
            for at, plugin, hook, calls, errors, timeouts, seconds, highest, raw in _rows(
                db, "hook_calls", span
            ):
                buckets = tuple(json.loads(raw)) if raw is not None else None
                row = HookRow(plugin, hook, calls, errors, timeouts, seconds, highest, buckets)
                stored.hooks.append((at, row))
            stored.workers = [(at, WorkerRow(*row)) for at, *row in _rows(db, "worker_usage", span)]
            stored.usage = [(at, UsageRow(*row)) for at, *row in _rows(db, "usage", span)]
            stored.figures = [
                (at, FigureRow(*row)) for at, *row in _rows(db, "plugin_metrics", span)
            ]
        return stored


def _rows(db: sqlite3.Connection, table: str, span: tuple[float, float]) -> list[Any]:
    return db.execute(
        f"SELECT * FROM {table} WHERE at >= ? AND at < ? ORDER BY at", span
    ).fetchall()
