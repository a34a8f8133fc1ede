"""The review admin: access, read-only content, filters, search, exports, usage, speed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from api_support import add_message, add_reply, days_ago, make_conversation, make_user
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db

CONVERSATIONS = "/admin/chat/conversation/"
MESSAGES = "/admin/chat/message/"
USAGE = "/admin/chat/conversation/usage/"


def grant(user: Any, *codenames: str) -> Any:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def staff() -> Any:
    """A staff member allowed to view conversations and messages (not a superuser)."""
    user = make_user("reviewer", is_staff=True)
    return grant(user, "view_conversation", "view_message", "delete_conversation")


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def superuser_client() -> Client:
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def chat(alice: Any) -> Conversation:
    conversation = make_conversation(alice, "Dinner ideas")
    add_message(conversation, "What should I cook?")
    add_reply(conversation, "Risotto.", input_tokens=30, output_tokens=12)
    return conversation


# -- access -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [CONVERSATIONS, MESSAGES, USAGE])
def test_non_staff_are_sent_to_the_login_page(alice: Any, chat: Any, url: str) -> None:
    client = Client()
    client.force_login(alice)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", [CONVERSATIONS, MESSAGES, USAGE])
def test_anonymous_are_sent_to_the_login_page(chat: Any, url: str) -> None:
    response = Client().get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", [CONVERSATIONS, MESSAGES, USAGE])
def test_staff_without_view_permission_are_refused(chat: Any, url: str) -> None:
    client = Client()
    client.force_login(make_user("intern", is_staff=True))

    assert client.get(url).status_code == 403


def test_changelist_shows_counts_tokens_and_last_status(staff_client: Client, chat: Any) -> None:
    add_message(chat, "And dessert?")
    add_reply(chat, "", status=Message.Status.ERROR, error_type="overloaded_error")

    response = staff_client.get(CONVERSATIONS)

    assert response.status_code == 200
    row = response.context["cl"].result_list.get(pk=chat.pk)
    assert row.message_count == 4
    assert row.total_tokens == 30 + 12 + 20 + 10  # the failed reply's default counts included
    assert row.last_reply_status == "error"
    html = response.content.decode()
    assert "Dinner ideas" in html
    assert "Usage per user per day" in html


def test_change_page_shows_messages_in_order_read_only(staff_client: Client, chat: Any) -> None:
    add_reply(
        chat,
        "Second",
        status=Message.Status.ERROR,
        error_type="api_error",
        error_message="Upstream 500",
        time_to_first_token_ms=120,
        duration_ms=900,
    )

    response = staff_client.get(f"{CONVERSATIONS}{chat.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("What should I cook?") < html.index("Risotto.") < html.index("Second")
    assert "api_error: Upstream 500" in html
    assert "first token 120 ms, total 900 ms" in html
    assert "30 in / 12 out" in html
    assert 'name="_save"' not in html  # a view page, not a form
    assert "<textarea" not in html


def test_message_content_is_escaped(staff_client: Client, alice: Any) -> None:
    conversation = make_conversation(alice, "<b>title</b>")
    message = add_message(conversation, "<script>alert('x')</script>\nline two")

    pages = [
        staff_client.get(f"{CONVERSATIONS}{conversation.pk}/change/").content.decode(),
        staff_client.get(f"{MESSAGES}{message.pk}/change/").content.decode(),
        staff_client.get(MESSAGES).content.decode(),
        staff_client.get(CONVERSATIONS).content.decode(),
    ]

    for html in pages:
        assert "<script>alert" not in html
        assert "<b>title</b>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;<br>line two" in pages[0]


def test_nobody_can_edit_what_was_said(
    staff_client: Client, superuser_client: Client, chat: Any
) -> None:
    message = chat.messages.first()

    for client in (staff_client, superuser_client):
        response = client.post(f"{MESSAGES}{message.pk}/change/", {"content": "rewritten"})
        assert response.status_code == 403
        response = client.post(f"{CONVERSATIONS}{chat.pk}/change/", {"title": "rewritten"})
        assert response.status_code == 403
        assert client.get(f"{MESSAGES}add/").status_code == 403
    message.refresh_from_db()
    chat.refresh_from_db()
    assert message.content == "What should I cook?"
    assert chat.title == "Dinner ideas"


def test_only_superusers_delete(staff_client: Client, superuser_client: Client, chat: Any) -> None:
    url = f"{CONVERSATIONS}{chat.pk}/delete/"

    assert staff_client.post(url, {"post": "yes"}).status_code == 403
    assert Conversation.objects.filter(pk=chat.pk).exists()

    assert superuser_client.post(url, {"post": "yes"}).status_code == 302
    assert not Conversation.objects.filter(pk=chat.pk).exists()
    assert not Message.objects.filter(conversation_id=chat.pk).exists()


# -- filters and search ---------------------------------------------------------------------


def test_filter_by_status_of_the_last_reply(staff_client: Client, alice: Any) -> None:
    failed = make_conversation(alice, "Failed")
    add_reply(failed, "ok earlier")
    add_reply(failed, "", status=Message.Status.ERROR)
    fine = make_conversation(alice, "Fine")
    add_reply(fine, "", status=Message.Status.ERROR)
    add_reply(fine, "ok now")
    silent = make_conversation(alice, "Silent")
    add_message(silent, "no answer yet")

    def titles(value: str) -> set[str]:
        response = staff_client.get(CONVERSATIONS, {"last_reply": value})
        return {c.title for c in response.context["cl"].result_list}

    assert titles("error") == {"Failed"}
    assert titles("complete") == {"Fine"}
    assert titles("none") == {"Silent"}


def test_filter_by_owner_and_model(staff_client: Client, alice: Any, bob: Any) -> None:
    make_conversation(alice, "Alice's", model="claude-haiku-4-5")
    make_conversation(bob, "Bob's")

    by_owner = staff_client.get(CONVERSATIONS, {"owner__id__exact": bob.pk})
    by_model = staff_client.get(CONVERSATIONS, {"model": "claude-haiku-4-5"})

    assert [c.title for c in by_owner.context["cl"].result_list] == ["Bob's"]
    assert [c.title for c in by_model.context["cl"].result_list] == ["Alice's"]


def test_search_by_message_content_lists_each_conversation_once(
    staff_client: Client, alice: Any, bob: Any
) -> None:
    hit = make_conversation(alice, "Cooking")
    add_message(hit, "saffron please")
    add_reply(hit, "Saffron is pricey; saffron threads keep.")
    make_conversation(bob, "Other")

    by_content = staff_client.get(CONVERSATIONS, {"q": "saffron"}).context["cl"].result_list
    by_owner = staff_client.get(CONVERSATIONS, {"q": "bob"}).context["cl"].result_list

    assert [c.pk for c in by_content] == [hit.pk]
    assert [c.title for c in by_owner] == ["Other"]


def test_message_list_filters_by_status_and_role_and_links(staff_client: Client, chat: Any) -> None:
    stopped = add_reply(chat, "half", status=Message.Status.CANCELLED)
    add_reply(chat, "broken", status=Message.Status.INTERRUPTED)

    response = staff_client.get(MESSAGES, {"status__exact": "cancelled"})
    users = staff_client.get(MESSAGES, {"role__exact": "user"}).context["cl"].result_list

    assert [m.pk for m in response.context["cl"].result_list] == [stopped.pk]
    assert f'href="/admin/chat/conversation/{chat.pk}/change/"' in response.content.decode()
    assert [m.content for m in users] == ["What should I cook?"]
    for status in ("error", "cancelled", "interrupted", "streaming"):
        assert staff_client.get(MESSAGES, {"status__exact": status}).status_code == 200


# -- exports --------------------------------------------------------------------------------


def export(client: Client, action: str, *conversations: Conversation) -> Any:
    return client.post(
        CONVERSATIONS,
        {"action": action, "_selected_action": [str(c.pk) for c in conversations]},
    )


def test_export_selected_as_json(staff_client: Client, chat: Any, alice: Any) -> None:
    other = make_conversation(alice, "Other")
    add_message(other, "hello")
    make_conversation(alice, "Not selected")

    response = export(staff_client, "export_json", chat, other)

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="conversations.json"'
    body = json.loads(response.content)
    assert {item["conversation"]["title"] for item in body} == {"Dinner ideas", "Other"}
    dinner = next(i for i in body if i["conversation"]["title"] == "Dinner ideas")
    assert [m["content"] for m in dinner["messages"]] == ["What should I cook?", "Risotto."]


def test_export_selected_as_markdown(staff_client: Client, chat: Any) -> None:
    response = export(staff_client, "export_markdown", chat)

    assert response.status_code == 200
    text = response.content.decode()
    assert text.startswith("# Dinner ideas")
    assert "Risotto." in text


# -- usage ----------------------------------------------------------------------------------


def test_usage_per_user_per_day(staff_client: Client, alice: Any, bob: Any) -> None:
    for owner, tokens, day in ((alice, 100, 1), (alice, 50, 1), (bob, 7, 0), (alice, 1, 40)):
        reply = add_reply(make_conversation(owner), input_tokens=tokens, output_tokens=0)
        Message.objects.filter(pk=reply.pk).update(created_at=days_ago(day))

    response = staff_client.get(USAGE)

    rows = [
        (str(r["date"]), r["conversation__owner__username"], r["replies"], r["total_tokens"])
        for r in response.context["page"]
    ]
    assert rows == [
        (str(days_ago(0).date()), "bob", 1, 7),
        (str(days_ago(1).date()), "alice", 2, 150),
    ]
    assert "alice" in response.content.decode()
    wider = staff_client.get(USAGE, {"days": "90"}).context["page"]
    assert len(list(wider)) == 3


# -- speed ----------------------------------------------------------------------------------


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as context:
        assert client.get(url).status_code == 200
    return len(context)


def test_changelists_do_not_query_per_row(
    staff_client: Client, alice: Any, django_assert_num_queries: Any
) -> None:
    first = make_conversation(alice)
    add_message(first)
    add_reply(first)
    few = {url: _queries(staff_client, url) for url in (CONVERSATIONS, MESSAGES, USAGE)}
    for i in range(60):
        conversation = make_conversation(make_user(f"user{i}"), f"c{i}")
        add_message(conversation, "q")
        add_reply(conversation, "a")

    for url, count in few.items():
        with django_assert_num_queries(count):
            response = staff_client.get(url)
        assert response.status_code == 200
    assert len(staff_client.get(CONVERSATIONS).context["cl"].result_list) == 61
