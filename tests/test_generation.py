"""A live reply's followers: heartbeats only while the reply is quiet."""

from __future__ import annotations

import asyncio

from chat.events import IDLE, Chunk, Done
from chat.generation import Generation


async def test_heartbeat_comes_only_after_a_quiet_spell():
    gen = Generation(message_id=1, conversation_id="c", user_id=1, model="m")
    loop = asyncio.get_running_loop()
    seen: list[tuple[float, object]] = []

    async def follow() -> None:
        async for event in gen.follow(heartbeat=0.1):
            seen.append((loop.time(), event))

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0)
    for i in range(10):  # an event every 30 ms: never 100 ms of silence
        gen.append(f"t{i} ")
        last_chunk = loop.time()
        await asyncio.sleep(0.03)
    await asyncio.sleep(0.32)  # silence: about three heartbeats
    gen.finish(Done(1, "complete", "end_turn", 1, 1))
    await follower

    events = [event for _, event in seen]
    first_idle = events.index(IDLE)
    assert all(isinstance(e, Chunk) for e in events[1:first_idle])
    assert len([e for e in events if isinstance(e, Chunk)]) == 10
    idles = [at for at, event in seen if event is IDLE]
    assert 2 <= len(idles) <= 4
    assert idles[0] - last_chunk >= 0.09
    assert isinstance(events[-1], Done)
