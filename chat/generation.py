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
        self.subscribers: set[asyncio.Queue[Event]] = set()
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
        queue: asyncio.Queue[Event] = asyncio.Queue()
        if final is None:
            self.subscribers.add(queue)
        try:
            yield self.start_event
            if backlog:
                yield Chunk(self.message_id, backlog, at)
            if final is not None:
                yield final
                return
            while True:
                try:
                    # A timer, not a task per event: this is the per-token hot path.
                    async with asyncio.timeout(heartbeat):
                        event = await queue.get()
                except TimeoutError:
                    yield IDLE
                    continue
                if isinstance(event, Chunk):
                    admitted = tracker.admit(event)
                    if admitted is not None:
                        yield admitted
                    continue
                yield event
                if is_final(event):
                    return
        finally:
            self.subscribers.discard(queue)
