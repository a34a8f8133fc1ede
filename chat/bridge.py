"""Carry reply events between server processes through the channel layer.

Inside one process, followers get every chunk straight from the generation (in memory).
With a shared channel layer (channels-redis, ``REDIS_URL`` set), the bridge also:

- publishes each generation's events to its conversation's group, coalescing chunks so
  the layer sees at most one send per ``BRIDGE_BATCH_SECONDS`` per reply, not one per token;
- lets a process follow a reply generated elsewhere (``subscribe``);
- relays a cancel to the process running the reply (group ``chat.gen.<id>``).

With the in-memory layer (one process) it is off and costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer

from chat.conf import chat_settings
from chat.events import Chunk, Event, MessageAdded, is_final, to_dict

logger = logging.getLogger("chat.bridge")

WatchEvent = Event | MessageAdded


def conversation_group(conversation_id: Any) -> str:
    """The channel-layer group of a conversation (WebSocket consumers join it too)."""
    return f"chat.conv.{str(conversation_id).replace('-', '')}"


def generation_group(message_id: int) -> str:
    """The group through which the process running a reply receives control messages."""
    return f"chat.gen.{message_id}"


def shared_layer() -> BaseChannelLayer | None:
    """The channel layer if it spans processes, else None."""
    layer = get_channel_layer()
    if layer is None or isinstance(layer, InMemoryChannelLayer):
        return None
    return layer


class Publisher:
    """Sends one process's events to conversation groups, in order, coalescing chunks."""

    def __init__(self, layer: BaseChannelLayer, origin: str) -> None:
        self.layer = layer
        self.origin = origin
        self.pending: list[tuple[str, WatchEvent]] = []
        self.wakeup = asyncio.Event()
        self.task = background(self._run())

    def publish(self, conversation_id: str, event: WatchEvent) -> None:
        """Queue an event for the conversation's group (never blocks the caller)."""
        self.pending.append((conversation_id, event))
        self.wakeup.set()

    async def _run(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            batch, self.pending = coalesce(self.pending), []
            for conversation_id, event in batch:
                await self._send(conversation_id, event)
                raise_if_cancelling()
            await asyncio.sleep(chat_settings.BRIDGE_BATCH_SECONDS)

    async def _send(self, conversation_id: str, event: WatchEvent) -> None:
        message = {"type": "chat.event", "origin": self.origin, "event": to_dict(event)}
        try:
            await self.layer.group_send(conversation_group(conversation_id), message)
        except Exception:  # the layer being down must not break generation
            logger.exception("could not publish an event to the channel layer")


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that a channel-layer call swallowed.

    redis-py can absorb the ``CancelledError`` sent while it awaits the server; a loop
    that carried on would then never end, and a closing event loop would wait for it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def background(coro: Any) -> asyncio.Task[None]:
    """A long-lived task detached from the current request's context."""
    return asyncio.get_running_loop().create_task(coro, context=contextvars.Context())


def coalesce(items: list[tuple[str, WatchEvent]]) -> list[tuple[str, WatchEvent]]:
    """Merge each reply's consecutive chunks into one, keeping each conversation's order.

    Replies of different conversations interleave in the queue; a chunk merges into the
    last chunk of its reply unless another event of its conversation came in between.
    """
    out: list[tuple[str, WatchEvent]] = []
    open_chunk: dict[str, int] = {}  # conversation -> index in out of its mergeable chunk
    for conversation_id, event in items:
        index = open_chunk.get(conversation_id)
        if isinstance(event, Chunk):
            last = out[index][1] if index is not None else None
            if isinstance(last, Chunk) and last.message_id == event.message_id:
                merged = Chunk(event.message_id, last.text + event.text, event.offset)
                out[index] = (conversation_id, merged)  # type: ignore[index]
                continue
            open_chunk[conversation_id] = len(out)
        else:
            open_chunk.pop(conversation_id, None)
        out.append((conversation_id, event))
    return out


class ControlChannel:
    """This process's channel for control messages (cancels) about its own replies."""

    def __init__(self, layer: BaseChannelLayer, on_cancel: Callable[[int], Any]) -> None:
        self.layer = layer
        self.on_cancel = on_cancel
        self.name: str | None = None
        self.ready = asyncio.Event()
        self.task = background(self._run())

    async def _run(self) -> None:
        self.name = await self.layer.new_channel(prefix="chat.worker")
        self.ready.set()
        while True:
            try:
                message = await self.layer.receive(self.name)
                raise_if_cancelling()
                if message.get("type") == "chat.cancel":
                    await self.on_cancel(int(message["message_id"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("control channel failed; retrying")
                await asyncio.sleep(1)

    async def claim(self, message_id: int) -> None:
        """Receive control messages for a reply this process runs."""
        await self.ready.wait()
        assert self.name is not None
        await self.layer.group_add(generation_group(message_id), self.name)

    async def release(self, message_id: int) -> None:
        """Stop receiving control messages for a reply that ended."""
        if self.name is not None:
            await self.layer.group_discard(generation_group(message_id), self.name)


async def send_cancel(layer: BaseChannelLayer, message_id: int) -> None:
    """Ask whichever process runs a reply to cancel it."""
    await layer.group_send(
        generation_group(message_id), {"type": "chat.cancel", "message_id": message_id}
    )


@contextlib.asynccontextmanager
async def subscribe(
    layer: BaseChannelLayer, conversation_id: str
) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """Receive the events other processes publish for a conversation."""
    channel = await layer.new_channel(prefix="chat.follow")
    group = conversation_group(conversation_id)
    await layer.group_add(group, channel)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def pump() -> None:
        while True:
            message = await layer.receive(channel)
            raise_if_cancelling()
            if message.get("type") == "chat.event":
                queue.put_nowait(message["event"])

    task = asyncio.get_running_loop().create_task(pump())
    try:
        yield queue
    finally:
        task.cancel()
        with contextlib.suppress(Exception):
            await layer.group_discard(group, channel)


__all__ = ["ControlChannel", "Publisher", "conversation_group", "is_final", "send_cancel"]
