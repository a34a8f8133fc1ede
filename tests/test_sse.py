"""The SSE transport through Django's AsyncClient: frames, follow, replay, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from django.test import AsyncClient

from chat.engine import get_engine
from chat.models import Conversation, Message
from chat.testing.live_server import SSEFrame, parse_sse

pytestmark = pytest.mark.django_db(transaction=True)

SSE = {"accept": "text/event-stream"}


@pytest.fixture
async def client(user) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(user)
    return client


def messages_url(conversation: Conversation) -> str:
    return f"/api/conversations/{conversation.pk}/messages/"


async def read_stream(response) -> tuple[list[bytes], list[SSEFrame]]:
    """Every write of a streaming response, and the frames they make up."""
    writes = [bytes(part) async for part in response.streaming_content]
    return writes, parse_sse(b"".join(writes).decode())


async def send(client: AsyncClient, conversation: Conversation, content: Any, **headers: str):
    return await client.post(
        messages_url(conversation), {"content": content}, "application/json", headers=headers
    )


def chunk_frames(frames: list[SSEFrame]) -> list[SSEFrame]:
    return [f for f in frames if f.event is None and f.id is not None]


def text_of(frames: list[SSEFrame]) -> str:
    return "".join(f.json()["chunk"] for f in chunk_frames(frames))


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` on the event loop until it holds (5 s at most)."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - state of another task, no event to await
            await asyncio.sleep(0.005)


async def wait_for_end(message_id: int) -> Message:
    """Wait until the engine has finished a reply, and return the stored message."""
    for _ in range(500):
        if message_id not in get_engine().generations:
            break
        await asyncio.sleep(0.01)
    return await Message.objects.aget(pk=message_id)


async def test_post_answers_201_with_both_messages_and_stream_url(client, conversation, scripted):
    response = await send(client, conversation, "Hi there")
    assert response.status_code == 201
    body = response.json()
    assert body["user_message"]["role"] == "user"
    assert body["user_message"]["content"] == "Hi there"
    assistant = body["assistant_message"]
    assert assistant["role"] == "assistant"
    assert assistant["status"] == "streaming"
    assert body["stream_url"] == f"/api/messages/{assistant['id']}/stream/"
    stored = await wait_for_end(assistant["id"])
    assert stored.status == "complete"
    assert stored.content == "Hello wörld 👋"


async def test_stream_frames_in_order_with_offsets_as_ids(client, conversation, scripted):
    body = (await send(client, conversation, "Hi")).json()
    response = await client.get(body["stream_url"])
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"
    writes, frames = await read_stream(response)
    message_id = body["assistant_message"]["id"]
    assert frames[0].fields == {"retry": "3000"}
    assert frames[1].event == "start"
    assert frames[1].json() == {
        "message_id": message_id,
        "conversation_id": str(conversation.pk),
        "model": "claude-sonnet-4-5",
    }
    chunks = chunk_frames(frames)
    assert [f.id for f in chunks] == ["3", "6", "13"]
    assert [f.json() for f in chunks] == [
        {"chunk": "Hel"},
        {"chunk": "lo "},
        {"chunk": "wörld 👋"},
    ]
    assert frames[-2].event == "done"
    assert frames[-2].json()["status"] == "complete"
    assert frames[-2].json()["message_id"] == message_id
    assert frames[-2].json()["stop_reason"] == "end_turn"
    assert set(frames[-2].json()["usage"]) == {"input_tokens", "output_tokens"}
    assert frames[-1].data == "[DONE]"
    # Each frame leaves the view as its own write (nothing coalesced or buffered).
    assert len(writes) == len(frames)


async def test_post_with_accept_event_stream_streams_the_reply(client, conversation, scripted):
    response = await send(client, conversation, "Hi", **SSE)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    _, frames = await read_stream(response)
    assert frames[1].event == "start"
    assert text_of(frames) == "Hello wörld 👋"
    assert [f.event for f in frames[-2:]] == ["done", None]
    assert frames[-1].data == "[DONE]"
    message_id = frames[1].json()["message_id"]
    assert response["X-Message-Id"] == str(message_id)
    stored = await wait_for_end(message_id)
    assert stored.status == "complete"
    assert stored.content == "Hello wörld 👋"


async def test_finished_reply_is_replayed_in_full(client, conversation, scripted):
    body = (await send(client, conversation, "Hi")).json()
    await wait_for_end(body["assistant_message"]["id"])
    _, frames = await read_stream(await client.get(body["stream_url"]))
    assert frames[1].event == "start"
    assert text_of(frames) == "Hello wörld 👋"
    assert chunk_frames(frames)[-1].id == "13"
    assert frames[-2].event == "done"
    assert frames[-2].json()["status"] == "complete"
    assert frames[-1].data == "[DONE]"


@pytest.mark.parametrize("how", ["query", "last-event-id"])
async def test_finished_reply_followed_from_an_offset(client, conversation, scripted, how):
    body = (await send(client, conversation, "Hi")).json()
    await wait_for_end(body["assistant_message"]["id"])
    if how == "query":
        response = await client.get(body["stream_url"] + "?offset=6")
    else:
        response = await client.get(body["stream_url"], headers={"Last-Event-ID": "6"})
    _, frames = await read_stream(response)
    assert text_of(frames) == "wörld 👋"
    assert chunk_frames(frames)[-1].id == "13"
    assert frames[-1].data == "[DONE]"


async def test_last_event_id_wins_over_the_offset_parameter(client, conversation, scripted):
    body = (await send(client, conversation, "Hi")).json()
    await wait_for_end(body["assistant_message"]["id"])
    response = await client.get(body["stream_url"] + "?offset=0", headers={"Last-Event-ID": "3"})
    _, frames = await read_stream(response)
    assert text_of(frames) == "lo wörld 👋"


async def test_live_reply_followed_from_an_offset_mid_stream(client, conversation, scripted):
    scripted(chunks=["one ", "two ", "three ", "four ", "five"], delay=0.05)
    body = (await send(client, conversation, "Count")).json()
    message_id = body["assistant_message"]["id"]
    generation = get_engine().generations[message_id]
    await wait_until(lambda: generation.length >= len("one two "))
    _, frames = await read_stream(await client.get(body["stream_url"] + "?offset=4"))
    assert text_of(frames) == "two three four five"
    assert chunk_frames(frames)[-1].id == str(len("one two three four five"))
    assert frames[-2].json()["status"] == "complete"


async def test_follower_who_disconnects_leaves_no_queue_and_the_reply_completes(
    client, conversation, scripted
):
    scripted(chunks=["a", "b", "c", "d", "e"], delay=0.03)
    body = (await send(client, conversation, "Hi")).json()
    message_id = body["assistant_message"]["id"]
    generation = get_engine().generations[message_id]
    response = await client.get(body["stream_url"])
    first_chunk = asyncio.Event()

    async def consume() -> None:
        async for part in response.streaming_content:
            if b"id:" in part:
                first_chunk.set()

    # Django cancels the task sending the response when the client goes away.
    consumer = asyncio.create_task(consume())
    await first_chunk.wait()
    assert len(generation.subscribers) == 1
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert generation.subscribers == set()
    stored = await wait_for_end(message_id)
    assert stored.status == "complete"
    assert stored.content == "abcde"


async def test_pings_while_idle_do_not_disturb_the_stream(client, conversation, scripted, settings):
    settings.CHAT = {**settings.CHAT, "SSE_PING_SECONDS": 0.02}
    scripted(chunks=["slow ", "but ", "steady"], delay=0.15)
    _, frames = await read_stream(await send(client, conversation, "Hi", **SSE))
    pings = [f for f in frames if f.comment == "ping"]
    assert len(pings) >= 3
    first_chunk = frames.index(chunk_frames(frames)[0])
    assert any(f.comment == "ping" for f in frames[first_chunk:])
    assert text_of(frames) == "slow but steady"
    assert [f.id for f in chunk_frames(frames)] == ["5", "9", "15"]
    assert frames[-1].data == "[DONE]"


async def test_cancel_keeps_partial_text_and_ends_the_stream(client, conversation, scripted):
    scripted(chunks=["a", "b", "c", "d", "e", "f", "g", "h"], delay=0.1)
    body = (await send(client, conversation, "Hi")).json()
    message_id = body["assistant_message"]["id"]
    response = await client.get(body["stream_url"])
    stream = aiter(response.streaming_content)
    received = b""
    while b"id:" not in received:
        received += await anext(stream)
    cancel = await client.post(f"/api/messages/{message_id}/cancel/")
    assert cancel.status_code == 202
    assert cancel.json() == {"message_id": message_id, "status": "streaming"}
    received += b"".join([part async for part in stream])
    frames = parse_sse(received.decode())
    assert frames[-2].event == "done"
    assert frames[-2].json()["status"] == "cancelled"
    assert frames[-1].data == "[DONE]"
    stored = await wait_for_end(message_id)
    assert stored.status == "cancelled"
    assert stored.content == text_of(frames)
    assert 1 <= len(stored.content) < 8
    again = await client.post(f"/api/messages/{message_id}/cancel/")
    assert again.status_code == 202
    assert again.json() == {"message_id": message_id, "status": "cancelled"}


async def test_next_message_is_accepted_as_soon_as_the_stream_ended(client, conversation, scripted):
    for prompt in ("first", "second", "third"):
        response = await send(client, conversation, prompt, **SSE)
        _, frames = await read_stream(response)
        assert frames[-2].event == "done"
    count = await Message.objects.filter(conversation=conversation).acount()
    assert count == 6


async def test_upstream_failure_arrives_as_an_error_event(client, conversation, scripted):
    scripted(chunks=["par", "tial", "never"], delay=0.01, fail_after=2, error="overloaded_error")
    _, frames = await read_stream(await send(client, conversation, "Hi", **SSE))
    assert text_of(frames) == "partial"
    error = frames[-2]
    assert error.event == "error"
    message_id = frames[1].json()["message_id"]
    assert error.json() == {
        "message_id": message_id,
        "error": {
            "type": "overloaded_error",
            "message": "The model is overloaded right now. Try again in a moment.",
        },
    }
    assert frames[-1].data == "[DONE]"
    stored = await wait_for_end(message_id)
    assert stored.status == "error"
    assert stored.content == "partial"
    assert stored.error_type == "overloaded_error"
    user_message = await Message.objects.filter(conversation=conversation, role="user").aget()
    assert user_message.content == "Hi"
