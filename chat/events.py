"""The one event protocol every transport speaks.

A reply is a sequence of events: ``start``, any number of ``chunk``, then exactly one of
``done`` or ``error``. A chunk's ``offset`` is the reply's length in Unicode code points
(Python's ``len``) once that chunk is applied: the resume point clients echo back.
Transports only encode these (``to_sse`` / ``to_ws``); they never build events themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Start:
    """A reply began (or a follower attached to one)."""

    message_id: int
    conversation_id: str
    model: str

    def payload(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "conversation_id": self.conversation_id,
            "model": self.model,
        }

    def to_sse(self) -> str:
        return f"event: start\ndata: {_json(self.payload())}\n\n"

    def to_ws(self) -> dict[str, Any]:
        return {"type": "start", **self.payload()}


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of reply text; ``offset`` is the reply length after it."""

    message_id: int
    text: str
    offset: int

    @property
    def start(self) -> int:
        """The offset at which this chunk's text begins."""
        return self.offset - len(self.text)

    def to_sse(self) -> str:
        return f"id: {self.offset}\ndata: {_json({'chunk': self.text})}\n\n"

    def to_ws(self) -> dict[str, Any]:
        return {
            "type": "chunk",
            "message_id": self.message_id,
            "chunk": self.text,
            "offset": self.offset,
        }

    def to_ws_text(self) -> str:
        # ``_json(self.to_ws())`` built directly: one frame per token, the hot path.
        return (
            f'{{"type":"chunk","message_id":{self.message_id:d},'
            f'"chunk":{_json(self.text)},"offset":{self.offset:d}}}'
        )


@dataclass(frozen=True, slots=True)
class Done:
    """The reply ended without an error (complete, or cancelled by the user)."""

    message_id: int
    status: str
    stop_reason: str | None
    input_tokens: int | None
    output_tokens: int | None

    def payload(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
        }

    def to_sse(self) -> str:
        return f"event: done\ndata: {_json(self.payload())}\n\n"

    def to_ws(self) -> dict[str, Any]:
        return {"type": "done", **self.payload()}


@dataclass(frozen=True, slots=True)
class Error:
    """The reply ended in an error (upstream failure, interruption)."""

    message_id: int
    type: str
    message: str

    def payload(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "error": {"type": self.type, "message": self.message},
        }

    def to_sse(self) -> str:
        return f"event: error\ndata: {_json(self.payload())}\n\n"

    def to_ws(self) -> dict[str, Any]:
        return {"type": "error", **self.payload()}


Event = Start | Chunk | Done | Error
FinalEvent = Done | Error

SSE_DONE = "data: [DONE]\n\n"
SSE_PING = ": ping\n\n"


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing happened for a heartbeat interval (SSE sends a ``: ping`` comment)."""

    def to_sse(self) -> str:
        return SSE_PING


IDLE = Idle()


def sse_retry(milliseconds: int) -> str:
    """The ``retry:`` frame that tells ``EventSource`` how long to wait before reconnecting."""
    return f"retry: {milliseconds}\n\n"


def is_final(event: Event) -> bool:
    """Whether ``event`` ends a reply."""
    return isinstance(event, Done | Error)


def ws_text(event: Event | MessageAdded) -> str:
    """The WebSocket frame of ``event`` as JSON text (a chunk's built directly: the hot path)."""
    if isinstance(event, Chunk):
        return event.to_ws_text()
    return _json(event.to_ws())


def to_dict(event: Event | MessageAdded) -> dict[str, Any]:
    """A JSON-able form (used across processes through the channel layer)."""
    return event.to_ws()


def from_dict(data: dict[str, Any]) -> Event:
    """Inverse of ``to_dict``."""
    kind = data["type"]
    if kind == "start":
        return Start(data["message_id"], data["conversation_id"], data["model"])
    if kind == "chunk":
        return Chunk(data["message_id"], data["chunk"], data["offset"])
    if kind == "done":
        usage = data.get("usage") or {}
        return Done(
            data["message_id"],
            data["status"],
            data.get("stop_reason"),
            usage.get("input_tokens"),
            usage.get("output_tokens"),
        )
    if kind == "error":
        return Error(data["message_id"], data["error"]["type"], data["error"]["message"])
    raise ValueError(f"Unknown event type: {kind!r}")


class OffsetTracker:
    """Delivers each byte of a reply exactly once, whatever order or overlap chunks arrive in.

    Used wherever two sources may deliver the same chunk (a replayed snapshot and the live
    stream, or a conversation watch and an explicit resume).
    """

    def __init__(self, delivered: int = 0) -> None:
        self.delivered = delivered

    def admit(self, chunk: Chunk) -> Chunk | None:
        """The part of ``chunk`` not yet delivered, or None if it is all old (or a gap)."""
        if chunk.offset <= self.delivered or chunk.start > self.delivered:
            return None
        text = chunk.text[self.delivered - chunk.start :]
        self.delivered = chunk.offset
        return Chunk(chunk.message_id, text, chunk.offset)


@dataclass(frozen=True, slots=True)
class MessageAdded:
    """A message was stored in a conversation (sent to conversation watchers only)."""

    conversation_id: str
    message: dict[str, Any]

    def to_ws(self) -> dict[str, Any]:
        return {"type": "message", "message": self.message}
