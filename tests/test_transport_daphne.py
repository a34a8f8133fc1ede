"""Both transports through a real Daphne server (a subprocess on a free loopback port)."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import httpx2
import psutil
import pytest
import websockets
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from chat.models import Conversation, Message
from chat.testing.fake_anthropic import FakeAnthropicServer
from chat.testing.live_server import parse_sse

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def owner() -> dict[str, Any]:
    user = get_user_model().objects.create_user("alice", password="pw")
    conversation = Conversation.objects.create(owner=user, model="claude-sonnet-4-5")
    token = Token.objects.create(user=user)
    return {"conversation": conversation, "headers": {"Authorization": f"Token {token.key}"}}


def ws_url(base: str, conversation: Conversation) -> str:
    return f"ws{base.removeprefix('http')}/ws/conversations/{conversation.pk}/"


async def test_sse_chunks_arrive_spread_over_the_reply(
    anthropic_settings: FakeAnthropicServer, daphne_server: str, owner
):
    conversation = owner["conversation"]
    arrivals: list[float] = []
    received = b""
    async with (
        httpx2.AsyncClient(base_url=daphne_server, timeout=20) as client,
        client.stream(
            "POST",
            f"/api/conversations/{conversation.pk}/messages/",
            json={"content": "Hello [fake tokens=20 tps=20]"},
            headers={**owner["headers"], "Accept": "text/event-stream"},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        async for part in response.aiter_raw():
            received += part
            # Writes hold whole frames; only chunk frames have an "id: " line here.
            arrivals += [time.time()] * part.count(b"id: ")
    frames = parse_sse(received.decode())
    upstream = anthropic_settings.last_request
    text = "".join(f.json()["chunk"] for f in frames if f.id is not None)
    assert text == upstream.sent_text
    assert frames[-1].data == "[DONE]"
    assert len(arrivals) == 20
    last_sent = upstream.sent[-1][1]
    # Spread over the reply: most chunks reached the client before the upstream's last token.
    assert arrivals[0] < upstream.sent[5][1]
    assert sum(arrival < last_sent for arrival in arrivals) >= 10
    stored = await Message.objects.aget(pk=frames[1].json()["message_id"])
    assert stored.content == text


async def test_websocket_chat_through_daphne(
    anthropic_settings: FakeAnthropicServer, daphne_server: str, owner
):
    headers = {**owner["headers"], "Origin": "http://127.0.0.1"}
    async with websockets.connect(
        ws_url(daphne_server, owner["conversation"]), additional_headers=headers
    ) as ws:
        await ws.send(json.dumps({"type": "message", "content": "Hi [fake tokens=12 tps=40]"}))
        frames = []
        while not frames or frames[-1]["type"] not in ("done", "error"):
            frames.append(json.loads(await ws.recv()))
    assert [f["type"] for f in frames[:2]] == ["message", "start"]
    chunks = [f for f in frames if f["type"] == "chunk"]
    assert len(chunks) == 12
    assert "".join(c["chunk"] for c in chunks) == anthropic_settings.last_request.sent_text
    assert frames[-1]["status"] == "complete"


async def test_websocket_refusals_reach_the_client_as_close_codes(daphne_server: str, owner):
    url = ws_url(daphne_server, owner["conversation"])
    async with websockets.connect(url, additional_headers={"Origin": "http://127.0.0.1"}) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4401
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(url, additional_headers={"Origin": "https://evil.example"})
    assert refused.value.response.status_code == 403


async def test_frame_over_daphnes_limit_closes_with_1009_and_within_it_gets_an_error(
    anthropic_settings: FakeAnthropicServer, daphne_server: str, owner
):
    headers = {**owner["headers"], "Origin": "http://127.0.0.1"}
    url = ws_url(daphne_server, owner["conversation"])
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        await ws.send(json.dumps({"type": "message", "content": "x" * 32_001}))
        error = json.loads(await ws.recv())
        assert error["error"]["type"] == "invalid_request"
        assert "limit is 32000" in error["error"]["message"]
        await ws.send(json.dumps({"type": "message", "content": "x" * (1024 * 1024)}))
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
    # Daphne fails the connection with 1009 ("message too big") as soon as it reads the
    # frame header; a client still writing the payload may see the reset (1006) instead.
    assert ws.close_code in (1009, 1006)
    assert await Message.objects.acount() == 0


async def test_open_event_streams_do_not_hold_a_thread_each(
    anthropic_settings: FakeAnthropicServer, daphne_server, owner
):
    process = psutil.Process(daphne_server.server.pid)
    async with httpx2.AsyncClient(base_url=daphne_server, timeout=20) as client:
        started = await client.post(
            f"/api/conversations/{owner['conversation'].pk}/messages/",
            json={"content": "Long [fake tokens=200 tps=20]"},
            headers=owner["headers"],
        )
        stream_url = started.json()["stream_url"]
        async with contextlib.AsyncExitStack() as streams:
            first = await streams.enter_async_context(
                client.stream("GET", stream_url, headers=owner["headers"])
            )
            await anext(first.aiter_raw())
            before = process.num_threads()
            for _ in range(10):
                response = await streams.enter_async_context(
                    client.stream("GET", stream_url, headers=owner["headers"])
                )
                await anext(response.aiter_raw())
            during = process.num_threads()
        await client.post(
            f"/api/messages/{started.json()['assistant_message']['id']}/cancel/",
            headers=owner["headers"],
        )
    # Django's per-request thread is let go once a stream starts (chat.threads).
    assert during - before < 5
