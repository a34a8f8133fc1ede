"""Per-user limits: tokens per day (quota_exceeded) and messages per minute
(rate_limit_error), both refusing before anything is stored."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import AsyncClient
from django.utils import timezone

from chat import limits, services
from chat.db import close_db_connection
from chat.engine import get_engine
from chat.errors import Conflict, QuotaExceeded, RateLimited
from chat.models import Conversation, Message

ROOT = Path(__file__).resolve().parent.parent
Status = Message.Status


@pytest.fixture
def chat_config(settings: Any) -> Any:
    """Set chat settings for one test: ``chat_config(DAILY_TOKEN_QUOTA=100)``."""

    def configure(**values: Any) -> None:
        settings.CHAT = {**settings.CHAT, "PROVIDER": "locmem", **values}

    configure()
    return configure


@pytest.fixture
def user() -> Any:
    return get_user_model().objects.create_user(f"u{uuid.uuid4().hex[:8]}", password="pw")


def new_conversation(user: Any) -> Conversation:
    return Conversation.objects.create(owner=user, model="claude-sonnet-4-5")


def spent(user: Any, *, status: str = Status.COMPLETE, **fields: Any) -> Message:
    """An ended reply of the user's, with the given token counts."""
    conversation = new_conversation(user)
    return Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, status=status, **fields
    )


def start(user: Any, conversation: Conversation, content: str = "Hello") -> services.Turn:
    return services.start_turn(
        user_id=user.pk, conversation_id=conversation.pk, content=content, worker="test"
    )


def message_count() -> int:
    return Message.objects.count()


# -- tokens per day -----------------------------------------------------------------------


@pytest.mark.django_db
def test_no_quota_by_default(chat_config: Any, user: Any) -> None:
    spent(user, input_tokens=10**9, output_tokens=10**9)
    assert start(user, new_conversation(user)).assistant_message.status == Status.STREAMING


@pytest.mark.django_db
def test_a_user_over_the_quota_is_refused_and_nothing_is_stored(
    chat_config: Any, user: Any
) -> None:
    chat_config(DAILY_TOKEN_QUOTA=1000)
    spent(user, input_tokens=600, output_tokens=400)
    conversation = new_conversation(user)
    before = message_count()
    with pytest.raises(QuotaExceeded) as refused:
        start(user, conversation)
    assert refused.value.type == "quota_exceeded"
    assert refused.value.status == 429
    assert "1000 tokens" in refused.value.message
    assert 0 < refused.value.retry_after <= 24 * 3600
    assert message_count() == before
    conversation.refresh_from_db()
    assert conversation.title == ""


@pytest.mark.django_db
def test_quota_counts_every_ended_reply_of_today_only(chat_config: Any, user: Any) -> None:
    chat_config(DAILY_TOKEN_QUOTA=1000)
    spent(user, status=Status.CANCELLED, input_tokens=300, output_tokens=100)
    spent(user, status=Status.ERROR, input_tokens=200, output_tokens=0)
    # A reply whose process died has no counts: its 800 characters count as 200 tokens.
    spent(user, status=Status.INTERRUPTED, content="x" * 800)
    old = spent(user, input_tokens=5000, output_tokens=5000)
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=1))
    other = get_user_model().objects.create_user("someone-else", password="pw")
    spent(other, input_tokens=5000, output_tokens=5000)
    assert limits.tokens_used_today(user_id=user.pk) == 800
    start(user, new_conversation(user))  # 800 < 1000: allowed


@pytest.mark.django_db
def test_running_replies_reserve_their_max_tokens(chat_config: Any, user: Any) -> None:
    chat_config(DAILY_TOKEN_QUOTA=800, MAX_TOKENS=400)
    start(user, new_conversation(user))  # reserves 400
    start(user, new_conversation(user))  # reserves 800 in all
    third = new_conversation(user)
    before = message_count()
    with pytest.raises(QuotaExceeded, match="running replies"):
        start(user, third)
    assert message_count() == before


@pytest.fixture
async def engine_db():
    yield
    # The engine's cross-process bridge (with REDIS_URL) runs background tasks on this
    # test's event loop: stop them before the loop closes.
    await get_engine().close_bridge()
    close_db_connection()


async def run_reply(user: Any, conversation: Conversation, *, cancel: bool = False) -> Message:
    """Start a reply through the engine, let it end (or cancel it), return the stored row."""
    engine = get_engine()
    turn = await engine.start(user_id=user.pk, conversation_id=conversation.pk, content="Hi")
    generation = engine.generations[turn.assistant_message.pk]
    if cancel:
        async for event in await engine.follow(message_id=generation.message_id, user_id=user.pk):
            if getattr(event, "text", ""):
                break  # one chunk has arrived
        await engine.cancel(message_id=generation.message_id, user_id=user.pk)
    assert generation.task is not None
    await generation.task
    return await Message.objects.aget(pk=turn.assistant_message.pk)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("options", "cancel", "status"),
    [
        ({"chunks": ["a" * 40, "b" * 40]}, False, Status.COMPLETE),
        ({"chunks": ["a" * 40] * 50, "delay": 0.02}, True, Status.CANCELLED),
        ({"chunks": ["a" * 40] * 3, "fail_after": 2, "error": "overloaded_error"}, False, "error"),
    ],
)
async def test_the_quota_settles_with_the_usage_every_reply_stored(
    chat_config: Any, engine_db: None, options: dict[str, Any], cancel: bool, status: str
) -> None:
    user = await get_user_model().objects.acreate_user("settle", password="pw")
    conversation = await Conversation.objects.acreate(owner=user, model="claude-sonnet-4-5")
    chat_config(PROVIDER_OPTIONS=options)
    reply = await run_reply(user, conversation, cancel=cancel)
    assert reply.status == status
    assert reply.input_tokens is not None
    assert reply.output_tokens is not None
    assert reply.output_tokens > 0
    used = reply.input_tokens + reply.output_tokens
    assert await sync_to_async(limits.tokens_used_today)(user_id=user.pk) == used
    # Exactly at the quota: the next reply is refused, and nothing is stored.
    chat_config(DAILY_TOKEN_QUOTA=used, PROVIDER_OPTIONS=options)
    count = await Message.objects.acount()
    with pytest.raises(QuotaExceeded):
        await get_engine().start(user_id=user.pk, conversation_id=conversation.pk, content="Hi")
    assert await Message.objects.acount() == count


# -- messages per minute ------------------------------------------------------------------


def test_retry_delay_finds_when_one_more_message_fits() -> None:
    # 3 this minute, limit 3: next minute, once a third of it has passed.
    assert limits.retry_delay(current=3, previous=0, elapsed=15, limit=3) == pytest.approx(65)
    # 1 this minute and 4 in the previous one, limit 3: once 3/4 of the previous slid out.
    assert limits.retry_delay(current=1, previous=4, elapsed=10, limit=3) == pytest.approx(35)


def test_messages_per_minute_slide_and_refusals_do_not_count(chat_config: Any) -> None:
    chat_config(MESSAGES_PER_MINUTE=3)
    t0 = 6_000_000.0  # the start of a minute window
    for second in (1, 2, 3):
        assert limits.take_message_slot(user_id=7, now=t0 + second) is not None
    with pytest.raises(RateLimited) as refused:
        limits.take_message_slot(user_id=7, now=t0 + 4)
    assert refused.value.type == "rate_limit_error"
    assert refused.value.status == 429
    assert refused.value.retry_after == 76  # 56 s to the next minute, then 20 s
    # Retrying does not dig the hole deeper: the refusals were not counted.
    for _ in range(5):
        with pytest.raises(RateLimited):
            limits.take_message_slot(user_id=7, now=t0 + 5)
    # 20 s into the next minute, a third of the previous minute has slid out: one fits.
    with pytest.raises(RateLimited):
        limits.take_message_slot(user_id=7, now=t0 + 60 + 19)
    assert limits.take_message_slot(user_id=7, now=t0 + 60 + 21) is not None
    assert limits.take_message_slot(user_id=8, now=t0 + 60 + 21) is not None  # per user


@pytest.mark.django_db
def test_rate_limited_start_stores_nothing_and_refused_starts_give_the_slot_back(
    chat_config: Any, user: Any
) -> None:
    chat_config(MESSAGES_PER_MINUTE=2)
    first = new_conversation(user)
    start(user, first)
    with pytest.raises(Conflict):  # a reply is running there: refused, not counted
        start(user, first)
    start(user, new_conversation(user))
    third = new_conversation(user)
    before = message_count()
    with pytest.raises(RateLimited):
        start(user, third)
    assert message_count() == before
    assert not third.messages.exists()


@pytest.mark.django_db(transaction=True)
async def test_http_refusals_are_429_with_retry_after(chat_config: Any, engine_db: None) -> None:
    chat_config(MESSAGES_PER_MINUTE=1, PROVIDER_OPTIONS={"chunks": ["ok"]})
    user = await get_user_model().objects.acreate_user("http", password="pw")
    client = AsyncClient()
    await client.aforce_login(user)
    conversations = [
        await Conversation.objects.acreate(owner=user, model="claude-sonnet-4-5") for _ in "ab"
    ]
    urls = [f"/api/conversations/{c.pk}/messages/" for c in conversations]
    accepted = await client.post(urls[0], {"content": "hi"}, "application/json")
    assert accepted.status_code == 201
    generation = get_engine().generations.get(accepted.json()["assistant_message"]["id"])
    if generation is not None and generation.task is not None:
        await generation.task
    count = await Message.objects.acount()
    refused = await client.post(urls[1], {"content": "hi"}, "application/json")
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(refused.headers["Retry-After"]) <= 120
    assert await Message.objects.acount() == count

    chat_config(MESSAGES_PER_MINUTE=None, DAILY_TOKEN_QUOTA=1)
    refused = await client.post(urls[1], {"content": "hi"}, "application/json")
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "quota_exceeded"
    assert int(refused.headers["Retry-After"]) > 0
    assert await Message.objects.acount() == count


@pytest.mark.needs_redis
def test_the_rate_limit_is_shared_across_processes(chat_config: Any) -> None:
    """Two messages counted by another process use up this process's limit of two."""
    user_id = 900_000 + os.getpid() % 10_000
    script = (
        "import django; django.setup(); from chat.limits import take_message_slot as t; "
        f"t(user_id={user_id}); t(user_id={user_id})"
    )
    env = {
        **os.environ,
        "CHAT_MESSAGES_PER_MINUTE": "2",
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
    }
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=60)
    chat_config(MESSAGES_PER_MINUTE=2)
    with pytest.raises(RateLimited):
        limits.take_message_slot(user_id=user_id)
