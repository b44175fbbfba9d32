"""The host <-> worker protocol: framing limits, malformed frames, and values both ways."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acp_plugins import DataQuery, Message, MessageResponse, PluginConfig, TimeRange
from acp_plugins.errors import WorkerProtocolError
from acp_plugins.isolation.protocol import (
    HEADER,
    MAX_FRAME,
    FrameReader,
    decode_value,
    encode_frame,
    encode_value,
)


def _read(data: bytes, *, chunk: int = 3) -> tuple[list[dict[str, Any]], list[Any]]:
    """Feed ``data`` to a reader a few bytes at a time: the frames, and how it ended."""
    frames: list[dict[str, Any]] = []
    ended: list[Any] = []
    reader = FrameReader(frames.append, ended.append)
    for start in range(0, len(data), chunk):
        reader.data_received(data[start : start + chunk])
    return frames, ended


def test_a_frame_is_a_length_and_a_json_object() -> None:
    frame = encode_frame({"op": "call", "id": 1})
    (length,) = HEADER.unpack(frame[:4])
    assert length == len(frame) - 4 and json.loads(frame[4:]) == {"op": "call", "id": 1}
    two = frame + encode_frame({"op": "cancel", "id": 1})
    assert _read(two) == ([{"op": "call", "id": 1}, {"op": "cancel", "id": 1}], [])
    assert _read(two, chunk=len(two)) == _read(two)


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
def test_malformed_frames_end_the_channel_with_the_reason(data: bytes, message: str) -> None:
    frames, ended = _read(data + encode_frame({"op": "after"}))
    assert frames == []  # nothing after a bad frame is read
    (error,) = ended
    assert isinstance(error, WorkerProtocolError) and str(error).startswith(message)


def test_an_error_in_the_receiver_ends_the_channel() -> None:
    ended: list[Any] = []

    def refuse(frame: dict[str, Any]) -> None:
        raise WorkerProtocolError(f"unknown op {frame['op']!r}")

    FrameReader(refuse, ended.append).data_received(encode_frame({"op": "bogus"}))
    assert [str(e) for e in ended] == ["unknown op 'bogus'"]


def test_a_truncated_frame_waits_for_the_rest() -> None:
    frame = encode_frame({"op": "x"})
    assert _read(frame[:-1]) == ([], [])


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


@given(text=st.text(), number=st.integers())
def test_any_text_and_any_integer_cross_a_frame_exactly(text: str, number: int) -> None:
    """Text goes as UTF-8, not ASCII escapes: lone surrogates and huge integers stay exact."""
    sent = {"op": "result", "value": {"text": text, "number": number, "lone": "\ud800x"}}
    assert _read(encode_frame(sent), chunk=7) == ([sent], [])


def test_text_is_written_as_utf8_not_escaped() -> None:
    frame = encode_frame({"op": "log", "message": "héllo ✓"})
    assert "héllo ✓".encode() in frame and b"\\u" not in frame
