"""The engine's database operations, called directly (synchronously)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chat import services
from chat.models import Message

pytestmark = pytest.mark.django_db


def reply(conversation, **fields) -> Message:
    defaults = {"role": "assistant", "status": "streaming", "lease_expires_at": timezone.now()}
    return Message.objects.create(conversation=conversation, **(defaults | fields))


def test_flush_writes_streaming_replies_exactly_and_renews_their_leases(conversation):
    first, second = reply(conversation), reply(conversation)
    texts = {first.pk: "50 % of 'it'; \"quoted\" \\ wörld 👋", second.pk: "x" * 10_000}
    before = timezone.now()
    services.flush(contents=texts, renew=[])
    for message in (first, second):
        message.refresh_from_db()
        assert message.content == texts[message.pk]
        assert message.status == "streaming"
        assert message.lease_expires_at > before + timedelta(seconds=5)
        assert message.updated_at >= before


def test_flush_leaves_replies_that_have_ended_alone(conversation):
    ended = reply(conversation, status="cancelled", content="kept", lease_expires_at=None)
    services.flush(contents={ended.pk: "late text"}, renew=[ended.pk])
    ended.refresh_from_db()
    assert (ended.content, ended.status, ended.lease_expires_at) == ("kept", "cancelled", None)


def test_flush_renews_a_lease_without_touching_the_text(conversation):
    quiet = reply(conversation, content="so far")
    old_lease = quiet.lease_expires_at
    services.flush(contents={}, renew=[quiet.pk])
    quiet.refresh_from_db()
    assert quiet.content == "so far"
    assert quiet.lease_expires_at > old_lease


def start(user, conversation) -> services.Turn:
    return services.start_turn(
        user_id=user.pk, conversation_id=conversation.pk, content="hi", worker="w"
    )


def test_a_start_marks_a_dead_reply_of_its_conversation_interrupted(user, conversation):
    dead = reply(conversation, lease_expires_at=timezone.now() - timedelta(seconds=1))
    turn = start(user, conversation)
    dead.refresh_from_db()
    assert dead.status == "interrupted"
    assert turn.assistant_message.status == "streaming"


def test_only_live_replies_count_against_the_concurrent_limit(settings, user, conversation):
    from chat.errors import Conflict, TooManyGenerations
    from chat.models import Conversation

    settings.CHAT = {**settings.CHAT, "MAX_CONCURRENT_PER_USER": 2}
    others = [Conversation.objects.create(owner=user, model="m") for _ in range(3)]
    reply(others[0], lease_expires_at=timezone.now() + timedelta(seconds=30))
    reply(others[1], lease_expires_at=timezone.now() - timedelta(seconds=1))  # dead: no count
    start(user, conversation)  # the second live reply
    with pytest.raises(Conflict):
        start(user, conversation)
    with pytest.raises(TooManyGenerations):
        start(user, others[2])
    assert not others[2].messages.exists()
