"""The conversations endpoints: list, search, create, read, update, delete."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import add_message, add_reply, make_conversation, make_user, token_client
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from chat.models import Conversation, Message
from chat.presenters import conversation_dict

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clear_cache")]

LIST = "/api/conversations/"


def detail(conversation: Conversation | str) -> str:
    pk = conversation.pk if isinstance(conversation, Conversation) else conversation
    return f"/api/conversations/{pk}/"


def assert_error(response: Any, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]["type"] == type_
    assert body["error"]["message"]
    return body


# -- list -----------------------------------------------------------------------------


def test_list_newest_first_with_count_and_preview(api: APIClient, alice: Any) -> None:
    old = make_conversation(alice, "Old")
    new = make_conversation(alice, "New")
    add_message(old, "first question")
    add_reply(old, "x" * 500)
    add_message(new, "only question")
    Conversation.objects.filter(pk=old.pk).update(updated_at=new.updated_at.replace(year=2020))

    response = api.get(LIST)

    assert response.status_code == 200
    results = response.json()["results"]
    assert [c["title"] for c in results] == ["New", "Old"]
    assert results[1]["message_count"] == 2
    last = results[1]["last_message"]
    assert last["role"] == "assistant"
    assert last["status"] == "complete"
    assert last["preview"] == "x" * 200
    assert results[0]["last_message"]["preview"] == "only question"


def test_list_item_is_the_presenter_shape_plus_listing_fields(api: APIClient, alice: Any) -> None:
    conversation = make_conversation(alice, "Shape", system_prompt="Be brief.")

    item = api.get(LIST).json()["results"][0]

    expected = conversation_dict(Conversation.objects.get(pk=conversation.pk))
    assert {k: item[k] for k in expected} == expected
    assert set(item) == {*expected, "message_count", "last_message"}
    assert item["message_count"] == 0
    assert item["last_message"] is None


def test_list_shows_only_own_conversations(api: APIClient, alice: Any, bob: Any) -> None:
    make_conversation(alice, "Mine")
    make_conversation(bob, "Bob's secret")

    titles = [c["title"] for c in api.get(LIST).json()["results"]]

    assert titles == ["Mine"]


def test_list_paginates_with_cursor(api: APIClient, alice: Any) -> None:
    for i in range(5):
        make_conversation(alice, f"c{i}")

    first = api.get(LIST, {"limit": 2}).json()
    second = api.get(first["next"]).json()
    third = api.get(second["next"]).json()

    titles = [c["title"] for page in (first, second, third) for c in page["results"]]
    assert titles == ["c4", "c3", "c2", "c1", "c0"]
    assert third["next"] is None
    back = api.get(second["previous"]).json()
    assert [c["title"] for c in back["results"]] == ["c4", "c3"]


def test_new_conversations_do_not_shift_later_pages(api: APIClient, alice: Any) -> None:
    for i in range(4):
        make_conversation(alice, f"c{i}")
    first = api.get(LIST, {"limit": 2}).json()

    make_conversation(alice, "brand new")  # lands on top, before page 2 is fetched
    second = api.get(first["next"]).json()

    assert [c["title"] for c in first["results"]] == ["c3", "c2"]
    assert [c["title"] for c in second["results"]] == ["c1", "c0"]


def test_anonymous_is_refused(anon: APIClient, alice: Any) -> None:
    make_conversation(alice)

    assert_error(anon.get(LIST), 403, "not_authenticated")
    assert_error(anon.post(LIST, {}, format="json"), 403, "not_authenticated")


def test_bad_token_is_refused(alice: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert_error(client.get(LIST), 403, "not_authenticated")


# -- search ---------------------------------------------------------------------------


def test_search_matches_titles_and_message_content_once(api: APIClient, alice: Any) -> None:
    by_title = make_conversation(alice, "Pasta recipes")
    by_content = make_conversation(alice, "Dinner")
    add_message(by_content, "How long to boil PASTA?")
    add_reply(by_content, "Pasta takes about 10 minutes; pasta al dente a bit less.")
    make_conversation(alice, "Unrelated")

    results = api.get(LIST, {"q": "pasta"}).json()["results"]

    ids = [c["id"] for c in results]
    assert sorted(ids) == sorted([str(by_title.pk), str(by_content.pk)])
    assert len(ids) == len(set(ids))  # one row per conversation, however many messages match
    dinner = next(c for c in results if c["id"] == str(by_content.pk))
    assert dinner["message_count"] == 2


def test_search_never_finds_other_users_messages(api: APIClient, alice: Any, bob: Any) -> None:
    add_message(make_conversation(bob, "Bob"), "secret pasta")

    assert api.get(LIST, {"q": "pasta"}).json()["results"] == []


def test_search_with_nul_character_is_a_clean_400(api: APIClient, alice: Any) -> None:
    make_conversation(alice, "Pasta")

    assert_error(api.get(LIST, {"q": "pa\x00sta"}), 400, "invalid_request")


# -- create ---------------------------------------------------------------------------


def test_create_with_defaults(api: APIClient, alice: Any, settings: Any) -> None:
    settings.CHAT = {**settings.CHAT, "MODEL": "claude-haiku-4-5"}

    response = api.post(LIST, {}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["model"] == "claude-haiku-4-5"
    assert body["title"] == ""
    assert body["message_count"] == 0
    assert response["Location"] == detail(body["id"])
    assert Conversation.objects.get(pk=body["id"]).owner == alice


def test_create_with_title_prompt_and_model(api: APIClient) -> None:
    response = api.post(
        LIST,
        {"title": "Trip", "system_prompt": "You plan trips.", "model": "claude-opus-4-5"},
        format="json",
    )

    assert response.status_code == 201
    stored = Conversation.objects.get(pk=response.json()["id"])
    assert (stored.title, stored.system_prompt, stored.model) == (
        "Trip",
        "You plan trips.",
        "claude-opus-4-5",
    )


def test_create_rejects_unknown_model(api: APIClient) -> None:
    body = assert_error(api.post(LIST, {"model": "gpt-4"}, format="json"), 400, "invalid_request")

    assert "model" in body["error"]["fields"]
    assert "model" in body["error"]["message"]
    assert not Conversation.objects.exists()


def test_create_rejects_overlong_title(api: APIClient) -> None:
    body = assert_error(api.post(LIST, {"title": "t" * 201}, format="json"), 400, "invalid_request")

    assert "200" in body["error"]["message"]
    assert not Conversation.objects.exists()


def test_create_accepts_a_title_of_exactly_200(api: APIClient) -> None:
    assert api.post(LIST, {"title": "t" * 200}, format="json").status_code == 201


def test_create_rejects_invalid_json(api: APIClient) -> None:
    response = api.post(LIST, '{"title": ', content_type="application/json")

    body = assert_error(response, 400, "invalid_request")
    assert "JSON" in body["error"]["message"]
    assert not Conversation.objects.exists()


@pytest.mark.parametrize("payload", ["[1, 2]", '"just a string"', "null", '{"title": NaN}'])
def test_create_rejects_non_object_bodies(api: APIClient, payload: str) -> None:
    response = api.post(LIST, payload, content_type="application/json")

    assert_error(response, 400, "invalid_request")


def test_create_rejects_wrong_types(api: APIClient) -> None:
    response = api.post(LIST, {"title": {"nested": True}}, format="json")

    assert_error(response, 400, "invalid_request")


def test_session_post_needs_csrf(alice: Any) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)

    body = assert_error(client.post(LIST, {}, format="json"), 403, "permission_denied")

    assert "CSRF" in body["error"]["message"]
    assert not Conversation.objects.exists()


# -- read / update / delete --------------------------------------------------------------


def test_get_one(api: APIClient, alice: Any) -> None:
    conversation = make_conversation(alice, "Mine")
    add_message(conversation, "hi")

    body = api.get(detail(conversation)).json()

    assert body["id"] == str(conversation.pk)
    assert body["message_count"] == 1


def test_another_users_conversation_is_not_found(api: APIClient, bob: Any) -> None:
    theirs = make_conversation(bob, "Bob's")
    add_message(theirs, "private")

    assert_error(api.get(detail(theirs)), 404, "not_found")
    assert_error(api.patch(detail(theirs), {"title": "x"}, format="json"), 404, "not_found")
    assert_error(api.delete(detail(theirs)), 404, "not_found")
    theirs.refresh_from_db()
    assert theirs.title == "Bob's"
    assert Message.objects.filter(conversation=theirs).count() == 1


def test_unknown_and_malformed_ids_are_not_found(api: APIClient) -> None:
    assert_error(api.get(detail("00000000-0000-0000-0000-000000000000")), 404, "not_found")
    assert_error(api.get("/api/conversations/not-a-uuid/"), 404, "not_found")


def test_anonymous_cannot_read_update_or_delete(anon: APIClient, alice: Any) -> None:
    conversation = make_conversation(alice)

    assert_error(anon.get(detail(conversation)), 403, "not_authenticated")
    assert_error(
        anon.patch(detail(conversation), {"title": "x"}, format="json"), 403, "not_authenticated"
    )
    assert_error(anon.delete(detail(conversation)), 403, "not_authenticated")
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_rename(api: APIClient, alice: Any) -> None:
    conversation = make_conversation(alice, "Old name")

    response = api.patch(detail(conversation), {"title": "New name"}, format="json")

    assert response.status_code == 200
    assert response.json()["title"] == "New name"
    conversation.refresh_from_db()
    assert conversation.title == "New name"


def test_update_model_and_prompt(api: APIClient, alice: Any) -> None:
    conversation = make_conversation(alice)

    response = api.patch(
        detail(conversation),
        {"model": "claude-haiku-4-5", "system_prompt": "Terse."},
        format="json",
    )

    assert response.status_code == 200
    conversation.refresh_from_db()
    assert (conversation.model, conversation.system_prompt) == ("claude-haiku-4-5", "Terse.")


@pytest.mark.parametrize(
    "payload", [{"title": "t" * 201}, {"model": "unknown-model"}, {"title": None}]
)
def test_update_rejects_bad_values(api: APIClient, alice: Any, payload: dict[str, Any]) -> None:
    conversation = make_conversation(alice, "Keep")

    assert_error(api.patch(detail(conversation), payload, format="json"), 400, "invalid_request")
    conversation.refresh_from_db()
    assert (conversation.title, conversation.model) == ("Keep", "claude-sonnet-4-5")


def test_update_rejects_invalid_json(api: APIClient, alice: Any) -> None:
    conversation = make_conversation(alice, "Keep")

    response = api.patch(detail(conversation), "{nope", content_type="application/json")

    assert_error(response, 400, "invalid_request")


def test_put_is_not_allowed(api: APIClient, alice: Any) -> None:
    conversation = make_conversation(alice)

    assert_error(api.put(detail(conversation), {}, format="json"), 405, "method_not_allowed")


def test_delete_removes_messages(api: APIClient, alice: Any) -> None:
    conversation = make_conversation(alice)
    add_message(conversation)
    add_reply(conversation)

    response = api.delete(detail(conversation))

    assert response.status_code == 204
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    assert_error(api.get(detail(conversation)), 404, "not_found")


# -- query counts ---------------------------------------------------------------------------


def test_list_query_count_does_not_grow_with_page_size(
    alice: Any, django_assert_num_queries: Any
) -> None:
    api = token_client(alice)
    conversation = make_conversation(alice)
    add_message(conversation)
    with CaptureQueriesContext(connection) as small:
        assert len(api.get(LIST).json()["results"]) == 1
    for i in range(60):
        many = make_conversation(alice, f"c{i}")
        add_message(many, "question")
        add_reply(many, "answer")

    with django_assert_num_queries(len(small.captured_queries)):
        response = api.get(LIST, {"limit": 50})

    assert len(response.json()["results"]) == 50
    assert all(c["message_count"] == 2 for c in response.json()["results"])


def test_other_users_do_not_affect_listing(api: APIClient, alice: Any) -> None:
    for i in range(3):
        make_conversation(make_user(f"user{i}"), "theirs")

    assert api.get(LIST).json()["results"] == []
