"""The host <-> worker protocol: length-prefixed JSON frames over a Unix socket.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON,
one object. Every object has an ``op``:

=========  ===========  ============================================================
op         direction    fields
=========  ===========  ============================================================
start      host->worker ``spec`` (sandbox), ``entry_point``, ``search_path``, ``manifest``
ready      worker->host ``hooks`` (names implemented), ``warnings``
failed     worker->host ``message`` (import or registration failed; the worker exits)
call       host->worker ``id``, ``hook``, ``kwargs``
result     worker->host ``id``, ``value``
error      worker->host ``id``, ``type``, ``message``, optional ``permission``
cancel     host->worker ``id`` (the worker cancels the call and answers ``error``)
context    worker->host ``id``, ``method``, ``args`` (a context operation of the plugin)
reply      host->worker ``id``, ``value`` or ``error`` (the answer to ``context``)
sources    host->worker ``value``: the data sources of active plugins (``read-data`` only)
log        worker->host ``level``, ``message`` (only with ``write-logs``)
violation  worker->host ``event``, ``message`` (the sandbox refused something)
stop       host->worker (the worker exits)
=========  ===========  ============================================================

Call ids are chosen by the side that asks (the host for ``call``, the worker for
``context``). Values are JSON; the models of :mod:`acp_plugins.models` travel as
``{"$model": name, "value": fields}`` and are rebuilt (validated) on the other
side; anything else a plugin returns must be plain JSON. The host never
unpickles or evaluates anything a worker sends: a frame that is not valid JSON,
not an object, too large, or of an unknown op is a protocol violation and the
worker is killed.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from acp_plugins import models
from acp_plugins.config.layers import PluginConfig
from acp_plugins.errors import WorkerProtocolError
from acp_plugins.loading.manifest import Manifest

__all__ = [
    "HEADER",
    "MAX_FRAME",
    "FrameReader",
    "decode_value",
    "encode_frame",
    "encode_value",
    "parse_frame",
]

HEADER = struct.Struct(">I")
#: The largest frame either side accepts (bytes of JSON).
MAX_FRAME = 8 * 1024 * 1024

#: The models that may cross the boundary by name.
MODELS: dict[str, type[BaseModel]] = {
    cls.__name__: cls
    for cls in vars(models).values()
    if isinstance(cls, type) and issubclass(cls, BaseModel) and cls.__module__ == models.__name__
}
MODELS["Manifest"] = Manifest

WORKER_OPS = frozenset({"ready", "failed", "result", "error", "context", "log", "violation"})


def encode_frame(message: Mapping[str, Any]) -> bytes:
    """One frame: the length header and the JSON body (UTF-8).

    Text is written as it is, not escaped to ASCII (a third faster for a 100 KB
    text); a lone surrogate a plugin's text may hold is kept (``surrogatepass``
    both ways), as the ASCII escapes kept it.
    """
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    body = text.encode("utf-8", "surrogatepass")
    if len(body) > MAX_FRAME:
        raise WorkerProtocolError(f"a frame of {len(body)} bytes exceeds {MAX_FRAME} bytes")
    return HEADER.pack(len(body)) + body


def parse_frame(body: bytes) -> dict[str, Any]:
    """One frame's body as a message; raises :class:`WorkerProtocolError` if it is not one."""
    try:
        message = json.loads(body.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, ValueError) as error:
        raise WorkerProtocolError(f"a frame is not valid JSON ({error})") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise WorkerProtocolError("a frame is not a JSON object with an 'op'")
    return message


class FrameReader(asyncio.Protocol):
    """Cuts the bytes of a channel into frames and hands each message to ``on_frame``.

    ``on_closed`` is called once: with ``None`` when the other side closed the
    channel, or with the error that ended it: a malformed or oversized frame, or an
    exception raised by ``on_frame`` (the channel is then closed from this side).
    """

    def __init__(
        self,
        on_frame: Callable[[dict[str, Any]], None],
        on_closed: Callable[[BaseException | None], None],
        limit: int = MAX_FRAME,
    ) -> None:
        self.on_frame = on_frame
        self.on_closed = on_closed
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._ended = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while not self._ended and len(buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(buffer)
            if length > self.limit:
                self._end(
                    WorkerProtocolError(
                        f"a frame of {length} bytes exceeds the limit of {self.limit} bytes"
                    )
                )
                return
            end = HEADER.size + length
            if len(buffer) < end:
                return
            body = bytes(buffer[HEADER.size : end])
            del buffer[:end]
            try:
                self.on_frame(parse_frame(body))
            except Exception as error:
                self._end(error)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._ended:
            self._ended = True
            self.on_closed(exc if not isinstance(exc, ConnectionError) else None)

    def _end(self, error: BaseException) -> None:
        self._ended = True
        self._buffer.clear()
        if self.transport is not None:
            self.transport.abort()
        self.on_closed(error)


def encode_value(value: Any) -> Any:
    """``value`` as JSON data, models tagged with their names."""
    if isinstance(value, BaseModel):
        return {"$model": type(value).__name__, "value": value.model_dump(mode="json")}
    if isinstance(value, PluginConfig):
        return {
            "$config": {
                "plugin_id": value.plugin_id,
                "version": value.version,
                "enabled": value.enabled,
                "settings": to_jsonable_python(dict(value.settings), fallback=str),
                "environment": dict(value.environment),
            }
        }
    if isinstance(value, Mapping):
        return {str(key): encode_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [encode_value(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return to_jsonable_python(value)  # raises PydanticSerializationError for anything else


def decode_value(data: Any) -> Any:
    """Rebuild what :func:`encode_value` made; a tagged model is validated as it is rebuilt.

    A tagged value that does not validate stays plain data, for the caller's own
    checks to refuse with the plugin's name.
    """
    if isinstance(data, dict):
        name = data.get("$model")
        if isinstance(name, str) and name in MODELS and len(data) == 2:
            try:
                return MODELS[name].model_validate(data.get("value"))
            except ValidationError:
                return data.get("value")
        config = data.get("$config")
        if isinstance(config, dict) and len(data) == 1:
            return PluginConfig(**config)
        return {key: decode_value(item) for key, item in data.items()}
    if isinstance(data, list):
        return [decode_value(item) for item in data]
    return data
