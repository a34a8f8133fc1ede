"""Export (JSON / Markdown) and usage (tokens per day and per model)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from api_support import add_message, add_reply, days_ago, make_conversation
from django.utils import timezone
from rest_framework.test import APIClient

from chat.models import Conversation, Message
from chat.presenters import conversation_dict, message_dict

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clear_cache")]

USAGE = "/api/usage/"


def export_url(conversation: Conversation) -> str:
    return f"/api/conversations/{conversation.pk}/export/"


@pytest.fixture
def chat(alice: Any) -> Conversation:
    conversation = make_conversation(alice, "Paris trip", system_prompt="You plan trips.")
    add_message(conversation, "Where should I eat?")
    add_reply(conversation, "Try a **bistro** near the Seine.")
    return conversation


# -- export -------------------------------------------------------------------------------


def test_export_json_is_the_conversation_with_all_messages(api: APIClient, chat: Any) -> None:
    response = api.get(export_url(chat), {"format": "json"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"] == 'attachment; filename="paris-trip.json"'
    body = json.loads(response.content)
    assert body["conversation"] == conversation_dict(chat)
    assert body["messages"] == [message_dict(m) for m in chat.messages.order_by("id")]


def test_export_defaults_to_json(api: APIClient, chat: Any) -> None:
    response = api.get(export_url(chat))

    assert response.status_code == 200
    assert json.loads(response.content)["conversation"]["title"] == "Paris trip"


def test_export_markdown_is_a_readable_transcript(api: APIClient, chat: Any) -> None:
    add_reply(chat, "half an ans", status=Message.Status.CANCELLED)

    response = api.get(export_url(chat), {"format": "markdown"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert response["Content-Disposition"] == 'attachment; filename="paris-trip.md"'
    text = response.content.decode()
    assert text.startswith("# Paris trip\n")
    assert "- System prompt: You plan trips." in text
    assert text.index("## User") < text.index("Where should I eat?")
    assert text.index("## Assistant") < text.index("Try a **bistro** near the Seine.")
    assert "half an ans\n\n_[cancelled]_" in text


def test_export_unknown_format_is_400(api: APIClient, chat: Any) -> None:
    response = api.get(export_url(chat), {"format": "pdf"})

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"
    assert "format" in response.json()["error"]["fields"]


def test_export_of_another_users_conversation_is_404(api: APIClient, bob: Any) -> None:
    theirs = make_conversation(bob, "Bob's")
    add_message(theirs, "private words")

    for fmt in ("json", "markdown"):
        response = api.get(export_url(theirs), {"format": fmt})
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found"
        assert b"private words" not in response.content


def test_export_refuses_anonymous(anon: APIClient, chat: Any) -> None:
    response = anon.get(export_url(chat), {"format": "markdown"})

    assert response.status_code == 403
    assert response.json()["error"]["type"] == "not_authenticated"


def test_export_file_name_of_an_untitled_conversation(api: APIClient, alice: Any) -> None:
    untitled = make_conversation(alice, "")

    response = api.get(export_url(untitled), {"format": "markdown"})

    assert response["Content-Disposition"] == (
        f'attachment; filename="conversation-{untitled.pk}.md"'
    )
    assert response.content.decode().startswith("# Untitled conversation")


# -- usage --------------------------------------------------------------------------------


def _reply_on(conversation: Conversation, when: dt.datetime, **tokens: Any) -> Message:
    reply = add_reply(conversation, **tokens)
    Message.objects.filter(pk=reply.pk).update(created_at=when)
    return reply


def test_usage_per_day_and_per_model(api: APIClient, alice: Any) -> None:
    sonnet = make_conversation(alice, model="claude-sonnet-4-5")
    haiku = make_conversation(alice, model="claude-haiku-4-5")
    today, yesterday = days_ago(0), days_ago(1)
    _reply_on(sonnet, yesterday, input_tokens=100, output_tokens=10)
    _reply_on(sonnet, today, input_tokens=200, output_tokens=20)
    _reply_on(haiku, today, input_tokens=5, output_tokens=1)
    add_message(sonnet, "user messages carry no tokens")

    body = api.get(USAGE).json()

    assert body["days"] == 30
    assert body["by_day"] == [
        {"date": str(yesterday.date()), "replies": 1, "input_tokens": 100, "output_tokens": 10},
        {"date": str(today.date()), "replies": 2, "input_tokens": 205, "output_tokens": 21},
    ]
    assert body["by_model"] == [
        {"model": "claude-haiku-4-5", "replies": 1, "input_tokens": 5, "output_tokens": 1},
        {"model": "claude-sonnet-4-5", "replies": 2, "input_tokens": 300, "output_tokens": 30},
    ]
    assert body["total"] == {"replies": 3, "input_tokens": 305, "output_tokens": 31}


def test_usage_window_excludes_older_replies(api: APIClient, alice: Any) -> None:
    chat = make_conversation(alice)
    _reply_on(chat, days_ago(10), input_tokens=1, output_tokens=1)
    _reply_on(chat, days_ago(2), input_tokens=2, output_tokens=2)

    body = api.get(USAGE, {"days": 7}).json()

    assert body["total"] == {"replies": 1, "input_tokens": 2, "output_tokens": 2}


def test_usage_counts_replies_without_token_counts(api: APIClient, alice: Any) -> None:
    chat = make_conversation(alice)
    add_message(chat, "x", role=Message.Role.ASSISTANT, model=chat.model, status="error")

    body = api.get(USAGE).json()

    assert body["total"] == {"replies": 1, "input_tokens": 0, "output_tokens": 0}


def test_usage_is_only_the_users_own(api: APIClient, alice: Any, bob: Any) -> None:
    _reply_on(make_conversation(bob), timezone.now(), input_tokens=999, output_tokens=999)

    body = api.get(USAGE).json()

    assert body["by_day"] == []
    assert body["by_model"] == []
    assert body["total"] == {"replies": 0, "input_tokens": 0, "output_tokens": 0}


@pytest.mark.parametrize("days", ["0", "367", "-1", "week"])
def test_usage_bad_window_is_400(api: APIClient, days: str) -> None:
    response = api.get(USAGE, {"days": days})

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"


def test_usage_refuses_anonymous(anon: APIClient) -> None:
    response = anon.get(USAGE)

    assert response.status_code == 403
    assert response.json()["error"]["type"] == "not_authenticated"
