"""Messages, commands, data sources, reports, telemetry, the audit log, Prometheus."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from acp_plugins.models import DataQuery, DataResult, Message, TimeRange
from acp_plugins.runtime.reports import ReportFormat
from acp_plugins.server.problems import problem_responses
from acp_plugins.server.schemas import (
    AuditPage,
    CommandAnswer,
    CommandInfo,
    CommandRequest,
    RoutedAnswer,
    ServerHealth,
)
from acp_plugins.server.state import ServerState, require, server_state
from acp_plugins.server.tokens import ADMIN, READ
from acp_plugins.telemetry import TelemetryReport
from acp_plugins.telemetry.exposition import CONTENT_TYPE
from acp_plugins.views import HostViews, audit_page

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
             dependencies=[require(ADMIN)],
    responses=problem_responses(400, 403, 422, 502, 504))  # fmt: skip
async def send_message(message: Message, state: ServerState = State) -> dict[str, Any]:
    """Route a message to the most confident handler (``acp-plugins send``)."""
    routed = await state.host.send(message)
    return routed.to_dict()


@router.get(
    "/commands", tags=["calls"], dependencies=[require(READ)], responses=problem_responses(502, 504)
)
async def list_commands(state: ServerState = State) -> list[dict[str, Any]]:
    """Every command of every active plugin (``acp-plugins commands``)."""
    return await HostViews(state.host).commands()


@router.get("/commands/{name}", response_model=CommandInfo, tags=["calls"],
            dependencies=[require(READ)],
    responses=problem_responses(400, 404, 502, 504))  # fmt: skip
async def command_detail(name: str, state: ServerState = State) -> dict[str, Any]:
    """One command (plain name or ``plugin_id:command``): usage, arguments, options."""
    return await HostViews(state.host).command(name)


@router.post("/commands/{name}", response_model=CommandAnswer, tags=["calls"],
             dependencies=[require(ADMIN)],
    responses=problem_responses(400, 403, 404, 409, 422, 502, 504))  # fmt: skip
async def run_command(
    name: str, request: CommandRequest | None = None, state: ServerState = State
) -> dict[str, Any]:
    """Run a command (plain name or ``plugin_id:command``) with a command line."""
    return await HostViews(state.host).run_command(name, (request or CommandRequest()).args)


@router.get(
    "/sources", tags=["calls"], dependencies=[require(READ)], responses=problem_responses(502, 504)
)
async def list_sources(state: ServerState = State) -> list[dict[str, Any]]:
    """Every data source of every active plugin, with who offers it (``acp-plugins sources``)."""
    return await HostViews(state.host).sources()


@router.post("/sources/{source}/query", response_model=DataResult, tags=["calls"],
             dependencies=[require(READ)],
    responses=problem_responses(400, 404, 409, 422, 502, 504))  # fmt: skip
async def query_source(
    source: str, query: DataQuery | None = None, state: ServerState = State
) -> dict[str, Any]:
    """Query a data source (plain id or ``plugin_id:source_id``)."""
    return await HostViews(state.host).query(source, query)


def _last(seconds: float) -> TimeRange:
    return TimeRange.last(timedelta(seconds=seconds))


@router.get(
    "/reports",
    tags=["telemetry"],
    dependencies=[require(READ)],
    responses=problem_responses(400, 404, 409, 422, 502, 504),
)
async def reports(
    plugin: str | None = None,
    format: ReportFormat = "markdown",
    since_seconds: float = Query(7 * 86400.0, gt=0, le=_LONGEST),
    state: ServerState = State,
) -> list[dict[str, Any]]:
    """The report of one analytics plugin, or of every active one, over the last
    ``since_seconds`` (``acp-plugins report``)."""
    return await HostViews(state.host).reports(plugin, format, _last(since_seconds))


@router.get(
    "/analytics/metrics",
    tags=["telemetry"],
    dependencies=[require(READ)],
    responses=problem_responses(502, 504),
)
async def metric_definitions(state: ServerState = State) -> dict[str, list[dict[str, Any]]]:
    """The metrics each analytics plugin offers (``acp-plugins metrics``)."""
    return await HostViews(state.host).metric_definitions()


@router.get("/telemetry", response_model=TelemetryReport, tags=["telemetry"],
            dependencies=[require(READ)],
    responses=problem_responses(422))  # fmt: skip
async def telemetry(
    since_seconds: float = Query(86400.0, gt=0, le=_LONGEST), state: ServerState = State
) -> TelemetryReport:
    """The stored figures of the last ``since_seconds`` (``acp-plugins telemetry``)."""
    return await state.host.telemetry.generate_telemetry_report(_last(since_seconds))


@router.get(
    "/audit",
    response_model=AuditPage,
    tags=["telemetry"],
    dependencies=[require(READ)],
    responses=problem_responses(422),
)
async def audit(
    plugin: str | None = None,
    action: Annotated[list[str], Query(description="Repeatable: any of them.")] = [],  # noqa: B006
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
    last: int | None = Query(None, ge=0, le=1000, description="The last N entries instead."),
    state: ServerState = State,
) -> dict[str, Any]:
    """The audit log, filtered by plugin and action, a page at a time, oldest first."""
    return audit_page(state.host.audit.path, plugin_id=plugin, actions=action,
                      offset=offset, limit=limit, last=last)  # fmt: skip


metrics_router = APIRouter()


@metrics_router.get("/metrics", tags=["telemetry"], response_class=Response,
                    dependencies=[require(READ)],
    responses=problem_responses())  # fmt: skip
async def metrics(state: ServerState = State) -> Response:
    """The Prometheus text exposition of the host's figures now."""
    return Response(state.host.telemetry.prometheus(), media_type=CONTENT_TYPE)
