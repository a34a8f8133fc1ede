"""Following a reply that does not run in this process: from storage or from another process.

``Engine.follow`` serves replies running here straight from their ``Generation``; these
followers serve the rest: a reply that has ended (replayed from the database), and one
running in another server process (live through the channel layer, see ``chat.bridge``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from chat import bridge, services
from chat.conf import chat_settings
from chat.db import read_db, run_db
from chat.events import (
    IDLE,
    Chunk,
    Done,
    Error,
    Event,
    FinalEvent,
    Idle,
    OffsetTracker,
    Start,
    from_dict,
)
from chat.models import Message

Status = Message.Status


def final_event(message_id: int, outcome: services.Outcome) -> FinalEvent:
    """The event that ends a reply with this outcome."""
    if outcome.status in (Status.ERROR, Status.INTERRUPTED):
        return Error(message_id, outcome.error_type or "api_error", outcome.error_message)
    return Done(
        message_id,
        outcome.status,
        outcome.stop_reason or None,
        outcome.input_tokens,
        outcome.output_tokens,
    )


def stored_final_event(message: Message) -> FinalEvent:
    """The final event of a reply that has ended, from its stored row."""
    return final_event(
        message.pk,
        services.Outcome(
            status=message.status,
            content=message.content,
            stop_reason=message.stop_reason,
            error_type=message.error_type,
            error_message=message.error_message,
            input_tokens=message.input_tokens,
            output_tokens=message.output_tokens,
        ),
    )


async def follow_stored(message: Message, offset: int) -> AsyncIterator[Event]:
    """Follow a reply that is not running in this process, from the database.

    An ended reply gives its stored text and final event at once. One still streaming
    in another process is polled at the flush interval until it ends, or until its
    lease lapses, when it is marked interrupted.
    """
    yield Start(message.pk, str(message.conversation_id), message.model)
    delivered = offset
    while True:
        text = message.content
        if len(text) > delivered:
            yield Chunk(message.pk, text[delivered:], len(text))
            delivered = len(text)
        if message.is_final:
            yield stored_final_event(message)
            return
        await asyncio.sleep(chat_settings.FLUSH_INTERVAL)
        await run_db(services.mark_interrupted, conversation_id=message.conversation_id)
        fresh = await read_db(services.reload, message_id=message.pk)
        if fresh is None:
            yield Error(message.pk, "not_found", "The message was deleted.")
            return
        message = fresh


async def follow_remote(layer: Any, message: Message, offset: int) -> AsyncIterator[Event]:
    """Follow a reply running in another process, through the channel layer.

    Live chunks come from the conversation's group; the stored text fills any gap (the
    part sent before we subscribed), and the lease tells when the other process died.
    """
    yield Start(message.pk, str(message.conversation_id), message.model)
    tracker = OffsetTracker(offset)
    loop = asyncio.get_running_loop()
    async with bridge.subscribe(layer, str(message.conversation_id)) as queue:
        current: Message | None = await read_db(services.reload, message_id=message.pk)
        reloaded = loop.time()
        while True:
            if current is None:
                yield Error(message.pk, "not_found", "The message was deleted.")
                return
            text = current.content
            if len(text) > tracker.delivered:
                yield Chunk(message.pk, text[tracker.delivered :], len(text))
                tracker.delivered = len(text)
            if current.is_final:
                yield stored_final_event(current)
                return
            refresh = await _next_remote(queue, tracker, message.pk)
            if isinstance(refresh, Chunk):
                yield refresh
                continue
            if refresh in ("other", "old"):
                continue
            if refresh == "gap" and loop.time() - reloaded < chat_settings.FLUSH_INTERVAL / 2:
                continue
            if refresh == "idle":
                await run_db(services.mark_interrupted, conversation_id=message.conversation_id)
            current = await read_db(services.reload, message_id=message.pk)
            reloaded = loop.time()


async def _next_remote(
    queue: asyncio.Queue[dict[str, Any]], tracker: OffsetTracker, message_id: int
) -> Chunk | str:
    """The next new chunk of a remote reply, or why the stored copy should be re-read."""
    try:
        data = await asyncio.wait_for(queue.get(), timeout=chat_settings.LEASE_SECONDS / 3)
    except TimeoutError:
        return "idle"
    if data.get("message_id") != message_id or data.get("type") not in ("chunk", "done", "error"):
        return "other"
    event = from_dict(data)
    if not isinstance(event, Chunk):
        return "final"  # the final state is stored before the event is sent: re-read it
    admitted = tracker.admit(event)
    return (
        admitted if admitted is not None else ("gap" if event.start > tracker.delivered else "old")
    )


async def with_heartbeat(
    events: AsyncIterator[Event], seconds: float
) -> AsyncIterator[Event | Idle]:
    """``events``, with ``IDLE`` yielded after each ``seconds`` of silence."""
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[Event] | None = None
    try:
        while True:
            # One awaitable per event, kept across heartbeats: cancelling a timed-out
            # ``__anext__`` would close the underlying generator.
            if pending is None:
                pending = loop.create_task(anext(events))  # type: ignore[arg-type]
            done, _ = await asyncio.wait((pending,), timeout=seconds)
            if not done:
                yield IDLE
                continue
            finished, pending = pending, None
            try:
                event = finished.result()
            except StopAsyncIteration:
                return
            yield event
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        await events.aclose()  # type: ignore[attr-defined]
