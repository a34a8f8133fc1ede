"""The generation engine: start, follow, cancel and watch replies.

A reply is a *generation* bound to one assistant message and run in a background task
owned by the engine, not by the connection that asked for it. Transports (SSE views,
the WebSocket consumer) are thin adapters over ``Engine``. There is one engine per event
loop; ``get_engine()`` returns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import uuid
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from chat import bridge, lifecycle, services
from chat.conf import chat_settings
from chat.db import read_db, run_db
from chat.errors import APIError, ChatError, Interrupted, NotFound, ProviderError
from chat.events import (
    Event,
    Idle,
    MessageAdded,
)
from chat.following import final_event, follow_remote, follow_stored, with_heartbeat
from chat.generation import Generation
from chat.models import Message
from chat.presenters import message_dict
from chat.providers import get_provider
from chat.providers.base import ChatRequest, TextDelta, Usage

logger = logging.getLogger("chat.engine")
Status = Message.Status

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

WatchEvent = Event | MessageAdded


class Engine:
    """Owns the running generations of one process (one event loop)."""

    def __init__(self) -> None:
        self.generations: dict[int, Generation] = {}
        self.watchers: dict[str, set[asyncio.Queue[WatchEvent]]] = {}
        self.worker = WORKER_ID
        self._flusher: asyncio.Task[None] | None = None
        self._bridge_checked = False
        self.publisher: bridge.Publisher | None = None
        self.control: bridge.ControlChannel | None = None

    def _start_bridge(self) -> None:
        """Start the cross-process bridge on first use, when the channel layer is shared."""
        if not self._bridge_checked:
            self._bridge_checked = True
            layer = bridge.shared_layer()
            if layer is not None:
                self.publisher = bridge.Publisher(layer, self.worker)
                self.control = bridge.ControlChannel(layer, self._remote_cancel)

    async def _remote_cancel(self, message_id: int) -> None:
        gen = self.generations.get(message_id)
        if gen is not None:
            await self.cancel(message_id=message_id, user_id=gen.user_id)

    # -- starting -------------------------------------------------------------------

    async def start(self, *, user_id: int, conversation_id: Any, content: Any) -> services.Turn:
        """Store the user's message, create the streaming reply and start generating it.

        Raises ``InvalidRequest``, ``NotFound``, ``Conflict`` or ``TooManyGenerations``
        (storing nothing) when the reply cannot start.
        """
        turn = await run_db(
            services.start_turn,
            user_id=user_id,
            conversation_id=conversation_id,
            content=content,
            worker=self.worker,
        )
        assistant = turn.assistant_message
        gen = Generation(
            message_id=assistant.pk,
            conversation_id=str(turn.conversation.pk),
            user_id=user_id,
            model=assistant.model,
        )
        # The first flush waits two intervals: with the two INSERTs and the final UPDATE, a
        # reply then costs at most 2 + duration / FLUSH_INTERVAL writes.
        gen.written_at += chat_settings.FLUSH_INTERVAL
        self._start_bridge()
        gen.listeners.append(self._forward_to_watchers(gen.conversation_id))
        self.generations[gen.message_id] = gen
        self._notify(
            gen.conversation_id, MessageAdded(gen.conversation_id, message_dict(turn.user_message))
        )
        self._notify(gen.conversation_id, gen.start_event)
        # A fresh context: the task must not inherit the request's context (and its
        # thread-sensitive executor), since it outlives the request.
        gen.task = asyncio.get_running_loop().create_task(
            self._run(gen, turn.request), context=contextvars.Context()
        )
        return turn

    async def _run(self, gen: Generation, request: ChatRequest) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        first: float | None = None
        usage = Usage()
        stop_reason: str | None = None
        status: str = Status.COMPLETE
        error: ChatError | None = None
        self._ensure_flusher()
        try:
            if self.control is not None:
                await self.control.claim(gen.message_id)
            async for event in get_provider().stream(request, usage=usage):
                if isinstance(event, TextDelta):
                    if event.text:
                        first = first if first is not None else loop.time()
                        gen.append(event.text)
                else:
                    stop_reason = event.stop_reason
        except asyncio.CancelledError:
            status = Status.CANCELLED if gen.cancel_requested else Status.INTERRUPTED
            error = (
                None if gen.cancel_requested else Interrupted("The server stopped while replying.")
            )
        except ProviderError as exc:
            status, error = Status.ERROR, exc
        except Exception:
            logger.exception("generation %s crashed", gen.message_id)
            status, error = Status.ERROR, APIError("The reply failed because of a server error.")
        finally:
            outcome = self._outcome(gen, request, usage, status, stop_reason, error, started, first)
            await self._finish(gen, outcome)

    def _outcome(
        self,
        gen: Generation,
        request: ChatRequest,
        usage: Usage,
        status: str,
        stop_reason: str | None,
        error: ChatError | None,
        started: float,
        first: float | None,
    ) -> services.Outcome:
        text = gen.text
        estimated = usage.output_tokens is None
        prompt_chars = len(request.system) + sum(len(t.content) for t in request.messages)
        now = asyncio.get_running_loop().time()
        return services.Outcome(
            status=status,
            content=text,
            stop_reason=stop_reason or "",
            error_type=error.type if error else "",
            error_message=error.message if error else "",
            input_tokens=usage.input_tokens
            if usage.input_tokens is not None
            else services.estimate_tokens("x" * prompt_chars),
            output_tokens=usage.output_tokens
            if usage.output_tokens is not None
            else services.estimate_tokens(text),
            output_tokens_estimated=estimated,
            time_to_first_token_ms=round((first - started) * 1000) if first is not None else None,
            duration_ms=round((now - started) * 1000),
        )

    async def _finish(self, gen: Generation, outcome: services.Outcome) -> None:
        """Store the final state, then publish the final event and free the conversation."""
        try:
            await run_db(services.finish, message_id=gen.message_id, outcome=outcome)
        except Exception:
            logger.exception("could not store the end of reply %s", gen.message_id)
        finally:
            self.generations.pop(gen.message_id, None)
            if not self.generations and self._flusher is not None:
                self._flusher.cancel()  # nothing left to flush: no idle task lingers
                self._flusher = None
            gen.finish(final_event(gen.message_id, outcome))
            if self.control is not None:
                await self.control.release(gen.message_id)
            logger.info(
                "generation finished",
                extra={
                    "conversation_id": gen.conversation_id,
                    "message_id": gen.message_id,
                    "model": gen.model,
                    "status": outcome.status,
                    "input_tokens": outcome.input_tokens,
                    "output_tokens": outcome.output_tokens,
                    "ttft_ms": outcome.time_to_first_token_ms,
                    "duration_ms": outcome.duration_ms,
                },
            )

    def _ensure_flusher(self) -> None:
        """Run the flusher while any reply streams (one task for all replies)."""
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_loop(), context=contextvars.Context()
            )

    async def _flush_loop(self) -> None:
        """Write growing replies at most every flush interval, and renew their leases.

        All due replies are written in one transaction on the engine's database thread, so
        a tick costs one commit however many replies stream, and starts queue behind at
        most one flush.
        """
        loop = asyncio.get_running_loop()
        while self.generations:
            await asyncio.sleep(chat_settings.FLUSH_INTERVAL / 2)
            contents, renew = self._due_writes(loop.time())
            if contents or renew:
                try:
                    await run_db(services.flush, contents=contents, renew=renew)
                except Exception:
                    logger.exception("could not flush streaming replies")

    def _due_writes(self, now: float) -> tuple[dict[int, str], list[int]]:
        """The replies to write now (text changed) and those whose lease needs renewing."""
        contents: dict[int, str] = {}
        renew: list[int] = []
        lease_every = chat_settings.LEASE_SECONDS / 3
        for gen in self.generations.values():
            if gen.final is not None or now - gen.written_at < chat_settings.FLUSH_INTERVAL:
                continue
            if gen.length != gen.written_length:
                contents[gen.message_id] = gen.text
            elif now - gen.written_at >= lease_every:
                renew.append(gen.message_id)
            else:
                continue
            gen.written_at, gen.written_length = now, gen.length
        return contents, renew

    # -- following ------------------------------------------------------------------

    async def follow(
        self, *, message_id: int, user_id: int, offset: int = 0, heartbeat: float | None = None
    ) -> AsyncIterator[Event | Idle]:
        """Every event of a reply from ``offset``: live if it runs here, else from storage.

        With ``heartbeat``, ``IDLE`` is yielded whenever that many seconds pass without an
        event. Raises ``NotFound`` (before yielding) for an unknown message or another user's.
        """
        gen = self.generations.get(message_id)
        if gen is not None and gen.user_id == user_id:
            return gen.follow(offset, heartbeat)
        message = await read_db(services.get_message, message_id=message_id, user_id=user_id)
        if message.role != Message.Role.ASSISTANT:
            raise NotFound("Message not found.")
        gen = self.generations.get(message_id)  # it may have started meanwhile
        if gen is not None:
            return gen.follow(offset, heartbeat)
        layer = bridge.shared_layer()
        if layer is not None and not message.is_final:
            events = follow_remote(layer, message, offset)
        else:
            events = follow_stored(message, offset)
        return with_heartbeat(events, heartbeat) if heartbeat else events

    # -- cancelling -----------------------------------------------------------------

    async def cancel(self, *, message_id: int, user_id: int) -> str:
        """Stop a running reply (keeping its text); a no-op on one that has ended.

        Returns the message's status as known now. Raises ``NotFound``.
        """
        gen = self.generations.get(message_id)
        if gen is None or gen.user_id != user_id:
            message = await read_db(services.get_message, message_id=message_id, user_id=user_id)
            gen = self.generations.get(message_id)
            if gen is None:
                layer = bridge.shared_layer()
                if layer is not None and not message.is_final:
                    await bridge.send_cancel(layer, message_id)
                return message.status
        if not gen.cancel_requested and gen.task is not None:
            gen.cancel_requested = True
            gen.task.cancel()
        return Status.STREAMING

    async def cancel_conversation(self, *, conversation_id: str, user_id: int) -> int | None:
        """Cancel the reply running in a conversation, if any; returns its message id."""
        for gen in list(self.generations.values()):
            if gen.conversation_id == str(conversation_id) and gen.user_id == user_id:
                await self.cancel(message_id=gen.message_id, user_id=user_id)
                return gen.message_id
        return None

    def running_in(self, conversation_id: str) -> Generation | None:
        """The generation running here in a conversation, if any."""
        for gen in self.generations.values():
            if gen.conversation_id == str(conversation_id):
                return gen
        return None

    # -- watching a conversation ----------------------------------------------------

    @contextmanager
    def watch(self, conversation_id: str) -> Iterator[asyncio.Queue[WatchEvent]]:
        """A queue receiving every event of a conversation while the block runs."""
        queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        watchers = self.watchers.setdefault(str(conversation_id), set())
        watchers.add(queue)
        try:
            yield queue
        finally:
            watchers.discard(queue)
            if not watchers:
                self.watchers.pop(str(conversation_id), None)

    def _notify(self, conversation_id: str, event: WatchEvent) -> None:
        for queue in self.watchers.get(conversation_id, ()):
            queue.put_nowait(event)
        if self.publisher is not None:
            self.publisher.publish(conversation_id, event)

    def _forward_to_watchers(self, conversation_id: str) -> Any:
        return lambda event: self._notify(conversation_id, event)

    # -- shutting down --------------------------------------------------------------

    async def shutdown(self, *, grace: float | None = None) -> None:
        """Let running replies finish for ``grace`` seconds, then end the rest as interrupted."""
        grace = chat_settings.SHUTDOWN_GRACE_SECONDS if grace is None else grace
        tasks = [g.task for g in self.generations.values() if g.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        await self.close_bridge()

    async def close_bridge(self) -> None:
        """Stop the bridge's background tasks (after sending what is queued)."""
        if self.publisher is not None and self.publisher.pending:
            await asyncio.sleep(chat_settings.BRIDGE_BATCH_SECONDS * 2)
        for part in (self.publisher, self.control):
            if part is not None:
                part.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await part.task
        self.publisher = self.control = None


_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Engine] = weakref.WeakKeyDictionary()


def get_engine() -> Engine:
    """The engine of the running event loop."""
    loop = asyncio.get_running_loop()
    engine = _engines.get(loop)
    if engine is None:
        engine = _engines[loop] = Engine()
        lifecycle.hook_twisted_shutdown()
    return engine


def all_engines() -> list[Engine]:
    """Every engine of this process (one per event loop)."""
    return list(_engines.values())
