"""Several server processes, one conversation: PostgreSQL + Redis shared, real Daphne processes.

Run only when DATABASE_URL is PostgreSQL and REDIS_URL is set (CI's second configuration).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import websockets
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token

from chat.models import Conversation, Message
from chat.testing.fake_anthropic import FakeAnthropicServer
from chat.testing.live_server import LiveServer, parse_sse, start_daphne

pytestmark = [
    pytest.mark.needs_postgres,
    pytest.mark.needs_redis,
    pytest.mark.django_db(transaction=True),
]

LEASE_SECONDS = 4.0


def server_env(fake: FakeAnthropicServer) -> dict[str, str]:
    from django.conf import settings

    db = connection.settings_dict
    return {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CHAT_PROVIDER": "anthropic",
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": fake.base_url,
        "CHAT_FLUSH_INTERVAL": "0.2",
        "CHAT_LEASE_SECONDS": str(LEASE_SECONDS),
        "CHAT_SHUTDOWN_GRACE_SECONDS": "3",
    }


@pytest.fixture
def servers(fake_anthropic: FakeAnthropicServer) -> Iterator[tuple[LiveServer, LiveServer]]:
    env = server_env(fake_anthropic)
    a = start_daphne(env=env)
    try:
        b = start_daphne(env=env)
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


@pytest.fixture
def owner() -> dict[str, Any]:
    user = get_user_model().objects.create_user("alice", password="pw")
    conversation = Conversation.objects.create(owner=user, model="claude-sonnet-4-5")
    token = Token.objects.create(user=user)
    return {"user": user, "conversation": conversation, "auth": f"Token {token.key}"}


def auth_headers(owner: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": owner["auth"]}


async def post_message(server: LiveServer, owner: dict[str, Any], content: str) -> dict[str, Any]:
    async with httpx2.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.post(
            f"/api/conversations/{owner['conversation'].pk}/messages/",
            json={"content": content},
            headers=auth_headers(owner),
        )
    assert response.status_code == 201, response.text
    return response.json()


async def follow_sse(
    server: LiveServer, owner: dict[str, Any], message_id: int, offset: int | None = None
) -> list[Any]:
    headers = auth_headers(owner)
    if offset is not None:
        headers["Last-Event-ID"] = str(offset)
    async with (
        httpx2.AsyncClient(base_url=server.url, timeout=30) as client,
        client.stream("GET", f"/api/messages/{message_id}/stream/", headers=headers) as response,
    ):
        assert response.status_code == 200
        body = "".join([part async for part in response.aiter_text()])
    return parse_sse(body)


def chunk_text(frames: list[Any]) -> str:
    return "".join(f.json()["chunk"] for f in frames if f.event is None and f.id is not None)


async def wait_status(message_id: int, statuses: set[str], within: float) -> Message:
    deadline = time.monotonic() + within
    while True:
        message = await Message.objects.aget(pk=message_id)
        if message.status in statuses or time.monotonic() > deadline:
            return message
        await asyncio.sleep(0.1)


async def wait_for_text(message_id: int, within: float = 20) -> None:
    """Until some of the reply is stored (the server has really begun streaming it)."""
    deadline = time.monotonic() + within
    while not (await Message.objects.aget(pk=message_id)).content:
        assert time.monotonic() < deadline, "the reply never started streaming"
        await asyncio.sleep(0.1)


async def test_websocket_on_a_sees_reply_started_on_b(servers, owner):
    a, b = servers
    url = f"{a.ws_url}/ws/conversations/{owner['conversation'].pk}/"
    headers = {"Origin": "http://127.0.0.1", "Authorization": owner["auth"]}
    async with websockets.connect(url, additional_headers=headers) as ws:
        await asyncio.sleep(0.3)  # let A's consumer join the conversation group
        started = await post_message(b, owner, "hello [fake tokens=40 tps=40]")
        mid = started["assistant_message"]["id"]
        text, offsets, kinds = "", [], []
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
            kinds.append(frame["type"])
            if frame["type"] == "chunk" and frame["message_id"] == mid:
                text += frame["chunk"]
                offsets.append(frame["offset"])
            if frame["type"] in ("done", "error"):
                break
    assert frame["type"] == "done"
    assert "message" in kinds
    assert "start" in kinds
    assert offsets == sorted(offsets)
    assert len(offsets) > 1  # arrived live, in pieces
    stored = await Message.objects.aget(pk=mid)
    assert text == stored.content
    assert len(text) == offsets[-1]


async def test_sse_on_a_follows_and_resumes_reply_on_b(servers, owner):
    a, b = servers
    started = await post_message(b, owner, "hi [fake tokens=60 tps=60]")
    mid = started["assistant_message"]["id"]
    await asyncio.sleep(0.4)
    live, resumed = await asyncio.gather(follow_sse(a, owner, mid), follow_sse(a, owner, mid, 5))
    stored = await Message.objects.aget(pk=mid)
    assert stored.status == "complete", b.log() + "\n=====A\n" + a.log()
    assert chunk_text(live) == stored.content
    assert chunk_text(resumed) == stored.content[5:]
    assert live[-2].event == "done"
    assert live[-1].data == "[DONE]"


async def test_cancel_on_a_stops_generation_on_b(servers, owner, fake_anthropic):
    a, b = servers
    started = await post_message(b, owner, "go [fake tokens=400 tps=40]")
    mid = started["assistant_message"]["id"]
    await wait_for_text(mid)
    async with httpx2.AsyncClient(base_url=a.url, timeout=10) as client:
        response = await client.post(f"/api/messages/{mid}/cancel/", headers=auth_headers(owner))
    assert response.status_code == 202
    message = await wait_status(mid, {"cancelled"}, within=10)
    assert message.status == "cancelled", b.log() + "\n=====A\n" + a.log()
    assert len(message.content) > 0
    assert await fake_anthropic.wait_for_disconnect(within=5)
    assert fake_anthropic.last_request.client_disconnected


async def test_killed_process_leaves_reply_interrupted(servers, owner):
    a, b = servers
    started = await post_message(b, owner, "go [fake tokens=400 tps=40]")
    mid = started["assistant_message"]["id"]
    follower = asyncio.create_task(follow_sse(a, owner, mid))
    await wait_for_text(mid)
    b.process.send_signal(signal.SIGKILL)
    frames = await asyncio.wait_for(follower, 30)
    error = next(f for f in frames if f.event == "error")
    assert error.json()["error"]["type"] == "interrupted"
    assert frames[-1].data == "[DONE]"
    message = await Message.objects.aget(pk=mid)
    assert message.status == "interrupted"
    assert message.content  # the text stored before the kill is kept
    assert chunk_text(frames).startswith(message.content)


async def test_sigterm_ends_generations_within_bounded_time(servers, owner):
    _a, b = servers
    started = await post_message(b, owner, "go [fake tokens=400 tps=40]")
    mid = started["assistant_message"]["id"]
    await wait_for_text(mid)
    begun = time.monotonic()
    b.process.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(b.process.wait, 15)
    except Exception:
        raise AssertionError(b.log()) from None
    assert time.monotonic() - begun < 12
    message = await Message.objects.aget(pk=mid)
    assert message.status in {"complete", "interrupted"}
    assert message.content
