"""Every refusal of the WebSocket transport: close codes, error frames, nothing stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
import test_ws
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from test_ws import ORIGIN, frames_until_end, wait_for_end

from chat.consumers import MAX_FRAME_BYTES
from chat.models import Conversation, Message
from chat.testing.fake_anthropic import FakeAnthropicServer

pytestmark = pytest.mark.django_db(transaction=True)

# Fixtures shared with the WebSocket tests.
open_socket = test_ws.open_socket


@pytest.fixture
def mallory():
    return get_user_model().objects.create_user("mallory", password="pw")


async def assert_closed_with(socket: WebsocketCommunicator, code: int) -> None:
    """The first and only output is a close with ``code``: no chat frame got through."""
    assert await socket.receive_output(5) == {"type": "websocket.close", "code": code}


async def assert_refused(socket: WebsocketCommunicator, frame: Any, message: str | None = None):
    """Send ``frame`` (a dict, or raw text/bytes); expect an invalid_request error frame."""
    if isinstance(frame, dict):
        await socket.send_json_to(frame)
    elif isinstance(frame, bytes):
        await socket.send_to(bytes_data=frame)
    else:
        await socket.send_to(text_data=frame)
    reply = await socket.receive_json_from(5)
    assert reply["type"] == "error"
    assert reply["message_id"] is None
    assert reply["error"]["type"] == "invalid_request"
    if message is not None:
        assert reply["error"]["message"] == message
    return reply


async def assert_still_chatting(socket: WebsocketCommunicator) -> None:
    await socket.send_json_to({"type": "message", "content": "Still there?"})
    frames = await frames_until_end(socket)
    assert frames[0]["type"] == "message"
    assert frames[-1]["type"] == "done"


# -- refused connections ---------------------------------------------------------------


async def test_anonymous_socket_is_closed_4401(open_socket, conversation):
    socket, connected, _ = await open_socket(conversation)
    assert connected
    await assert_closed_with(socket, 4401)


async def test_bad_token_is_closed_4401(open_socket, conversation):
    headers = [ORIGIN, (b"authorization", b"Token nope")]
    socket, _, _ = await open_socket(conversation, headers=headers)
    await assert_closed_with(socket, 4401)


async def test_token_header_authenticates_non_browser_clients(
    open_socket, user, conversation, scripted
):
    token = await Token.objects.acreate(user=user)
    headers = [ORIGIN, (b"authorization", f"Token {token.key}".encode())]
    socket, connected, _ = await open_socket(conversation, headers=headers)
    assert connected
    await assert_still_chatting(socket)


async def test_another_users_conversation_is_closed_4403(open_socket, mallory, conversation):
    socket, _, _ = await open_socket(conversation, mallory)
    await assert_closed_with(socket, 4403)


async def test_unknown_conversation_is_closed_4403(open_socket, user):
    socket, _, _ = await open_socket("00000000-0000-0000-0000-000000000000", user)
    await assert_closed_with(socket, 4403)


@pytest.mark.parametrize("origin", [b"https://evil.example", None])
async def test_foreign_or_missing_origin_is_rejected_at_handshake(
    open_socket, user, conversation, origin
):
    headers = [] if origin is None else [(b"origin", origin)]
    socket, connected, _ = await open_socket(conversation, user, headers=headers)
    assert not connected
    assert await socket.receive_nothing(0.1)


async def test_refused_socket_ignores_frames(open_socket, conversation):
    socket, _, _ = await open_socket(conversation)
    await socket.send_json_to({"type": "message", "content": "Hi"})
    await assert_closed_with(socket, 4401)
    assert await socket.receive_nothing(0.1)
    assert await Message.objects.acount() == 0


# -- bad frames ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("{not json", "The frame is not valid JSON."),
        (b"\x00\x01", "Frames must be JSON text, not binary."),
        ('["message"]', 'A frame must be a JSON object with a "type".'),
        ({"content": "Hi"}, "Unknown frame type None: expected message, cancel or resume."),
        ({"type": "shout"}, "Unknown frame type 'shout': expected message, cancel or resume."),
        ({"type": "message"}, "'content' is required."),
        ({"type": "message", "content": 7}, "'content' must be a string."),
        ({"type": "message", "content": ""}, "The message is empty."),
        ({"type": "message", "text": "  \n "}, "The message is empty."),
        ({"type": "resume"}, "'message_id' must be a positive integer."),
        ({"type": "resume", "message_id": "3"}, "'message_id' must be a positive integer."),
        ({"type": "resume", "message_id": True}, "'message_id' must be a positive integer."),
        (
            {"type": "resume", "message_id": 1, "offset": -1},
            "'offset' must be a non-negative integer.",
        ),
        (
            {"type": "resume", "message_id": 1, "offset": 1.5},
            "'offset' must be a non-negative integer.",
        ),
        ({"type": "cancel", "message_id": "x"}, "'message_id' must be a positive integer."),
    ],
)
async def test_bad_frames_get_an_error_frame_and_the_socket_stays_open(
    open_socket, user, conversation, scripted, frame, message
):
    socket, _, _ = await open_socket(conversation, user)
    await assert_refused(socket, frame, message)
    assert await Message.objects.acount() == 0
    await assert_still_chatting(socket)


async def test_over_long_content_is_refused_and_nothing_stored(
    open_socket, user, conversation, scripted, settings
):
    socket, _, _ = await open_socket(conversation, user)
    limit = 32_000
    reply = await assert_refused(socket, {"type": "message", "content": "x" * (limit + 1)})
    assert f"the limit is {limit}" in reply["error"]["message"]
    assert await Message.objects.acount() == 0
    await assert_still_chatting(socket)


async def test_frame_over_one_mebibyte_is_refused(open_socket, user, conversation, scripted):
    socket, _, _ = await open_socket(conversation, user)
    frame = json.dumps({"type": "message", "content": "é" * (MAX_FRAME_BYTES // 2)})
    await assert_refused(
        socket, frame, f"The frame is too large (the limit is {MAX_FRAME_BYTES} bytes)."
    )
    await assert_still_chatting(socket)


def test_longest_valid_message_fits_in_one_daphne_frame(settings):
    """Any message within MAX_MESSAGE_LENGTH gets the clear length error, never a 1009 close."""
    from chat.conf import chat_settings

    worst = "\U0001f600" * chat_settings.MAX_MESSAGE_LENGTH  # 12 bytes each, JSON-escaped
    frame = json.dumps({"type": "message", "content": worst + "x"})
    assert len(frame.encode()) < MAX_FRAME_BYTES


# -- refusals of valid frames -----------------------------------------------------------


async def test_resume_of_another_users_message_is_not_found(
    open_socket, user, mallory, conversation
):
    theirs = await Conversation.objects.acreate(owner=mallory, model="m")
    message = await Message.objects.acreate(
        conversation=theirs, role="assistant", content="secret", status="complete"
    )
    socket, _, _ = await open_socket(conversation, user)
    for frame in (
        {"type": "resume", "message_id": message.pk, "offset": 0},
        {"type": "resume", "message_id": 999999},
        {"type": "cancel", "message_id": message.pk},
    ):
        await socket.send_json_to(frame)
        reply = await socket.receive_json_from(5)
        assert reply == {
            "type": "error",
            "message_id": None,
            "error": {"type": "not_found", "message": "Message not found."},
        }
    assert await socket.receive_nothing(0.1)


async def test_resume_of_a_message_of_another_conversation_is_not_found(
    open_socket, user, conversation
):
    elsewhere = await Conversation.objects.acreate(owner=user, model="m")
    message = await Message.objects.acreate(
        conversation=elsewhere, role="assistant", content="other", status="complete"
    )
    socket, _, _ = await open_socket(conversation, user)
    await socket.send_json_to({"type": "resume", "message_id": message.pk})
    reply = await socket.receive_json_from(5)
    assert reply["error"]["type"] == "not_found"
    assert await socket.receive_nothing(0.1)


async def test_second_message_while_a_reply_runs_is_a_conflict(
    open_socket, user, conversation, scripted
):
    scripted(chunks=["slow"] * 5, delay=0.1)
    socket, _, _ = await open_socket(conversation, user)
    await socket.send_json_to({"type": "message", "content": "One"})
    await socket.send_json_to({"type": "message", "content": "Two"})
    frames = await frames_until_end(socket)
    errors = [f for f in frames if f["type"] == "error"]
    assert [e["error"]["type"] for e in errors] == ["conflict"]
    assert errors[0]["message_id"] is None
    assert frames[-1]["type"] == "done"
    assert await Message.objects.acount() == 2


async def test_per_user_cap_is_a_rate_limit_error(
    open_socket, user, conversation, scripted, settings
):
    settings.CHAT = {**settings.CHAT, "MAX_CONCURRENT_PER_USER": 1}
    scripted(chunks=["slow"] * 5, delay=0.1)
    other = await Conversation.objects.acreate(owner=user, model="claude-sonnet-4-5")
    first, _, _ = await open_socket(conversation, user)
    second, _, _ = await open_socket(other, user)
    await first.send_json_to({"type": "message", "content": "One"})
    assert (await first.receive_json_from(5))["type"] == "message"
    await second.send_json_to({"type": "message", "content": "Two"})
    reply = await second.receive_json_from(5)
    assert reply["type"] == "error"
    assert reply["error"]["type"] == "rate_limit_error"
    assert await Message.objects.filter(conversation=other).acount() == 0
    await frames_until_end(first)


async def test_upstream_failure_is_an_error_frame_for_the_reply(
    open_socket, user, conversation, anthropic_settings: FakeAnthropicServer
):
    socket, _, _ = await open_socket(conversation, user)
    content = "Hi [fake tokens=10 fail=overloaded_midstream after=3]"
    await socket.send_json_to({"type": "message", "content": content})
    frames = await frames_until_end(socket)
    error = frames[-1]
    assert error["type"] == "error"
    assert error["error"]["type"] == "overloaded_error"
    assert error["error"]["message"]
    stored = await wait_for_end(error["message_id"])
    assert stored.status == "error"
    assert stored.content == "".join(f["chunk"] for f in frames if f["type"] == "chunk")
    assert stored.content
    assert await Message.objects.filter(role="user", content=content).aexists()


async def test_message_rate_limit_says_when_to_retry(
    open_socket, user, conversation, scripted, settings
):
    await cache.aclear()
    settings.CHAT = {**settings.CHAT, "MESSAGES_PER_MINUTE": 1}
    socket, _, _ = await open_socket(conversation, user)
    await socket.send_json_to({"type": "message", "content": "One"})
    assert (await frames_until_end(socket))[-1]["type"] == "done"
    await socket.send_json_to({"type": "message", "content": "Two"})
    reply = await socket.receive_json_from(5)
    assert reply["type"] == "error"
    assert reply["message_id"] is None
    assert reply["error"]["type"] == "rate_limit_error"
    assert reply["error"]["retry_after"] >= 1
    assert await Message.objects.acount() == 2
