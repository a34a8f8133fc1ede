"""The generation engine: start, follow, resume, cancel, errors, limits, persistence."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from chat import errors
from chat.db import run_db
from chat.engine import get_engine
from chat.events import Chunk, Done, Error, Event, Start
from chat.models import Conversation, Message
from chat.providers.locmem import ScriptedProvider

pytestmark = pytest.mark.django_db(transaction=True)


async def collect(events) -> list[Event]:
    return [event async for event in events]


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, Chunk))


async def get_message(pk: int) -> Message:
    return await Message.objects.aget(pk=pk)


async def test_start_follow_done_stores_complete_message(scripted, user, conversation):
    scripted(chunks=["Hel", "lo ", "wörld 👋"], delay=0.01)
    engine = get_engine()
    turn = await engine.start(user_id=user.pk, conversation_id=conversation.pk, content="Hi there")
    assert turn.assistant_message.status == "streaming"
    events = await collect(
        await engine.follow(message_id=turn.assistant_message.pk, user_id=user.pk)
    )
    assert isinstance(events[0], Start)
    assert events[0].conversation_id == str(conversation.pk)
    assert text_of(events) == "Hello wörld 👋"
    assert [e.offset for e in events if isinstance(e, Chunk)] == [3, 6, 13]
    assert isinstance(events[-1], Done)
    assert events[-1].status == "complete"
    assert events[-1].stop_reason == "end_turn"
    stored = await get_message(turn.assistant_message.pk)
    assert stored.status == "complete"
    assert stored.content == "Hello wörld 👋"
    assert stored.output_tokens == 3
    assert stored.input_tokens == len("Hi there")
    assert stored.output_tokens_estimated is False
    assert stored.time_to_first_token_ms is not None
    assert stored.duration_ms is not None
    user_msg = await get_message(turn.user_message.pk)
    assert user_msg.content == "Hi there"
    conv = await Conversation.objects.aget(pk=conversation.pk)
    assert conv.title == "Hi there"


async def test_followers_mid_stream_and_after_end_get_exact_text(scripted, user, conversation):
    chunks = [f"w{i} " for i in range(40)]
    scripted(chunks=chunks, delay=0.005)
    engine = get_engine()
    turn = await engine.start(user_id=user.pk, conversation_id=conversation.pk, content="go")
    mid = turn.assistant_message.pk
    first = asyncio.create_task(collect(await engine.follow(message_id=mid, user_id=user.pk)))
    await asyncio.sleep(0.06)  # join while chunks are flowing
    gen = engine.generations[mid]
    assert 0 < gen.length < len("".join(chunks))
    late = await collect(await engine.follow(message_id=mid, user_id=user.pk))
    early = await first
    assert text_of(early) == text_of(late) == "".join(chunks)
    after = await collect(await engine.follow(message_id=mid, user_id=user.pk))
    assert text_of(after) == "".join(chunks)
    assert isinstance(after[-1], Done)


async def test_resume_from_offset(scripted, user, conversation):
    scripted(chunks=["abc", "déf", "ghi"], delay=0.01)
    engine = get_engine()
    turn = await engine.start(user_id=user.pk, conversation_id=conversation.pk, content="go")
    mid = turn.assistant_message.pk
    live = await collect(await engine.follow(message_id=mid, user_id=user.pk, offset=4))
    assert text_of(live) == "éfghi"
    stored = await collect(await engine.follow(message_id=mid, user_id=user.pk, offset=4))
    assert text_of(stored) == "éfghi"
    assert [e.offset for e in stored if isinstance(e, Chunk)] == [9]


async def test_follow_other_users_message_is_not_found(scripted, user, conversation):
    other = await get_user_model().objects.acreate_user("bob", password="pw")
    engine = get_engine()
    turn = await engine.start(user_id=user.pk, conversation_id=conversation.pk, content="go")
    with pytest.raises(errors.NotFound):
        await engine.follow(message_id=turn.assistant_message.pk, user_id=other.pk)
    with pytest.raises(errors.NotFound):
        await engine.cancel(message_id=turn.assistant_message.pk, user_id=other.pk)
    await collect(await engine.follow(message_id=turn.assistant_message.pk, user_id=user.pk))


async def test_mid_stream_error_keeps_partial_text(scripted, user, conversation):
    scripted(chunks=["one ", "two ", "three"], fail_after=2, error="overloaded_error")
    engine = get_engine()
    turn = await engine.start(user_id=user.pk, conversation_id=conversation.pk, content="go")
    events = await collect(
        await engine.follow(message_id=turn.assistant_message.pk, user_id=user.pk)
    )
    assert text_of(events) == "one two "
    assert isinstance(events[-1], Error)
    assert events[-1].type == "overloaded_error"
    stored = await get_message(turn.assistant_message.pk)
    assert (stored.status, stored.content, stored.error_type) == (
        "error",
        "one two ",
        "overloaded_error",
    )
    assert stored.output_tokens_estimated is True
    assert stored.output_tokens and stored.output_tokens > 0


async def test_cancel_keeps_partial_text(scripted, user, conversation):
    scripted(chunks=[f"{i} " for i in range(200)], delay=0.01)
    engine = get_engine()
    turn = await engine.start(user_id=user.pk, conversation_id=conversation.pk, content="go")
    mid = turn.assistant_message.pk
    follower = asyncio.create_task(collect(await engine.follow(message_id=mid, user_id=user.pk)))
    await asyncio.sleep(0.1)
    assert await engine.cancel(message_id=mid, user_id=user.pk) == "streaming"
    events = await follower
    assert isinstance(events[-1], Done)
    assert events[-1].status == "cancelled"
    stored = await get_message(mid)
    assert stored.status == "cancelled"
    assert stored.content == text_of(events)
    assert 0 < len(stored.content) < len("".join(f"{i} " for i in range(200)))
    # Cancelling an ended reply is a no-op that reports its status.
    assert await engine.cancel(message_id=mid, user_id=user.pk) == "cancelled"


async def test_follower_leaving_does_not_cancel(scripted, user, conversation):
    scripted(chunks=[f"{i} " for i in range(20)], delay=0.01)
    engine = get_engine()
    turn = await engine.start(user_id=user.pk, conversation_id=conversation.pk, content="go")
    mid = turn.assistant_message.pk
    stream = await engine.follow(message_id=mid, user_id=user.pk)
    async for event in stream:
        if isinstance(event, Chunk):
            break
    await stream.aclose()
    gen = engine.generations[mid]
    assert not gen.subscribers
    await gen.task
    stored = await get_message(mid)
    assert stored.status == "complete"
    assert stored.content == "".join(f"{i} " for i in range(20))


async def test_conflict_then_free_once_final_event_published(scripted, user, conversation):
    scripted(chunks=["a", "b"], delay=0.02)
    engine = get_engine()
    turn = await engine.start(user_id=user.pk, conversation_id=conversation.pk, content="one")
    with pytest.raises(errors.Conflict):
        await engine.start(user_id=user.pk, conversation_id=conversation.pk, content="two")
    async for event in await engine.follow(message_id=turn.assistant_message.pk, user_id=user.pk):
        if isinstance(event, Done):
            # The very moment the final event is seen, the next message is accepted.
            await engine.start(user_id=user.pk, conversation_id=conversation.pk, content="two")
    assert await Message.objects.filter(conversation=conversation).acount() == 4


async def test_per_user_cap(scripted, settings, user):
    scripted(chunks=["x"] * 50, delay=0.01)
    settings.CHAT = {**settings.CHAT, "MAX_CONCURRENT_PER_USER": 2}
    engine = get_engine()
    convs = [await Conversation.objects.acreate(owner=user, model="m") for _ in range(3)]
    for conv in convs[:2]:
        await engine.start(user_id=user.pk, conversation_id=conv.pk, content="go")
    with pytest.raises(errors.TooManyGenerations):
        await engine.start(user_id=user.pk, conversation_id=convs[2].pk, content="go")
    assert await Message.objects.filter(conversation=convs[2]).acount() == 0
    for gen in list(engine.generations.values()):
        await engine.cancel(message_id=gen.message_id, user_id=user.pk)
        await gen.task


@pytest.mark.parametrize("content", ["", "   \n\t", None, 42, "x" * 32_001])
async def test_bad_input_refused_and_nothing_stored(scripted, user, conversation, content):
    with pytest.raises(errors.InvalidRequest):
        await get_engine().start(user_id=user.pk, conversation_id=conversation.pk, content=content)
    assert await Message.objects.acount() == 0


async def test_unknown_or_foreign_conversation_is_not_found(scripted, user, conversation):
    other = await get_user_model().objects.acreate_user("bob", password="pw")
    with pytest.raises(errors.NotFound):
        await get_engine().start(user_id=other.pk, conversation_id=conversation.pk, content="hi")
    assert await Message.objects.acount() == 0


async def test_history_window_and_alternation(scripted, settings, user, conversation):
    settings.CHAT = {**settings.CHAT, "HISTORY_WINDOW": 20}
    rows = []
    for i in range(15):
        rows.append(Message(conversation=conversation, role="user", content=f"u{i}"))
        # An errored reply with no text leaves two user turns in a row.
        if i % 5 != 4:
            rows.append(Message(conversation=conversation, role="assistant", content=f"a{i}"))
    await Message.objects.abulk_create(rows)
    turn = await get_engine().start(
        user_id=user.pk, conversation_id=conversation.pk, content="last"
    )
    await get_engine().generations[turn.assistant_message.pk].task
    sent = ScriptedProvider.requests[-1]
    roles = [t.role for t in sent.messages]
    assert roles[0] == "user" and roles[-1] == "user"
    assert all(a != b for a, b in itertools.pairwise(roles))
    assert all(t.content.strip() for t in sent.messages)
    assert sent.messages[-1].content.endswith("last")
    # 28 stored messages: the window holds the last 20, which begin at u4.
    assert sent.messages[0].content.startswith("u4\n\nu5")
    assert "a3" not in "".join(t.content for t in sent.messages)
    assert sent.messages[-1].content == "u14\n\nlast"
    assert sent.system == "You are a helpful assistant."


async def test_flush_interval_bounds_database_writes(scripted, settings, user, conversation):
    settings.CHAT = {**settings.CHAT, "FLUSH_INTERVAL": 0.1}
    scripted(chunks=[f"t{i} " for i in range(300)], delay=0.002)
    updates: list[str] = []  # one entry per row written

    def install() -> None:
        def wrapper(execute, sql, params, many, context):
            result = execute(sql, params, many, context)
            verb = sql.lstrip().split(" ", 1)[0].upper()
            if verb in ("INSERT", "UPDATE") and '"chat_message"' in sql:
                updates.extend([sql] * max(context["cursor"].rowcount, 0))
            return result

        connection.execute_wrappers.append(wrapper)

    await run_db(install)
    engine = get_engine()
    loop = asyncio.get_running_loop()
    started = loop.time()
    turn = await engine.start(user_id=user.pk, conversation_id=conversation.pk, content="go")
    await engine.generations[turn.assistant_message.pk].task
    duration = loop.time() - started
    await run_db(lambda: connection.execute_wrappers.clear())
    # Every row written to the messages table (the two INSERTs, the flushes, the final one):
    # at most 2 + duration / flush interval, never one per token.
    assert len(updates) <= 2 + duration / 0.1
    assert len(updates) < 300 / 5
    stored = await get_message(turn.assistant_message.pk)
    assert stored.content == "".join(f"t{i} " for i in range(300))


async def test_partial_text_is_flushed_while_streaming(scripted, settings, user, conversation):
    settings.CHAT = {**settings.CHAT, "FLUSH_INTERVAL": 0.05}
    scripted(chunks=[f"{i} " for i in range(100)], delay=0.01)
    engine = get_engine()
    turn = await engine.start(user_id=user.pk, conversation_id=conversation.pk, content="go")
    await asyncio.sleep(0.3)
    mid_way = await get_message(turn.assistant_message.pk)
    assert mid_way.status == "streaming"
    assert mid_way.content and engine.generations[turn.assistant_message.pk].text.startswith(
        mid_way.content
    )
    task = engine.generations[turn.assistant_message.pk].task
    await engine.cancel(message_id=turn.assistant_message.pk, user_id=user.pk)
    await task


def test_startup_marks_stale_streaming_messages_interrupted(user, conversation):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    stale = Message.objects.create(
        conversation=conversation,
        role="assistant",
        status="streaming",
        content="half a rep",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    alive = Message.objects.create(
        conversation=conversation,
        role="assistant",
        status="streaming",
        lease_expires_at=timezone.now() + timedelta(seconds=60),
    )
    call_command("mark_interrupted", stdout=None)
    stale.refresh_from_db()
    alive.refresh_from_db()
    assert (stale.status, stale.content, stale.error_type) == (
        "interrupted",
        "half a rep",
        "interrupted",
    )
    assert alive.status == "streaming"


async def test_stale_reply_does_not_block_the_conversation(scripted, user, conversation):
    from datetime import timedelta

    from django.utils import timezone

    dead = await Message.objects.acreate(
        conversation=conversation,
        role="assistant",
        status="streaming",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    events = await collect(await get_engine().follow(message_id=dead.pk, user_id=user.pk))
    assert isinstance(events[-1], Error) and events[-1].type == "interrupted"
    turn = await get_engine().start(user_id=user.pk, conversation_id=conversation.pk, content="hi")
    await get_engine().generations[turn.assistant_message.pk].task
