"""GET /api/conversations/<id>/messages/: chronological, cursor-paginated, incremental sync."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import add_message, add_reply, days_ago, make_conversation, token_client
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from chat.api.serializers import MessageSerializer
from chat.models import Conversation, Message
from chat.presenters import message_dict

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clear_cache")]


def url(conversation: Conversation | str) -> str:
    pk = conversation.pk if isinstance(conversation, Conversation) else conversation
    return f"/api/conversations/{pk}/messages/"


def contents(page: dict[str, Any]) -> list[str]:
    return [m["content"] for m in page["results"]]


def walk(api: APIClient, first_url: str, **params: Any) -> list[str]:
    """Every message content reachable by following ``next`` links."""
    page = api.get(first_url, params).json()
    seen = contents(page)
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += contents(page)
    return seen


@pytest.fixture
def chat(alice: Any) -> Conversation:
    return make_conversation(alice, "Chat")


def test_messages_in_chronological_order_with_all_fields(api: APIClient, chat: Any) -> None:
    question = add_message(chat, "What is 2+2?")
    answer = add_reply(
        chat, "4", input_tokens=12, output_tokens=1, time_to_first_token_ms=300, duration_ms=450
    )

    response = api.get(url(chat))

    assert response.status_code == 200
    body = response.json()
    assert body["results"] == [message_dict(question), message_dict(answer)]
    reply = body["results"][1]
    assert reply["role"] == "assistant"
    assert reply["status"] == "complete"
    assert reply["stop_reason"] == "end_turn"
    assert reply["model"] == "claude-sonnet-4-5"
    assert reply["usage"]["input_tokens"] == 12
    assert reply["usage"]["output_tokens"] == 1
    assert reply["time_to_first_token_ms"] == 300
    assert reply["duration_ms"] == 450
    assert body["next"] is None
    assert body["previous"] is None


def test_failed_reply_carries_its_error(api: APIClient, chat: Any) -> None:
    add_reply(
        chat,
        "partial",
        status=Message.Status.ERROR,
        error_type="overloaded_error",
        error_message="The model is overloaded.",
    )

    reply = api.get(url(chat)).json()["results"][0]

    assert reply["status"] == "error"
    assert reply["error"] == {"type": "overloaded_error", "message": "The model is overloaded."}


def test_declared_schema_fields_match_the_presenter(chat: Any) -> None:
    message = add_reply(chat)

    declared = set(MessageSerializer().fields)

    assert declared == set(message_dict(message))
    assert MessageSerializer(message).data == message_dict(message)


def test_pages_follow_next_links(api: APIClient, chat: Any) -> None:
    for i in range(7):
        add_message(chat, f"m{i}")

    assert walk(api, url(chat), limit=3) == [f"m{i}" for i in range(7)]


def test_pagination_is_stable_while_messages_arrive(api: APIClient, chat: Any) -> None:
    for i in range(4):
        add_message(chat, f"m{i}")
    first = api.get(url(chat), {"limit": 3}).json()

    # New messages arrive between page requests (a reply streaming in).
    add_message(chat, "m4")
    add_reply(chat, "m5")
    second = api.get(first["next"]).json()
    add_message(chat, "m6")
    last_seen = second["results"][-1]["id"]
    synced = api.get(url(chat), {"after": last_seen}).json()

    assert contents(first) == ["m0", "m1", "m2"]
    assert contents(second) == ["m3", "m4", "m5"]
    assert contents(synced) == ["m6"]


def test_messages_with_the_same_timestamp_are_ordered_by_id(api: APIClient, chat: Any) -> None:
    same = days_ago(1)
    for i in range(5):
        add_message(chat, f"m{i}", at=same)

    assert walk(api, url(chat), limit=2) == [f"m{i}" for i in range(5)]


def test_after_returns_only_newer_messages(api: APIClient, chat: Any) -> None:
    messages = [add_message(chat, f"m{i}") for i in range(5)]

    page = api.get(url(chat), {"after": messages[2].pk}).json()

    assert contents(page) == ["m3", "m4"]
    assert page["next"] is None
    again = api.get(url(chat), {"after": messages[4].pk}).json()
    assert again["results"] == []


def test_before_returns_the_latest_older_messages_in_order(api: APIClient, chat: Any) -> None:
    messages = [add_message(chat, f"m{i}") for i in range(6)]

    page = api.get(url(chat), {"before": messages[5].pk, "limit": 2}).json()

    assert contents(page) == ["m3", "m4"]
    older = api.get(page["previous"]).json()
    assert contents(older) == ["m1", "m2"]
    oldest = api.get(older["previous"]).json()
    assert contents(oldest) == ["m0"]
    assert oldest["previous"] is None
    assert contents(api.get(oldest["next"]).json()) == ["m1", "m2"]


@pytest.mark.parametrize(
    "params",
    [
        {"after": "abc"},
        {"before": "1.5"},
        {"after": str(2**70)},
        {"cursor": "garbage"},
        {"cursor": "eyJwIjogWzFdLCAiYiI6IGZhbHNlfQ"},  # valid base64 JSON, wrong shape
        {"limit": "0"},
        {"limit": "many"},
    ],
)
def test_bad_paging_parameters_are_400(api: APIClient, chat: Any, params: dict[str, str]) -> None:
    add_message(chat)

    response = api.get(url(chat), params)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"


def test_after_a_message_of_another_conversation_is_400(
    api: APIClient, alice: Any, chat: Any
) -> None:
    other = add_message(make_conversation(alice, "Other"))

    response = api.get(url(chat), {"after": other.pk})

    assert response.status_code == 400
    assert "after" in response.json()["error"]["fields"]


def test_another_users_conversation_is_404(api: APIClient, bob: Any) -> None:
    theirs = make_conversation(bob)
    add_message(theirs, "private")

    response = api.get(url(theirs))

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    assert "private" not in response.content.decode()


def test_unknown_conversation_is_404(api: APIClient) -> None:
    response = api.get(url("00000000-0000-0000-0000-000000000000"))

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


def test_anonymous_is_refused(anon: APIClient, chat: Any) -> None:
    add_message(chat, "private")

    response = anon.get(url(chat))

    assert response.status_code == 403
    assert response.json()["error"]["type"] == "not_authenticated"


def test_session_user_can_list(alice: Any, chat: Any) -> None:
    add_message(chat, "hello")
    client = APIClient()
    client.force_login(alice)

    assert contents(client.get(url(chat)).json()) == ["hello"]


def test_query_count_does_not_grow_with_page_size(
    alice: Any, chat: Any, django_assert_num_queries: Any
) -> None:
    api = token_client(alice)
    add_message(chat)
    with CaptureQueriesContext(connection) as one:
        assert len(api.get(url(chat)).json()["results"]) == 1
    Message.objects.bulk_create(
        Message(conversation=chat, role=Message.Role.USER, content=f"m{i}") for i in range(150)
    )

    with django_assert_num_queries(len(one)):
        page = api.get(url(chat), {"limit": 100}).json()
    with django_assert_num_queries(len(one)):
        api.get(page["next"])

    assert len(page["results"]) == 100
