"""Reading what a worker answers: its errors as the host's exceptions, its resolved settings."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from acp_plugins.config.layers import Layer, ResolvedConfig, ValueOrigin
from acp_plugins.errors import (
    ConfigError,
    ConfigProblem,
    PluginCallError,
    WorkerError,
    WorkerProtocolError,
)

__all__ = ["remote_error", "resolved_config"]


def remote_error(plugin_id: str, hook: str, frame: Mapping[str, Any]) -> Exception:
    """The exception an ``error`` frame from the worker of ``plugin_id`` stands for."""
    kind, message = str(frame.get("type", "Error")), str(frame.get("message", ""))[:2000]
    if kind == "MemoryError":
        return WorkerError(
            f"'{plugin_id}' failed in {hook}: {message}", plugin_id=plugin_id, hook=hook
        )
    if kind == "ConfigError":
        problems = []
        for item in frame.get("problems") or []:
            if isinstance(item, dict):
                with contextlib.suppress(TypeError):
                    problems.append(ConfigProblem(**item))
        return ConfigError(message, plugin_id=plugin_id, problems=problems)
    if kind == "Cancelled":
        return PluginCallError(f"'{plugin_id}' cancelled {hook}", plugin_id=plugin_id, hook=hook)
    if kind == "PermissionDenied":
        return PluginCallError(
            f"'{plugin_id}' failed in {hook}: {message}", plugin_id=plugin_id, hook=hook
        )
    return PluginCallError(
        f"'{plugin_id}' failed in {hook}: {kind}: {message}", plugin_id=plugin_id, hook=hook
    )


def resolved_config(plugin_id: str, answer: object) -> ResolvedConfig:
    """The configuration a worker validated (values with secrets masked, and their origins)."""
    if not isinstance(answer, dict):
        raise WorkerProtocolError("the answer to $resolve_config is not an object")
    origins = {
        str(path): ValueOrigin(Layer(origin[0]), str(origin[1]))
        for path, origin in dict(answer.get("origins") or {}).items()
    }
    return ResolvedConfig(plugin_id, None, dict(answer.get("values") or {}), origins)
