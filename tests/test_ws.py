"""The WebSocket transport through chatsite.asgi (origin check, session auth, consumer)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.db.backends.signals import connection_created
from django.test import AsyncClient

from chat import bridge
from chat.engine import WORKER_ID, get_engine
from chat.models import Message
from chat.testing.fake_anthropic import FakeAnthropicServer
from chatsite.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")


async def session_cookie(user) -> bytes:
    client = AsyncClient()
    await client.aforce_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}".encode()


@pytest.fixture
async def open_socket() -> AsyncIterator[Callable[..., Any]]:
    """Open sockets (disconnected after the test): ``await open_socket(conversation, user)``."""
    sockets: list[WebsocketCommunicator] = []

    async def connect(
        conversation: Any, user: Any = None, *, headers: list[tuple[bytes, bytes]] | None = None
    ) -> tuple[WebsocketCommunicator, bool, Any]:
        extra = [ORIGIN] if headers is None else headers
        if user is not None:
            extra = [*extra, (b"cookie", await session_cookie(user))]
        path = f"/ws/conversations/{getattr(conversation, 'pk', conversation)}/"
        socket = WebsocketCommunicator(application, path, headers=extra)
        sockets.append(socket)
        connected, code = await socket.connect(timeout=5)
        return socket, connected, code

    yield connect
    for socket in sockets:
        await socket.disconnect()


async def frames_until_end(socket: WebsocketCommunicator) -> list[dict]:
    """Frames up to and including the next ``done`` or reply ``error``."""
    frames = []
    while True:
        frame = await socket.receive_json_from(5)
        frames.append(frame)
        if frame["type"] == "done" or (frame["type"] == "error" and frame["message_id"]):
            return frames


def text_of(frames: list[dict]) -> str:
    return "".join(f["chunk"] for f in frames if f["type"] == "chunk")


async def wait_for_end(message_id: int) -> Message:
    async with asyncio.timeout(10):
        while message_id in get_engine().generations:  # noqa: ASYNC110 - another task's state
            await asyncio.sleep(0.01)
    return await Message.objects.aget(pk=message_id)


async def test_chat_streams_message_start_chunks_done(open_socket, user, conversation, scripted):
    socket, connected, _ = await open_socket(conversation, user)
    assert connected
    await socket.send_json_to({"type": "message", "content": "Hi there"})
    frames = await frames_until_end(socket)
    assert [f["type"] for f in frames[:2]] == ["message", "start"]
    assert frames[0]["message"]["role"] == "user"
    assert frames[0]["message"]["content"] == "Hi there"
    start = frames[1]
    assert start["conversation_id"] == str(conversation.pk)
    assert start["model"] == "claude-sonnet-4-5"
    chunks = [f for f in frames if f["type"] == "chunk"]
    assert [(c["chunk"], c["offset"]) for c in chunks] == [
        ("Hel", 3),
        ("lo ", 6),
        ("wörld 👋", 13),
    ]
    assert all(c["message_id"] == start["message_id"] for c in chunks)
    done = frames[-1]
    assert done["status"] == "complete"
    assert done["stop_reason"] == "end_turn"
    assert set(done["usage"]) == {"input_tokens", "output_tokens"}
    stored = await wait_for_end(start["message_id"])
    assert stored.content == "Hello wörld 👋"
    assert stored.status == "complete"


async def test_text_is_accepted_as_an_alias_of_content(open_socket, user, conversation, scripted):
    socket, _, _ = await open_socket(conversation, user)
    await socket.send_json_to({"type": "message", "text": "Old client"})
    frames = await frames_until_end(socket)
    assert frames[0]["message"]["content"] == "Old client"
    assert frames[-1]["type"] == "done"


async def test_cancel_mid_stream_keeps_partial_text_and_closes_upstream(
    open_socket, user, conversation, anthropic_settings: FakeAnthropicServer
):
    socket, _, _ = await open_socket(conversation, user)
    await socket.send_json_to({"type": "message", "content": "Go [fake tokens=200 tps=20]"})
    received = []
    while sum(f["type"] == "chunk" for f in received) < 2:
        received.append(await socket.receive_json_from(5))
    await socket.send_json_to({"type": "cancel"})
    received += await frames_until_end(socket)
    done = received[-1]
    assert done["type"] == "done"
    assert done["status"] == "cancelled"
    stored = await wait_for_end(done["message_id"])
    assert stored.status == "cancelled"
    assert stored.content == text_of(received)
    assert stored.content.startswith("Echo: Go")
    assert await anthropic_settings.wait_for_disconnect(within=5)
    assert anthropic_settings.last_request.client_disconnected
    assert len(anthropic_settings.last_request.sent) < 200


async def test_two_sockets_on_one_conversation_both_receive_the_stream(
    open_socket, user, conversation, scripted
):
    first, _, _ = await open_socket(conversation, user)
    second, _, _ = await open_socket(conversation, user)
    await first.send_json_to({"type": "message", "content": "Hi"})
    seen_by_first = await frames_until_end(first)
    seen_by_second = await frames_until_end(second)
    assert seen_by_first == seen_by_second
    assert [f["type"] for f in seen_by_second[:2]] == ["message", "start"]
    assert text_of(seen_by_second) == "Hello wörld 👋"


async def test_resume_a_finished_reply_from_an_offset(open_socket, user, conversation, scripted):
    socket, _, _ = await open_socket(conversation, user)
    await socket.send_json_to({"type": "message", "content": "Hi"})
    message_id = (await frames_until_end(socket))[-1]["message_id"]
    await wait_for_end(message_id)
    later, _, _ = await open_socket(conversation, user)
    await later.send_json_to({"type": "resume", "message_id": message_id, "offset": 6})
    frames = await frames_until_end(later)
    assert frames[0]["type"] == "start"
    assert [(f["chunk"], f["offset"]) for f in frames if f["type"] == "chunk"] == [("wörld 👋", 13)]
    assert frames[-1]["status"] == "complete"


async def test_socket_joining_mid_reply_resumes_without_gaps_or_duplicates(
    open_socket, user, conversation, scripted
):
    scripted(chunks=[f"w{i} " for i in range(30)], delay=0.02)
    first, _, _ = await open_socket(conversation, user)
    await first.send_json_to({"type": "message", "content": "Count"})
    while (await first.receive_json_from(5))["type"] != "chunk":
        pass
    late, _, _ = await open_socket(conversation, user)
    await asyncio.sleep(0.1)  # live chunks reach the late socket's watch meanwhile
    await late.send_json_to(
        {"type": "resume", "message_id": get_engine().running_in(str(conversation.pk)).message_id}
    )
    frames = await frames_until_end(late)
    expected = "".join(f"w{i} " for i in range(30))
    assert frames[0]["type"] == "start"
    assert text_of(frames) == expected
    offsets = [f["offset"] for f in frames if f["type"] == "chunk"]
    assert offsets == sorted(set(offsets))
    assert offsets[-1] == len(expected)
    assert frames[-1]["status"] == "complete"
    assert text_of(await frames_until_end(first)) != ""


async def test_resume_while_streaming_on_the_same_socket_restarts_from_the_offset(
    open_socket, user, conversation, scripted
):
    scripted(chunks=[f"t{i} " for i in range(20)], delay=0.02)
    socket, _, _ = await open_socket(conversation, user)
    await socket.send_json_to({"type": "message", "content": "Go"})
    frames = []
    while sum(f["type"] == "chunk" for f in frames) < 3:
        frames.append(await socket.receive_json_from(5))
    message_id = frames[-1]["message_id"]
    await socket.send_json_to({"type": "resume", "message_id": message_id, "offset": 3})
    after = await frames_until_end(socket)
    expected = "".join(f"t{i} " for i in range(20))
    # Whatever the watch sent before the resume, the resumed part is exact from offset 3.
    resumed = after[next(i for i, f in enumerate(after) if f["type"] == "start") :]
    assert text_of(resumed) == expected[3:]
    assert sum(f["type"] == "done" for f in after) == 1


async def test_disconnect_does_not_cancel_and_leaves_no_watcher(
    open_socket, user, conversation, scripted
):
    scripted(chunks=["a", "b", "c", "d"], delay=0.05)
    socket, _, _ = await open_socket(conversation, user)
    await socket.send_json_to({"type": "message", "content": "Hi"})
    while (await socket.receive_json_from(5))["type"] != "chunk":
        pass
    message_id = get_engine().running_in(str(conversation.pk)).message_id
    await socket.disconnect()
    assert get_engine().watchers == {}
    stored = await wait_for_end(message_id)
    assert stored.status == "complete"
    assert stored.content == "abcd"


async def test_events_from_other_processes_arrive_through_the_group_once(
    open_socket, user, conversation
):
    socket, _, _ = await open_socket(conversation, user)
    layer = get_channel_layer()
    group = bridge.conversation_group(conversation.pk)

    async def publish(event: dict[str, Any], origin: str = "other-process") -> None:
        await layer.group_send(group, {"type": "chat.event", "origin": origin, "event": event})

    cid = str(conversation.pk)
    await publish({"type": "start", "message_id": 99, "conversation_id": cid, "model": "m"})
    await publish({"type": "chunk", "message_id": 99, "chunk": "Hello", "offset": 5})
    await publish({"type": "chunk", "message_id": 99, "chunk": "Hello", "offset": 5})
    await publish({"type": "chunk", "message_id": 99, "chunk": "lo there", "offset": 11})
    await publish({"type": "chunk", "message_id": 99, "chunk": "ignored", "offset": 3}, WORKER_ID)
    done = {
        "type": "done",
        "message_id": 99,
        "status": "complete",
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    await publish(done)
    await publish(done)
    frames = await frames_until_end(socket)
    assert [f["type"] for f in frames] == ["start", "chunk", "chunk", "done"]
    assert [(f["chunk"], f["offset"]) for f in frames[1:3]] == [("Hello", 5), (" there", 11)]
    assert await socket.receive_nothing(0.1)


async def test_sockets_open_no_database_connection_of_their_own(open_socket, user, conversation):
    """Auth and the ownership check run on the engine's reading thread (connection kept open).

    Channels' own ``AuthMiddleware`` opened and closed a connection for every socket.
    """
    headers = [ORIGIN, (b"cookie", await session_cookie(user))]
    _, connected, _ = await open_socket(conversation, headers=headers)  # warms the thread
    assert connected
    opened: list[str] = []

    def count(sender: Any, connection: Any, **kwargs: Any) -> None:
        opened.append(threading.current_thread().name)

    connection_created.connect(count)
    try:
        for _ in range(3):
            socket, connected, _ = await open_socket(conversation, headers=headers)
            assert connected
            await socket.disconnect()
    finally:
        connection_created.disconnect(count)
    assert opened == []
