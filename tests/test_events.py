"""The event protocol's wire encodings."""

from __future__ import annotations

import json

import pytest

from chat.events import Chunk, Done, Error, MessageAdded, Start, ws_text


@pytest.mark.parametrize(
    "text",
    ["plain", 'quotes " and \\ backslash', "new\nline\ttab", "ünïcode 😀 \u2028", "\x01", ""],
)
def test_chunk_frame_text_is_the_json_of_its_frame(text):
    """The hand-built chunk frame decodes to exactly the frame's fields (and encodes alike)."""
    chunk = Chunk(7, text, 42)
    wire = ws_text(chunk)
    assert json.loads(wire) == {"type": "chunk", "message_id": 7, "chunk": text, "offset": 42}
    assert wire == json.dumps(chunk.to_ws(), ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize(
    "event",
    [
        Start(1, "c0ffee", "claude"),
        Done(1, "complete", "end_turn", 3, 4),
        Error(1, "overloaded", 'The "model" is busy.'),
        MessageAdded("c0ffee", {"id": 2, "content": "hi"}),
    ],
)
def test_other_frames_text_is_their_json(event):
    assert json.loads(ws_text(event)) == event.to_ws()
