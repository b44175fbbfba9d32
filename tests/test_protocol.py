"""The host <-> worker protocol: framing limits, malformed frames, and values both ways."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acp_plugins import DataQuery, Message, MessageResponse, PluginConfig, TimeRange
from acp_plugins.errors import WorkerProtocolError
from acp_plugins.protocol import HEADER, MAX_FRAME, decode_value, encode_frame, encode_value
from acp_plugins.protocol import read_frame as read_one

Run = Callable[..., Any]


def _read(run: Run, data: bytes, limit: int = MAX_FRAME) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await read_one(reader, limit)

    result: dict[str, Any] = run(go())
    return result


def test_a_frame_is_a_length_and_a_json_object(run: Run) -> None:
    frame = encode_frame({"op": "call", "id": 1})
    (length,) = HEADER.unpack(frame[:4])
    assert length == len(frame) - 4 and json.loads(frame[4:]) == {"op": "call", "id": 1}
    assert _read(run, frame) == {"op": "call", "id": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (HEADER.pack(5) + b"hello", "a frame is not valid JSON"),
        (HEADER.pack(4) + b"\xff\xfe{}", "a frame is not valid JSON"),
        (HEADER.pack(2) + b"[]", "a frame is not a JSON object with an 'op'"),
        (HEADER.pack(11) + b'{"op": 42 }', "a frame is not a JSON object with an 'op'"),
        (HEADER.pack(MAX_FRAME + 1), f"a frame of {MAX_FRAME + 1} bytes exceeds the limit"),
    ],
)
def test_malformed_frames_are_refused_with_the_reason(run: Run, data: bytes, message: str) -> None:
    with pytest.raises(WorkerProtocolError) as caught:
        _read(run, data)
    assert str(caught.value).startswith(message)


def test_a_truncated_frame_is_the_end_of_the_stream(run: Run) -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        _read(run, encode_frame({"op": "x"})[:-1])


def test_nothing_larger_than_the_limit_is_sent() -> None:
    with pytest.raises(WorkerProtocolError, match="exceeds"):
        encode_frame({"op": "result", "value": "x" * MAX_FRAME})


TEXT = st.text(max_size=40)
METADATA = st.dictionaries(TEXT, st.one_of(st.integers(), TEXT, st.booleans()), max_size=4)


@given(content=TEXT, sender=TEXT, metadata=METADATA)
def test_messages_cross_the_boundary_unchanged(content: str, sender: str, metadata: Any) -> None:
    message = Message(type="chat", content=content, sender=sender, metadata=metadata)
    wire = json.loads(json.dumps(encode_value({"message": message, "n": [1, None]})))
    assert decode_value(wire) == {"message": message, "n": [1, None]}


def test_every_model_and_the_plugin_config_round_trip() -> None:
    values = [
        MessageResponse(content="hi", metadata={"a": 1}),
        DataQuery(filters={"agent": "alpha"}, limit=3),
        TimeRange(start="2026-01-01T00:00:00Z", end="2026-01-02T00:00:00Z"),
        PluginConfig(plugin_id="echo", version="1.0.0", settings={"prefix": "> "}),
    ]
    for value in values:
        assert decode_value(json.loads(json.dumps(encode_value(value)))) == value


def test_a_tagged_value_that_does_not_validate_stays_plain_data() -> None:
    # the host's own checks then refuse it with the plugin's name
    assert decode_value({"$model": "Message", "value": {"nonsense": 1}}) == {"nonsense": 1}
    assert decode_value({"$model": "os.system", "value": 1}) == {"$model": "os.system", "value": 1}
