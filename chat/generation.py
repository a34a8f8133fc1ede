"""One reply in flight: its text so far, its followers, and its final event.

Everything here runs on the event loop with no awaits between reading state and
subscribing, so a follower joining while chunks flow gets every byte exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from chat.events import IDLE, Chunk, Event, FinalEvent, Idle, OffsetTracker, Start, is_final


class Generation:
    """The live state of one assistant message while it streams."""

    def __init__(self, *, message_id: int, conversation_id: str, user_id: int, model: str) -> None:
        self.message_id = message_id
        self.conversation_id = conversation_id
        self.user_id = user_id
        self.model = model
        self.parts: list[str] = []
        self.length = 0
        self.final: FinalEvent | None = None
        self.task: asyncio.Task[None] | None = None
        self.cancel_requested = False
        # What the database holds of this reply, and when it was last written (loop time).
        self.written_length = 0
        self.written_at = asyncio.get_running_loop().time()
        self.subscribers: set[asyncio.Queue[Event | Idle]] = set()
        # Extra listeners (conversation watchers, the cross-process bridge).
        self.listeners: list[Callable[[Event], None]] = []

    @property
    def text(self) -> str:
        """The reply text so far."""
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""

    @property
    def start_event(self) -> Start:
        """The ``start`` event every follower receives first."""
        return Start(self.message_id, self.conversation_id, self.model)

    def append(self, text: str) -> None:
        """Apply a text delta and send it to every follower."""
        self.parts.append(text)
        self.length += len(text)
        self._publish(Chunk(self.message_id, text, self.length))

    def finish(self, event: FinalEvent) -> None:
        """Publish the final event; later followers get it straight away."""
        self.final = event
        self._publish(event)
        self.subscribers.clear()

    def _publish(self, event: Event) -> None:
        for queue in self.subscribers:
            queue.put_nowait(event)
        for listener in self.listeners:
            listener(event)

    async def follow(
        self, offset: int = 0, heartbeat: float | None = None
    ) -> AsyncIterator[Event | Idle]:
        """Every event from ``offset`` on: start, the text so far, then live chunks.

        With ``heartbeat``, ``IDLE`` is yielded after that many seconds without an event.
        """
        # Snapshot and subscribe with no await in between: nothing can slip through.
        at = self.length
        backlog = self.text[offset:] if offset < at else ""
        tracker = OffsetTracker(max(offset, at))
        final = self.final
        queue: asyncio.Queue[Event | Idle] = asyncio.Queue()
        if final is None:
            self.subscribers.add(queue)
        beat = Heartbeat(queue, heartbeat) if heartbeat and final is None else None
        try:
            yield self.start_event
            if backlog:
                yield Chunk(self.message_id, backlog, at)
            if final is not None:
                yield final
                return
            while True:
                event = await queue.get()
                if beat is not None:
                    beat.saw_event()
                if isinstance(event, Chunk):
                    admitted = tracker.admit(event)
                    if admitted is not None:
                        yield admitted
                    continue
                yield event
                if not isinstance(event, Idle) and is_final(event):
                    return
        finally:
            self.subscribers.discard(queue)
            if beat is not None:
                beat.stop()


class Heartbeat:
    """Puts ``IDLE`` in a follower's queue after ``seconds`` without an event.

    One timer per follower that re-arms itself, not one per event: an event only notes
    the time, since this is the per-token hot path.
    """

    def __init__(self, queue: asyncio.Queue[Event | Idle], seconds: float) -> None:
        self.queue, self.seconds = queue, seconds
        self.loop = asyncio.get_running_loop()
        self.last = self.loop.time()
        self.timer = self.loop.call_later(seconds, self._due)

    def saw_event(self) -> None:
        """An event (or an ``IDLE``) reached the follower: the silence starts again."""
        self.last = self.loop.time()

    def _due(self) -> None:
        quiet = self.loop.time() - self.last
        if quiet >= self.seconds:
            self.queue.put_nowait(IDLE)
            self.last += quiet  # the IDLE restarts the count, as an event would
            quiet = 0.0
        self.timer = self.loop.call_later(self.seconds - quiet, self._due)

    def stop(self) -> None:
        """The follower has gone."""
        self.timer.cancel()
