"""Every refusal of the SSE endpoints: status, JSON body, and nothing stored."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.http import JsonResponse
from django.test import AsyncClient
from rest_framework.authtoken.models import Token

from chat.engine import get_engine
from chat.models import Conversation, Message
from chat.testing.fake_anthropic import FakeAnthropicServer
from chat.testing.live_server import parse_sse

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def scripted(settings):
    def configure(**options: Any) -> None:
        settings.CHAT = {**settings.CHAT, "PROVIDER": "locmem", "PROVIDER_OPTIONS": options}

    configure(chunks=["Hel", "lo"], delay=0.01)
    return configure


@pytest.fixture
def mallory():
    return get_user_model().objects.create_user("mallory", password="pw")


@pytest.fixture
async def client(user) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(user)
    return client


@pytest.fixture
async def reply(user, conversation) -> Message:
    """A finished exchange in ``conversation``; returns the assistant message."""
    await Message.objects.acreate(conversation=conversation, role="user", content="Hi")
    return await Message.objects.acreate(
        conversation=conversation, role="assistant", content="Hello", status="complete"
    )


def url(conversation: Any) -> str:
    return f"/api/conversations/{getattr(conversation, 'pk', conversation)}/messages/"


def assert_error(response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == kind
    assert body["error"]["message"]
    return body["error"]


async def stored_count() -> int:
    return await Message.objects.acount()


async def finish_running() -> None:
    for gen in list(get_engine().generations.values()):
        await gen.task


# -- authentication -----------------------------------------------------------------------


async def test_anonymous_requests_are_refused_with_403(conversation, reply):
    anonymous = AsyncClient()
    posted = await anonymous.post(url(conversation), {"content": "Hi"}, "application/json")
    assert_error(posted, 403, "not_authenticated")
    assert_error(await anonymous.get(f"/api/messages/{reply.pk}/stream/"), 403, "not_authenticated")
    cancel = await anonymous.post(f"/api/messages/{reply.pk}/cancel/")
    assert_error(cancel, 403, "not_authenticated")
    assert await stored_count() == 2


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Token nope", "Invalid token."),
        ("Token", "Invalid token header. No credentials provided."),
        ("Token a b", "Invalid token header. Token string should not contain spaces."),
    ],
)
async def test_bad_tokens_are_refused(conversation, header, message):
    response = await AsyncClient().post(
        url(conversation), {"content": "Hi"}, "application/json", headers={"Authorization": header}
    )
    assert assert_error(response, 403, "not_authenticated")["message"] == message
    assert await stored_count() == 0


async def test_token_of_an_inactive_user_is_refused(user, conversation):
    token = await Token.objects.acreate(user=user)
    await get_user_model().objects.filter(pk=user.pk).aupdate(is_active=False)
    auth = {"Authorization": f"Token {token.key}"}
    response = await AsyncClient().post(
        url(conversation), {"content": "Hi"}, "application/json", headers=auth
    )
    assert_error(response, 403, "not_authenticated")


async def test_token_auth_needs_no_csrf_token(user, conversation, scripted):
    token = await Token.objects.acreate(user=user)
    auth = {"Authorization": f"Token {token.key}"}
    client = AsyncClient(enforce_csrf_checks=True)
    response = await client.post(
        url(conversation), {"content": "Hi"}, "application/json", headers=auth
    )
    assert response.status_code == 201
    await finish_running()
    stream = await client.get(response.json()["stream_url"], headers=auth)
    frames = parse_sse(b"".join([p async for p in stream.streaming_content]).decode())
    assert frames[-1].data == "[DONE]"


async def test_session_post_without_csrf_token_is_refused(user, conversation, reply):
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(user)
    response = await client.post(url(conversation), {"content": "Hi"}, "application/json")
    error = assert_error(response, 403, "permission_denied")
    assert error["message"].startswith("CSRF Failed")
    assert await stored_count() == 2
    cancel = await client.post(f"/api/messages/{reply.pk}/cancel/")
    assert_error(cancel, 403, "permission_denied")


async def test_session_post_with_csrf_token_is_accepted(user, conversation, scripted):
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(user)
    page = await client.get("/accounts/login/")  # any page that sets the CSRF cookie
    token = page.cookies.get(django_settings.CSRF_COOKIE_NAME) or client.cookies.get(
        django_settings.CSRF_COOKIE_NAME
    )
    assert token is not None
    response = await client.post(
        url(conversation),
        {"content": "Hi"},
        "application/json",
        headers={"X-CSRFToken": token.value},
    )
    assert response.status_code == 201
    await finish_running()


# -- not found -------------------------------------------------------------------------


async def test_another_users_conversation_is_not_found(mallory, conversation, reply):
    client = AsyncClient()
    await client.aforce_login(mallory)
    posted = await client.post(url(conversation), {"content": "Hi"}, "application/json")
    assert_error(posted, 404, "not_found")
    assert_error(await client.get(f"/api/messages/{reply.pk}/stream/"), 404, "not_found")
    assert_error(await client.post(f"/api/messages/{reply.pk}/cancel/"), 404, "not_found")
    assert await stored_count() == 2


@pytest.mark.parametrize(
    "conversation_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "123"]
)
async def test_unknown_conversation_is_not_found(client, conversation_id):
    response = await client.post(url(conversation_id), {"content": "Hi"}, "application/json")
    assert_error(response, 404, "not_found")
    assert await stored_count() == 0


async def test_unknown_message_and_user_message_are_not_found(client, reply):
    user_message = await Message.objects.aget(role="user")
    for message_id in (999999, user_message.pk):
        response = await client.get(f"/api/messages/{message_id}/stream/")
        assert_error(response, 404, "not_found")
    assert_error(await client.post("/api/messages/999999/cancel/"), 404, "not_found")


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", 'The body must be JSON, like {"content": "Hello"}.'),
        (b"", 'The body must be a JSON object, like {"content": "Hello"}.'),
        (b'["Hi"]', 'The body must be a JSON object, like {"content": "Hello"}.'),
        (b"{}", "'content' is required."),
        (b'{"content": null}', "'content' must be a string."),
        (b'{"content": 42}', "'content' must be a string."),
        (b'{"content": ""}', "The message is empty."),
        (b'{"content": " \\n\\t "}', "The message is empty."),
        (b'{"content": "a\\u0000b"}', "The message contains a NUL character."),
        (b"\xff\xfe", 'The body must be JSON, like {"content": "Hello"}.'),
    ],
)
async def test_invalid_bodies_are_refused_and_nothing_is_stored(
    client, conversation, body, message
):
    response = await client.post(url(conversation), body, "application/json")
    assert assert_error(response, 400, "invalid_request")["message"] == message
    assert await stored_count() == 0


async def test_over_long_content_is_refused(client, conversation, settings):
    settings.CHAT = {**settings.CHAT, "MAX_MESSAGE_LENGTH": 10}
    response = await client.post(url(conversation), {"content": "x" * 11}, "application/json")
    error = assert_error(response, 400, "invalid_request")
    assert "limit is 10" in error["message"]
    assert await stored_count() == 0
    ok = await client.post(url(conversation), {"content": "é" * 10}, "application/json")
    assert ok.status_code == 201
    await finish_running()


@pytest.mark.parametrize("offset", ["-1", "abc", "1.5", "", "+3", "1e3"])
async def test_invalid_offsets_are_refused(client, reply, offset):
    response = await client.get(f"/api/messages/{reply.pk}/stream/", {"offset": offset})
    assert_error(response, 400, "invalid_request")
    header = await client.get(
        f"/api/messages/{reply.pk}/stream/", headers={"Last-Event-ID": offset}
    )
    assert_error(header, 400, "invalid_request")


async def test_non_ascii_digits_are_not_an_offset(client, reply):
    response = await client.get(f"/api/messages/{reply.pk}/stream/", {"offset": "１"})
    assert_error(response, 400, "invalid_request")


# -- limits ----------------------------------------------------------------------------


async def test_second_message_while_a_reply_runs_is_a_conflict(client, conversation, scripted):
    scripted(chunks=["slow"] * 5, delay=0.1)
    first = await client.post(url(conversation), {"content": "One"}, "application/json")
    assert first.status_code == 201
    second = await client.post(url(conversation), {"content": "Two"}, "application/json")
    assert_error(second, 409, "conflict")
    assert await stored_count() == 2
    await finish_running()


async def test_per_user_cap_answers_429(client, user, conversation, scripted, settings):
    settings.CHAT = {**settings.CHAT, "MAX_CONCURRENT_PER_USER": 1}
    scripted(chunks=["slow"] * 5, delay=0.1)
    other = await Conversation.objects.acreate(owner=user, model="claude-sonnet-4-5")
    first = await client.post(url(conversation), {"content": "One"}, "application/json")
    assert first.status_code == 201
    second = await client.post(url(other), {"content": "Two"}, "application/json")
    assert_error(second, 429, "rate_limit_error")
    assert await Message.objects.filter(conversation=other).acount() == 0
    await finish_running()


async def test_upstream_rejecting_the_key_arrives_as_an_error_event(
    client, conversation, anthropic_settings: FakeAnthropicServer
):
    response = await client.post(
        url(conversation),
        {"content": "Hi [fake fail=401]"},
        "application/json",
        headers={"accept": "text/event-stream"},
    )
    assert response.status_code == 200
    frames = parse_sse(b"".join([p async for p in response.streaming_content]).decode())
    assert [f.event for f in frames[1:-1]] == ["start", "error"]
    error = frames[-2].json()
    assert error["error"]["type"] == "authentication_error"
    assert "API key" in error["error"]["message"]
    assert frames[-1].data == "[DONE]"
    await finish_running()
    stored = await Message.objects.aget(pk=error["message_id"])
    assert stored.status == "error"
    assert stored.error_type == "authentication_error"
    assert await Message.objects.filter(role="user", content="Hi [fake fail=401]").aexists()


# -- methods and the shared URL --------------------------------------------------------


async def test_wrong_methods_get_405_with_allow(client, conversation, reply):
    put = await client.put(url(conversation), {"content": "Hi"}, "application/json")
    assert assert_error(put, 405, "method_not_allowed")
    assert "POST" in put["Allow"]
    stream_post = await client.post(f"/api/messages/{reply.pk}/stream/")
    assert_error(stream_post, 405, "method_not_allowed")
    assert stream_post["Allow"] == "GET"
    cancel_get = await client.get(f"/api/messages/{reply.pk}/cancel/")
    assert_error(cancel_get, 405, "method_not_allowed")
    assert cancel_get["Allow"] == "POST"


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_get_on_the_messages_url_is_the_rest_list(client, conversation, monkeypatch, kind):
    calls: list[Any] = []

    def sync_view(request, conversation_id):
        calls.append(conversation_id)
        return JsonResponse({"results": []})

    async def async_view(request, conversation_id):
        return sync_view(request, conversation_id)

    module = types.ModuleType("chat.api.views")
    module.message_list_view = sync_view if kind == "sync" else async_view  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "chat.api.views", module)
    response = await client.get(url(conversation))
    assert response.status_code == 200
    assert response.json() == {"results": []}
    assert calls == [conversation.pk]


async def test_get_on_the_messages_url_without_the_rest_api_is_405(
    client, conversation, monkeypatch
):
    monkeypatch.setitem(sys.modules, "chat.api.views", None)  # import fails
    response = await client.get(url(conversation))
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


async def test_compression_middleware_leaves_the_event_stream_alone(
    client, conversation, scripted, settings
):
    settings.MIDDLEWARE = ["django.middleware.gzip.GZipMiddleware", *settings.MIDDLEWARE]
    response = await client.post(
        url(conversation),
        {"content": "Hi"},
        "application/json",
        headers={"accept": "text/event-stream", "accept-encoding": "gzip"},
    )
    assert response["Content-Encoding"] != "gzip"
    writes = [bytes(p) async for p in response.streaming_content]
    frames = parse_sse(b"".join(writes).decode())
    assert len(writes) == len(frames)
    assert frames[-1].data == "[DONE]"


async def test_rest_list_and_streaming_post_refuse_anonymous_alike(conversation, reply):
    anonymous = AsyncClient()
    listed = await anonymous.get(url(conversation))
    posted = await anonymous.post(url(conversation), {"content": "Hi"}, "application/json")
    assert listed.status_code == posted.status_code == 403
    assert listed.json()["error"]["type"] == posted.json()["error"]["type"] == "not_authenticated"


async def test_get_on_the_messages_url_lists_the_stored_messages(client, conversation, reply):
    response = await client.get(url(conversation))
    assert response.status_code == 200
    assert "Hello" in response.content.decode()
