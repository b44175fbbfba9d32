"""Messages, commands, data sources, reports, telemetry, the audit log, Prometheus."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from acp_plugins.audit import read_audit_log
from acp_plugins.models import CommandResult, DataQuery, DataResult, Message, Report, TimeRange
from acp_plugins.server.schemas import (
    AuditPage,
    CommandRequest,
    RoutedAnswer,
    ServerHealth,
)
from acp_plugins.server.state import ServerState, require, server_state
from acp_plugins.server.tokens import ADMIN, READ
from acp_plugins.telemetry import TelemetryReport
from acp_plugins.telemetry.exposition import CONTENT_TYPE

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
State = Depends(server_state)
#: Seconds of the longest time range a request may ask for (100 years, as the CLI).
_LONGEST = 36525 * 86400.0


@router.get("/health", response_model=ServerHealth, tags=["server"])
async def server_health(state: ServerState = State) -> ServerHealth:
    """Whether the host is up; the only route answered without a token."""
    records = state.host.records
    status = "failed" if state.failed else "ok" if state.ready.is_set() else "starting"
    active = sum(1 for r in records.values() if r.state.value == "active")
    return ServerHealth(status=status, plugins=len(records), active=active, detail=state.failed)


@router.post("/messages", response_model=RoutedAnswer, tags=["calls"],
             dependencies=[require(ADMIN)])  # fmt: skip
async def send_message(message: Message, state: ServerState = State) -> dict[str, Any]:
    """Route a message to the most confident handler (``acp-plugins send``)."""
    routed = await state.host.send(message)
    return routed.to_dict()


@router.get("/commands", tags=["calls"], dependencies=[require(READ)])
async def list_commands(state: ServerState = State) -> list[dict[str, Any]]:
    """Every command of every active plugin (``acp-plugins commands``)."""
    await state.host.start_waiting()
    conflicts = state.host.commands.conflicts
    return [
        {"name": e.definition.name, "qualified_name": e.qualified_name,
         "plugin_id": e.plugin_id, "usage": e.definition.usage,
         "description": e.definition.description, "conflict": e.definition.name in conflicts}
        for e in state.host.command_entries()
    ]  # fmt: skip


@router.post("/commands/{name}", response_model=CommandResult, tags=["calls"],
             dependencies=[require(ADMIN)])  # fmt: skip
async def run_command(
    name: str, request: CommandRequest | None = None, state: ServerState = State
) -> CommandResult:
    """Run a command (plain name or ``plugin_id:command``) with a command line."""
    return await state.host.run_command(name, (request or CommandRequest()).args)


@router.get("/sources", tags=["calls"], dependencies=[require(READ)])
async def list_sources(state: ServerState = State) -> list[dict[str, Any]]:
    """Every data source of every active plugin (``acp-plugins sources``)."""
    await state.host.start_waiting()
    return [source.model_dump(mode="json") for source in state.host.data_sources()]


@router.post("/sources/{source}/query", response_model=DataResult, tags=["calls"],
             dependencies=[require(READ)])  # fmt: skip
async def query_source(
    source: str, query: DataQuery | None = None, state: ServerState = State
) -> DataResult:
    """Query a data source (plain id or ``plugin_id:source_id``)."""
    return await state.host.query(source, query)


def _last(seconds: float) -> TimeRange:
    return TimeRange.last(timedelta(seconds=seconds))


@router.get("/report", response_model=Report, tags=["telemetry"], dependencies=[require(READ)])
async def report(
    plugin: str,
    format: str = "markdown",
    since_seconds: float = Query(7 * 86400.0, gt=0, le=_LONGEST),
    state: ServerState = State,
) -> Report:
    """One analytics plugin's report over the last ``since_seconds`` (``acp-plugins report``)."""
    await state.host.start_plugin(plugin)
    return await state.host.report(plugin, format, _last(since_seconds))


@router.get("/telemetry", response_model=TelemetryReport, tags=["telemetry"],
            dependencies=[require(READ)])  # fmt: skip
async def telemetry(
    since_seconds: float = Query(86400.0, gt=0, le=_LONGEST), state: ServerState = State
) -> TelemetryReport:
    """The stored figures of the last ``since_seconds`` (``acp-plugins telemetry``)."""
    return await state.host.telemetry.generate_telemetry_report(_last(since_seconds))


@router.get("/audit", response_model=AuditPage, tags=["telemetry"], dependencies=[require(READ)])
async def audit(
    plugin: str | None = None,
    action: Annotated[list[str] | None, Query()] = None,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
    state: ServerState = State,
) -> AuditPage:
    """The audit log, filtered by plugin and action, a page at a time, oldest first."""
    path = state.host.audit.path
    entries, unreadable = (
        read_audit_log(path, plugin_id=plugin, actions=action or ()) if path else ([], 0)
    )
    page = entries[offset : offset + limit]
    return AuditPage(entries=[e.to_dict() for e in page], total=len(entries), offset=offset,
                     limit=limit, unreadable=unreadable)  # fmt: skip


metrics_router = APIRouter()


@metrics_router.get("/metrics", tags=["telemetry"], response_class=Response,
                    dependencies=[require(READ)])  # fmt: skip
async def metrics(state: ServerState = State) -> Response:
    """The Prometheus text exposition of the host's figures now."""
    return Response(state.host.telemetry.prometheus(), media_type=CONTENT_TYPE)
