"""The SQLite database behind the plugin: schema, demo data and queries.

Every value of a query travels as an SQL parameter. Identifiers (column names)
are never taken from a query as given: each must be one of the source's known
fields, and only the whitelisted name is written into the SQL.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from acp_plugins import DataQuery, DataSourceDefinition, TimeRange

__all__ = [
    "DEMO_AGENTS",
    "DEMO_KINDS",
    "DEMO_SEED",
    "SOURCES",
    "EventStore",
    "Relation",
    "Source",
    "build_query",
    "demo_events",
    "timestamp",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS agent_events (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    kind TEXT NOT NULL,
    value REAL NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_events_at ON agent_events (at);
"""

DEMO_SEED = 42
DEMO_AGENTS: tuple[str, ...] = ("agent-alpha", "agent-beta", "agent-gamma")
#: Kinds of event, and how often each occurs relative to the others.
DEMO_KINDS: dict[str, int] = {"message": 5, "command": 3, "query": 2, "error": 1}
DEMO_EVENTS = 60
#: Demo events lie within this much time before seeding (a little under a week,
#: so that a "last 7 days" window taken a moment later still holds them all).
DEMO_SPAN = timedelta(days=6, hours=20)


def timestamp(moment: datetime) -> str:
    """``moment`` as the fixed-width ISO 8601 UTC text stored in ``at``.

    One width and one offset for every row makes text order equal time order,
    so time ranges are plain string comparisons. Naive datetimes count as UTC.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class Relation:
    """The SQL a source's rows come from, with its parameters."""

    sql: str
    params: tuple[Any, ...] = ()


def _time_condition(time_range: TimeRange | None) -> Relation:
    if time_range is None:
        return Relation("")
    return Relation(
        " WHERE at >= ? AND at < ?", (timestamp(time_range.start), timestamp(time_range.end))
    )


def _events_relation(time_range: TimeRange | None) -> Relation:
    where = _time_condition(time_range)
    return Relation("SELECT id, agent, kind, value, at FROM agent_events" + where.sql, where.params)


def _agents_relation(time_range: TimeRange | None) -> Relation:
    where = _time_condition(time_range)
    return Relation(
        "SELECT agent, COUNT(*) AS events, MIN(at) AS first_at, MAX(at) AS last_at "
        "FROM agent_events" + where.sql + " GROUP BY agent",
        where.params,
    )


@dataclass(frozen=True, slots=True)
class Source:
    """A data source: its definition, where its rows come from, its natural order."""

    definition: DataSourceDefinition
    relation: Callable[[TimeRange | None], Relation]
    key: str

    @property
    def fields(self) -> Mapping[str, str]:
        return self.definition.fields


SOURCES: dict[str, Source] = {
    "agent-events": Source(
        DataSourceDefinition(
            source_id="agent-events",
            name="Agent events",
            description="One row per recorded agent activity event.",
            fields={"id": "int", "agent": "str", "kind": "str", "value": "float", "at": "datetime"},
            time_field="at",
        ),
        _events_relation,
        key="id",
    ),
    "agents": Source(
        DataSourceDefinition(
            source_id="agents",
            name="Agents",
            description=(
                "Each agent that has events, with how many and when the first and last were; "
                "a query's time_range limits the events counted."
            ),
            fields={"agent": "str", "events": "int", "first_at": "datetime", "last_at": "datetime"},
        ),
        _agents_relation,
        key="agent",
    ),
}


def _check_field(source: Source, name: str, where: str) -> str:
    if name not in source.fields:
        valid = ", ".join(sorted(source.fields))
        raise ValueError(
            f"unknown field {name!r} in {where} of data source "
            f"'{source.definition.source_id}'; valid fields: {valid}"
        )
    return name


def _quote(identifier: str) -> str:
    # Only ever called with whitelisted field names; quoting is belt and braces.
    return '"' + identifier.replace('"', '""') + '"'


def build_query(source: Source, query: DataQuery) -> tuple[Relation, Relation]:
    """The SQL (with parameters) of ``query``'s page of rows and of its total count."""
    columns = list(source.fields) if query.fields is None else list(dict.fromkeys(query.fields))
    if not columns:
        raise ValueError(
            f"a query of '{source.definition.source_id}' must select at least one field "
            "(leave fields unset for all of them)"
        )
    for name in columns:
        _check_field(source, name, "fields")
    relation = source.relation(query.time_range)
    conditions: list[str] = []
    params: list[Any] = list(relation.params)
    for name, value in query.filters.items():
        column = _quote(_check_field(source, name, "filters"))
        if value is None:
            conditions.append(f"{column} IS NULL")
        else:
            conditions.append(f"{column} = ?")
            params.append(value)
    where = (" WHERE " + " AND ".join(conditions)) if conditions else ""
    base = f"FROM ({relation.sql}) AS source{where}"

    order = [f"{_quote(source.key)} ASC"]
    if query.order_by:
        descending = query.order_by.startswith("-")
        name = _check_field(source, query.order_by.removeprefix("-"), "order_by")
        if name != source.key:
            order.insert(0, f"{_quote(name)} {'DESC' if descending else 'ASC'}")
        else:
            order = [f"{_quote(name)} {'DESC' if descending else 'ASC'}"]
    # LIMIT -1 is SQLite's "no limit", needed because OFFSET requires a LIMIT.
    limit = -1 if query.limit is None else query.limit
    page = Relation(
        f"SELECT {', '.join(_quote(c) for c in columns)} {base} "
        f"ORDER BY {', '.join(order)} LIMIT ? OFFSET ?",
        (*params, limit, query.offset),
    )
    count = Relation(f"SELECT COUNT(*) {base}", tuple(params))
    return page, count


def demo_events(now: datetime, seed: int = DEMO_SEED) -> list[tuple[str, str, float, str]]:
    """A deterministic set of (agent, kind, value, at) rows before ``now``, oldest first."""
    rng = random.Random(seed)
    kinds, weights = list(DEMO_KINDS), list(DEMO_KINDS.values())
    rows = []
    for _ in range(DEMO_EVENTS):
        agent = rng.choice(DEMO_AGENTS)
        kind = rng.choices(kinds, weights)[0]
        value = round(rng.uniform(0.05, 5.0), 3)
        age = timedelta(seconds=rng.uniform(0, DEMO_SPAN.total_seconds()))
        rows.append((agent, kind, value, timestamp(now - age)))
    rows.sort(key=lambda row: row[3])
    return rows


class EventStore:
    """One SQLite database of agent events, safe to use from worker threads."""

    __slots__ = ("_connection", "_lock", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._connection is not None

    def open(self) -> None:
        """Connect (if not connected yet) and make sure the schema exists."""
        with self._lock:
            if self._connection is not None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Queries run in worker threads, one at a time under the lock.
            connection = sqlite3.connect(self.path, check_same_thread=False)
            try:
                connection.row_factory = sqlite3.Row
                connection.executescript(SCHEMA)
            except sqlite3.Error:
                connection.close()
                raise
            self._connection = connection

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _require(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError(f"the event store {self.path} is closed")
        return self._connection

    def count(self) -> int:
        with self._lock:
            (total,) = self._require().execute("SELECT COUNT(*) FROM agent_events").fetchone()
            return int(total)

    def insert(self, rows: Sequence[tuple[str, str, float, str]]) -> None:
        """Add (agent, kind, value, at) rows; ``at`` as written by :func:`timestamp`."""
        with self._lock:
            connection = self._require()
            with connection:
                connection.executemany(
                    "INSERT INTO agent_events (agent, kind, value, at) VALUES (?, ?, ?, ?)", rows
                )

    def seed_if_empty(self, now: datetime) -> int:
        """Insert the demo events if there are no events at all; how many were inserted."""
        if self.count():
            return 0
        rows = demo_events(now)
        self.insert(rows)
        return len(rows)

    def query(self, source: Source, query: DataQuery) -> tuple[list[dict[str, Any]], int]:
        """The page of rows ``query`` asks for, and how many rows match before paging."""
        page, count = build_query(source, query)
        with self._lock:
            connection = self._require()
            rows = [dict(row) for row in connection.execute(page.sql, page.params)]
            (total,) = connection.execute(count.sql, count.params).fetchone()
        return rows, int(total)
