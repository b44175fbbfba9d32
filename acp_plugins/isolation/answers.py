"""Reading what a worker answers: its errors as the host's exceptions, its resolved settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from acp_plugins.config.layers import Layer, ResolvedConfig, ValueOrigin
from acp_plugins.errors import (
    ConfigError,
    ConfigProblem,
    PluginCallError,
    PluginImportError,
    WorkerError,
    WorkerProtocolError,
)
from acp_plugins.printable import printable

__all__ = ["Ready", "answer_within", "read_ready", "remote_error", "resolved_config"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ready:
    """What a worker says once its plugin is loaded: its hooks and its own layers."""

    hooks: frozenset[str]
    layers: list[str]
    missing: dict[str, str]
    warnings: list[str]


def _log_traceback(plugin_id: str, where: str, frame: Mapping[str, Any]) -> None:
    """The plugin's own traceback from its worker, at debug level (``--debug`` shows it)."""
    text = frame.get("traceback")
    if isinstance(text, str) and text and logger.isEnabledFor(logging.DEBUG):
        shown = printable(text, multiline=True, limit=16_000).rstrip()
        logger.debug("'%s' raised in %s; its traceback in the worker:\n%s", plugin_id, where, shown)


def read_ready(plugin_id: str, frame: Mapping[str, Any]) -> Ready:
    """The worker's first answer: ``ready``, or why the plugin could not be loaded."""
    if frame["op"] == "failed":
        message = printable(frame.get("message", "the plugin could not be loaded"), limit=2000)
        _log_traceback(plugin_id, "loading", frame)
        raise PluginImportError(message, plugin_id=plugin_id)
    if frame["op"] != "ready" or not isinstance(frame.get("hooks"), list):
        raise WorkerProtocolError(f"expected 'ready', the worker sent {frame['op']!r}")
    return Ready(
        frozenset(str(hook) for hook in frame["hooks"]),
        [str(layer) for layer in frame.get("layers", ())],
        {str(k): printable(v, limit=300) for k, v in dict(frame.get("missing") or {}).items()},
        [printable(w, limit=300) for w in frame.get("warnings", ())],
    )


def remote_error(plugin_id: str, hook: str, frame: Mapping[str, Any]) -> Exception:
    """The exception an ``error`` frame from the worker of ``plugin_id`` stands for."""
    kind = printable(frame.get("type", "Error"), limit=100)
    message = printable(frame.get("message", ""), limit=2000)
    _log_traceback(plugin_id, hook, frame)
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


async def answer_within(call: Awaitable[Any], timeout: float, plugin_id: str) -> Any:
    """The answer to ``$resolve_config``, or :class:`WorkerError` past ``timeout``."""
    try:
        return await asyncio.wait_for(call, timeout)
    except asyncio.TimeoutError:  # not the builtin one before Python 3.11
        raise WorkerError(
            f"'{plugin_id}' did not validate its settings within {timeout:g} s",
            plugin_id=plugin_id,
            hook="$resolve_config",
        ) from None


def resolved_config(plugin_id: str, answer: object) -> ResolvedConfig:
    """The configuration a worker validated: values with secrets masked, and their origins.

    The worker keeps the real secrets; a bad setting comes back as a ``ConfigError``.
    """
    if not isinstance(answer, dict):
        raise WorkerProtocolError("the answer to $resolve_config is not an object")
    origins = {
        str(path): ValueOrigin(Layer(origin[0]), str(origin[1]))
        for path, origin in dict(answer.get("origins") or {}).items()
    }
    return ResolvedConfig(plugin_id, None, dict(answer.get("values") or {}), origins)
