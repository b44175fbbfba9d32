"""``/api/v1/plugins``: listing, detail, status, health, configuration, lifecycle, reload."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from acp_plugins.server.install import PackageInstaller
from acp_plugins.server.problems import Problem, problem_responses
from acp_plugins.server.schemas import (
    ConfigChange,
    ConfigView,
    InstallOutcome,
    InstallRequest,
    Origin,
    PluginDetail,
    PluginStatus,
    PluginView,
    ReloadOutcome,
    UninstallOutcome,
)
from acp_plugins.server.state import ServerState, require, server_state
from acp_plugins.server.tokens import ADMIN, READ
from acp_plugins.telemetry import PluginHealth
from acp_plugins.views import HostViews

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/plugins", tags=["plugins"])
State = Depends(server_state)


def _view(state: ServerState, plugin_id: str) -> dict[str, Any]:
    return state.host.record(plugin_id).to_dict()


@router.get("", response_model=list[PluginView], dependencies=[require(READ)],
             responses=problem_responses())  # fmt: skip
async def list_plugins(state: ServerState = State) -> JSONResponse:
    """Every installed plugin, with its state and, if refused, why (``acp-plugins list``)."""
    # as the command line prints it, field for field and in its order
    return JSONResponse([record.to_dict() for _, record in sorted(state.host.records.items())])


@router.get("/{plugin_id}", response_model=PluginDetail, dependencies=[require(READ)],
             responses=problem_responses(404, 502, 504))  # fmt: skip
async def plugin_detail(plugin_id: str, state: ServerState = State) -> JSONResponse:
    """Everything known about one plugin, started if it waited (``acp-plugins info ID``)."""
    return JSONResponse(await HostViews(state.host).plugin_info(plugin_id))


@router.get("/{plugin_id}/status", response_model=PluginStatus, dependencies=[require(READ)],
             responses=problem_responses(404))  # fmt: skip
async def plugin_status(plugin_id: str, state: ServerState = State) -> dict[str, Any]:
    """Where the plugin is in its lifecycle."""
    record = state.host.record(plugin_id)
    return {
        "plugin_id": record.plugin_id, "version": record.version, "state": record.state.value,
        "waiting": record.waiting, "reloading": record.reloading,
        "generation": record.generation, "reason": record.reason,
        "mode": (record.isolation() or {}).get("mode"),
    }  # fmt: skip


@router.get("/{plugin_id}/health", response_model=PluginHealth, dependencies=[require(READ)],
             responses=problem_responses(404))  # fmt: skip
async def plugin_health(plugin_id: str, state: ServerState = State) -> PluginHealth:
    """healthy, degraded, failing, suspended or stopped, and why (``acp-plugins health ID``)."""
    return await state.host.telemetry.get_plugin_health(plugin_id)


def _config_view(state: ServerState, plugin_id: str) -> ConfigView:
    resolved = state.host.config_of(plugin_id)
    explained = resolved.explain()
    return ConfigView(
        plugin_id=plugin_id,
        values=resolved.masked(),
        origins={
            path: Origin(layer=origin.layer.value, source=origin.source)
            for path, _, origin in explained
        },
        overrides_file=str(state.host.overrides.path),
    )


@router.get("/{plugin_id}/config", response_model=ConfigView, dependencies=[require(READ)],
             responses=problem_responses(400, 404, 409, 502, 504))  # fmt: skip
async def get_config(plugin_id: str, state: ServerState = State) -> ConfigView:
    """The configuration in force, secrets masked, and the layer of each value."""
    return _config_view(state, plugin_id)


@router.get("/{plugin_id}/config/schema", dependencies=[require(READ)],
             responses=problem_responses(400, 404, 409, 502, 504))  # fmt: skip
async def config_schema(plugin_id: str, state: ServerState = State) -> dict[str, Any]:
    """The JSON Schema of the plugin's settings (``{}`` when it declares none)."""
    return await HostViews(state.host).config_schema(plugin_id)


@router.put("/{plugin_id}/config", response_model=ConfigView, dependencies=[require(ADMIN)],
             responses=problem_responses(400, 403, 404, 409, 422, 502, 504))  # fmt: skip
async def set_config(
    plugin_id: str, change: ConfigChange, state: ServerState = State
) -> ConfigView:
    """Set one setting at runtime: validated first (a bad value changes nothing, 400),
    saved as a runtime override, and put in force in the running plugin."""
    await state.host.set_config(plugin_id, change.key, change.value)
    return _config_view(state, plugin_id)


@router.delete("/{plugin_id}/config/{key}", response_model=ConfigView,
               dependencies=[require(ADMIN)],
               responses=problem_responses(400, 403, 404, 409, 502, 504))  # fmt: skip
async def unset_config(plugin_id: str, key: str, state: ServerState = State) -> ConfigView:
    """Remove a runtime override: the value falls back to the layers below."""
    await state.host.unset_config(plugin_id, key)
    return _config_view(state, plugin_id)


async def _transition(state: ServerState, plugin_id: str, action: str) -> dict[str, Any]:
    host = state.host
    record = host.record(plugin_id)
    step = {"suspend": host.suspend, "resume": host.resume}[action]
    if not await state.single_flight(plugin_id, action, step(plugin_id)):
        raise Problem(409, record.reason or f"'{plugin_id}' could not {action}",
                      plugin_id=plugin_id, state=record.state.value)  # fmt: skip
    return await plugin_status(plugin_id, state)


@router.post("/{plugin_id}/suspend", response_model=PluginStatus, dependencies=[require(ADMIN)],
             responses=problem_responses(403, 404, 409, 502, 504))  # fmt: skip
async def suspend(plugin_id: str, state: ServerState = State) -> dict[str, Any]:
    """Suspend an active plugin (it keeps its state; nothing is routed to it)."""
    return await _transition(state, plugin_id, "suspend")


@router.post("/{plugin_id}/resume", response_model=PluginStatus, dependencies=[require(ADMIN)],
             responses=problem_responses(403, 404, 409, 502, 504))  # fmt: skip
async def resume(plugin_id: str, state: ServerState = State) -> dict[str, Any]:
    """Resume a suspended plugin."""
    return await _transition(state, plugin_id, "resume")


@router.post("/{plugin_id}/reload", response_model=ReloadOutcome, dependencies=[require(ADMIN)],
             responses=problem_responses(403, 404, 409, 422))  # fmt: skip
async def reload(
    plugin_id: str, suspend_dependents: bool = False, state: ServerState = State
) -> dict[str, Any]:
    """Reload or upgrade the plugin beside itself (what is installed now); 409 while one of
    it is running. A refusal or rollback is an answer (``ok: false``), not an error."""
    state.host.record(plugin_id)
    work = state.host.reload(plugin_id, suspend_dependents=suspend_dependents)
    result = await state.single_flight(plugin_id, "reload", work)
    return result.to_dict()


@router.post("/{plugin_id}/install", response_model=InstallOutcome, dependencies=[require(ADMIN)],
             responses=problem_responses(400, 403, 404, 409, 422, 502))  # fmt: skip
async def install(
    plugin_id: str, request: InstallRequest | None = None, state: ServerState = State
) -> dict[str, Any]:
    """Install (or upgrade to) the newest version in range from an allowed index, validate
    its manifest before any of its code runs, and start it; 409 while one of it runs."""
    wanted = request or InstallRequest()
    installer = PackageInstaller(state.host, state.settings)
    work = installer.install(plugin_id, version=wanted.version, index_url=wanted.index_url,
                             distribution=wanted.distribution)  # fmt: skip
    return await state.single_flight(plugin_id, "install", work)


@router.delete("/{plugin_id}", response_model=UninstallOutcome, dependencies=[require(ADMIN)],
             responses=problem_responses(403, 404, 409, 502))  # fmt: skip
async def uninstall(plugin_id: str, state: ServerState = State) -> dict[str, Any]:
    """Unload the plugin, then uninstall its distribution."""
    state.host.record(plugin_id)
    work = PackageInstaller(state.host, state.settings).uninstall(plugin_id)
    return await state.single_flight(plugin_id, "uninstall", work)
