"""The WebSocket transport: one socket per open conversation, a thin adapter over the engine.

A socket sees every event of its conversation: those of replies generated in this process
come straight from ``Engine.watch`` (no channel layer per token); those of replies running
in other processes come through the conversation's channel-layer group (``chat_event``).
``Delivery`` makes sure each byte reaches the client once, whichever way it came.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from chat import bridge
from chat.auth import token_user
from chat.db import read_db
from chat.engine import WORKER_ID, get_engine
from chat.errors import ChatError, InvalidRequest, NotFound
from chat.events import (
    Chunk,
    Event,
    MessageAdded,
    OffsetTracker,
    Start,
    from_dict,
    is_final,
    ws_text,
)
from chat.models import Conversation, Message

logger = logging.getLogger("chat.consumers")

# Daphne refuses bigger incoming messages (--websocket-max-message-size, default 1 MiB)
# by closing with 1009; other servers may allow more, so the consumer refuses them too.
# The longest valid message (MAX_MESSAGE_LENGTH code points, at most 12 bytes each once
# JSON-escaped) fits well within it at the default limit of 32,000: see docs/api.md.
MAX_FRAME_BYTES = 1024 * 1024

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403

WatchEvent = Event | MessageAdded


@dataclass
class _Reply:
    """What one socket has delivered of one reply."""

    tracker: OffsetTracker = field(default_factory=OffsetTracker)
    started: bool = False
    ended: bool = False
    # While a resume is being set up, other sources are held back: the resume's own
    # snapshot covers what they would deliver.
    resuming: bool = False


class Delivery:
    """Turns events from several sources into frames, each event and byte at most once."""

    def __init__(self) -> None:
        self.replies: dict[int, _Reply] = {}
        self.user_messages: set[int] = set()

    def admit(self, event: WatchEvent, *, resume: bool = False) -> WatchEvent | None:
        """The event to send (a chunk trimmed to its new part), or None if already delivered.

        ``resume`` marks events of an explicit resume, which alone may pass while one is
        being set up. Chunks of a reply whose start this socket has not seen are dropped:
        a client joining mid-reply catches up with ``resume``.
        """
        if isinstance(event, MessageAdded):
            message_id = int(event.message["id"])
            if message_id in self.user_messages:
                return None
            self.user_messages.add(message_id)
            return event
        reply = self.replies.get(event.message_id)
        if reply is not None and reply.resuming and not resume:
            return None
        if isinstance(event, Start):
            if reply is not None and reply.started:
                return None
            reply = self.replies.setdefault(event.message_id, _Reply())
            reply.started = True
            return event
        if reply is None or reply.ended:
            if reply is None and is_final(event):
                self.replies[event.message_id] = _Reply(started=True, ended=True)
                return event
            return None
        if isinstance(event, Chunk):
            return reply.tracker.admit(event)
        reply.ended = True
        return event

    def begin_resume(self, message_id: int) -> _Reply | None:
        """Hold other sources back for a reply about to be resumed; returns the old state."""
        old = self.replies.get(message_id)
        self.replies[message_id] = _Reply(resuming=True)
        return old

    def resumed(self, message_id: int, offset: int) -> None:
        """The resume's snapshot is taken: deliver from ``offset``, from any source."""
        self.replies[message_id] = _Reply(tracker=OffsetTracker(offset))

    def abandon_resume(self, message_id: int, old: _Reply | None) -> None:
        """A resume that could not start: restore what was there before."""
        if old is None:
            self.replies.pop(message_id, None)
        else:
            self.replies[message_id] = old


class ChatConsumer(AsyncJsonWebsocketConsumer):
    """``ws/conversations/<uuid>/``: send messages, cancel and resume replies, see every event."""

    user: Any = None
    conversation_id: str = ""
    group: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delivery = Delivery()
        self.resumes: dict[int, asyncio.Task[None]] = {}
        self.pump: asyncio.Task[None] | None = None
        self.watching: AbstractContextManager[asyncio.Queue[WatchEvent]] | None = None

    # -- connection -----------------------------------------------------------------

    async def connect(self) -> None:
        """Accept the owner of the conversation; close 4401 / 4403 for anyone else."""
        self.conversation_id = str(self.scope["url_route"]["kwargs"]["conversation_id"])
        try:
            user = await self.authenticate()
        except ChatError:
            user = None
        refusal = None
        if user is None:
            refusal = CLOSE_NOT_AUTHENTICATED
        elif not await owns_conversation(user.pk, self.conversation_id):
            refusal = CLOSE_FORBIDDEN
        if refusal is not None:
            # Accepting first lets the client read the reason from the close code.
            await self.accept()
            await self.close(code=refusal)
            return
        self.user = user
        # Subscribe before accepting: every event after the client sees "open" reaches it.
        self.watching = get_engine().watch(self.conversation_id)
        queue = self.watching.__enter__()
        await self.join_group()
        await self.accept()
        self.pump = asyncio.get_running_loop().create_task(self.relay_watch(queue))

    async def authenticate(self) -> Any | None:
        """The session's user, else the user of an ``Authorization: Token`` header."""
        user = self.scope.get("user")
        if user is not None and user.is_authenticated and user.is_active:
            return user
        headers = dict(self.scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        return await token_user(authorization) if authorization else None

    async def join_group(self) -> None:
        """Join the conversation's group, through which other processes' events arrive."""
        if self.channel_layer is None:
            return
        group = bridge.conversation_group(self.conversation_id)
        try:
            await self.channel_layer.group_add(group, self.channel_name)
        except Exception:  # a layer outage must not break the local stream
            logger.exception("could not join %s", group)
            return
        self.group = group

    async def disconnect(self, code: int) -> None:
        """Stop following; replies keep running (a socket going away is not a cancel)."""
        tasks = [t for t in (self.pump, *self.resumes.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.watching is not None:
            self.watching.__exit__(None, None, None)
            self.watching = None
        if self.group is not None and self.channel_layer is not None:
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None

    # -- client frames --------------------------------------------------------------

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """Decode a client frame; a bad one gets an ``invalid_request`` error frame."""
        if self.user is None:
            return  # a refused socket, closing
        try:
            frame = decode_frame(text_data)
            await self.receive_json(frame)
        except ChatError as error:
            await self.send_error(error)

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        """Dispatch a decoded frame on its ``type``."""
        handlers = {"message": self.on_message, "cancel": self.on_cancel, "resume": self.on_resume}
        handler = handlers.get(content.get("type"))  # type: ignore[arg-type]
        if handler is None:
            raise InvalidRequest(
                f"Unknown frame type {content.get('type')!r}: expected message, cancel or resume."
            )
        await handler(content)

    async def on_message(self, frame: dict[str, Any]) -> None:
        """Start a reply; its events reach every socket of the conversation via the watch."""
        content = frame["content"] if "content" in frame else frame.get("text")
        if content is None:
            raise InvalidRequest("'content' is required.")
        await get_engine().start(
            user_id=self.user.pk, conversation_id=self.conversation_id, content=content
        )

    async def on_cancel(self, frame: dict[str, Any]) -> None:
        """Cancel the given reply, or the one running in this conversation (if any)."""
        engine = get_engine()
        if frame.get("message_id") is not None:
            message_id = positive_int(frame, "message_id")
            await engine.cancel(message_id=message_id, user_id=self.user.pk)
            return
        user_id = self.user.pk
        if await engine.cancel_conversation(conversation_id=self.conversation_id, user_id=user_id):
            return
        running = await streaming_reply(self.conversation_id)  # maybe in another process
        if running is not None:
            await engine.cancel(message_id=running, user_id=user_id)

    async def on_resume(self, frame: dict[str, Any]) -> None:
        """Follow a reply from an offset, merged with the live events without duplicates."""
        message_id = positive_int(frame, "message_id")
        offset = frame.get("offset", 0)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidRequest("'offset' must be a non-negative integer.")
        previous = self.resumes.pop(message_id, None)
        if previous is not None:
            previous.cancel()
        old = self.delivery.begin_resume(message_id)
        try:
            events = await get_engine().follow(
                message_id=message_id, user_id=self.user.pk, offset=offset
            )
        except BaseException:
            self.delivery.abandon_resume(message_id, old)
            raise
        task = asyncio.get_running_loop().create_task(self.relay_resume(message_id, offset, events))
        self.resumes[message_id] = task

    # -- server frames --------------------------------------------------------------

    async def relay_watch(self, queue: asyncio.Queue[WatchEvent]) -> None:
        """Send the conversation's local events as they are published."""
        while True:
            event = await queue.get()
            await self.deliver(event)

    async def relay_resume(self, message_id: int, offset: int, events: Any) -> None:
        """Send a resumed reply's events; stop at its end."""
        try:
            async for event in events:
                if isinstance(event, Start):
                    if event.conversation_id != self.conversation_id:
                        self.delivery.abandon_resume(message_id, None)
                        await self.send_error(NotFound("Message not found."))
                        return
                    self.delivery.resumed(message_id, offset)
                await self.deliver(event, resume=True)
        finally:
            await events.aclose()
            if self.resumes.get(message_id) is asyncio.current_task():
                del self.resumes[message_id]

    async def chat_event(self, message: dict[str, Any]) -> None:
        """An event from the conversation's channel-layer group (published by another process)."""
        if message.get("origin") == WORKER_ID:
            return  # this process's own events already came through the watch
        data = message.get("event") or {}
        try:
            if data.get("type") == "message":
                event: WatchEvent = MessageAdded(self.conversation_id, data["message"])
            else:
                event = from_dict(data)
        except (KeyError, TypeError, ValueError):
            logger.warning("ignoring a malformed chat.event: %r", data)
            return
        await self.deliver(event)

    async def deliver(self, event: WatchEvent, *, resume: bool = False) -> None:
        """Send ``event`` unless this socket already has it."""
        admitted = self.delivery.admit(event, resume=resume)
        if admitted is not None:
            await self.send_text(ws_text(admitted))

    async def send_text(self, text: str) -> None:
        """Send a JSON text frame straight to the server (one per token: the hot path).

        ``send_json`` would go through three more coroutine layers per frame.
        """
        await self.base_send({"type": "websocket.send", "text": text})

    async def send_error(self, error: ChatError) -> None:
        """An ``error`` frame refusing a client frame (``message_id`` null: no reply ended)."""
        body: dict[str, Any] = error.as_dict()
        if error.retry_after is not None:  # rate limits say when to try again (seconds)
            body["retry_after"] = math.ceil(error.retry_after)
        await self.send_json({"type": "error", "message_id": None, "error": body})

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        """Compact JSON, non-ASCII kept as is (as in the SSE frames)."""
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


def decode_frame(text_data: str | None) -> dict[str, Any]:
    """A client frame as a JSON object, or ``InvalidRequest``."""
    if text_data is None:
        raise InvalidRequest("Frames must be JSON text, not binary.")
    if len(text_data) > MAX_FRAME_BYTES or len(text_data.encode("utf-8")) > MAX_FRAME_BYTES:
        raise InvalidRequest(f"The frame is too large (the limit is {MAX_FRAME_BYTES} bytes).")
    try:
        frame = json.loads(text_data)
    except (ValueError, RecursionError):  # RecursionError: deeply nested arrays
        raise InvalidRequest("The frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise InvalidRequest('A frame must be a JSON object with a "type".')
    return frame


def positive_int(frame: dict[str, Any], name: str) -> int:
    """A positive integer field of a frame, or ``InvalidRequest``."""
    value = frame.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidRequest(f"'{name}' must be a positive integer.")
    return value


async def owns_conversation(user_id: int, conversation_id: str) -> bool:
    """Whether the conversation exists and belongs to the user."""
    return await read_db(_owns_conversation, user_id=user_id, conversation_id=conversation_id)


def _owns_conversation(*, user_id: int, conversation_id: str) -> bool:
    return Conversation.objects.filter(pk=conversation_id, owner_id=user_id).exists()


@database_sync_to_async
def streaming_reply(conversation_id: str) -> int | None:
    """The id of the reply streaming in a conversation, wherever it runs."""
    return (
        Message.objects.filter(
            conversation_id=conversation_id,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
        )
        .order_by("-id")
        .values_list("pk", flat=True)
        .first()
    )
