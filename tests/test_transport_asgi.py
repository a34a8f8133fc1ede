"""Progressive delivery through the real ASGI stack (chatsite.asgi), with the real SDK.

``ApplicationCommunicator`` drives ``chatsite.asgi.application`` like a server would,
including the client's ``http.disconnect``; the reply comes from the fake Anthropic
server through the anthropic provider.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from rest_framework.authtoken.models import Token

from chat.engine import get_engine
from chat.models import Conversation, Message
from chat.testing.fake_anthropic import FakeAnthropicServer
from chat.testing.live_server import parse_sse
from chatsite.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def token(user) -> str:
    return Token.objects.create(user=user).key


def http_scope(method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    """An ASGI HTTP scope as Daphne would build it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def post_event_stream(conversation: Conversation, token: str, content: str):
    """Send a message asking for the reply's event stream; returns the communicator."""
    body = json.dumps({"content": content}).encode()
    headers = {
        "host": "testserver",
        "authorization": f"Token {token}",
        "accept": "text/event-stream",
        "content-type": "application/json",
        "content-length": str(len(body)),
    }
    path = f"/api/conversations/{conversation.pk}/messages/"
    communicator = ApplicationCommunicator(application, http_scope("POST", path, headers))
    await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await communicator.receive_output(5)
    assert start["type"] == "http.response.start"
    assert start["status"] == 200
    assert dict(start["headers"])[b"Content-Type"].startswith(b"text/event-stream")
    return communicator


async def next_body(communicator: ApplicationCommunicator) -> bytes:
    message = await communicator.receive_output(5)
    assert message["type"] == "http.response.body"
    return message.get("body", b"")


async def wait_for_generation_end(message_id: int) -> None:
    async with asyncio.timeout(10):
        while message_id in get_engine().generations:  # noqa: ASYNC110 - another task's state
            await asyncio.sleep(0.01)


async def test_first_chunk_arrives_before_the_upstream_finished(
    anthropic_settings: FakeAnthropicServer, conversation, token
):
    communicator = await post_event_stream(conversation, token, "Hello [fake tokens=20 tps=20]")
    received = b""
    while b"id:" not in received:
        received += await next_body(communicator)
    upstream = anthropic_settings.last_request
    assert not upstream.completed
    assert len(upstream.sent) < 20  # (its record of a token may lag the socket write)
    while not received.endswith(b"data: [DONE]\n\n"):
        received += await next_body(communicator)
    assert (await communicator.receive_output(5)) == {"type": "http.response.body"}
    frames = parse_sse(received.decode())
    text = "".join(f.json()["chunk"] for f in frames if f.id is not None)
    assert text == upstream.sent_text
    assert text.startswith("Echo: Hello")
    assert frames[-2].event == "done"
    assert frames[-2].json()["usage"]["output_tokens"] == 20
    await communicator.wait(5)


async def test_chunks_leave_the_stack_one_write_each_as_they_are_made(
    anthropic_settings: FakeAnthropicServer, conversation, token
):
    communicator = await post_event_stream(conversation, token, "Hi [fake tokens=8 tps=25]")
    arrivals: list[tuple[float, bytes]] = []
    while True:
        body = await next_body(communicator)
        if not body:
            break
        arrivals.append((time.time(), body))
    chunk_writes = [(t, b) for t, b in arrivals if b.startswith(b"id:")]
    assert len(chunk_writes) == 8  # one body message per chunk frame
    last_sent = anthropic_settings.last_request.sent[-1][1]
    # Relayed as they come: most chunks left the stack before the upstream's last token.
    assert sum(arrived < last_sent for arrived, _ in chunk_writes) >= 4
    await communicator.wait(5)


async def test_disconnect_mid_stream_lets_the_reply_finish_with_no_task_left(
    anthropic_settings: FakeAnthropicServer, conversation, token
):
    communicator = await post_event_stream(conversation, token, "Bye [fake tokens=15 tps=30]")
    received = b""
    while b"id:" not in received:
        received += await next_body(communicator)
    message_id = parse_sse(received.decode())[1].json()["message_id"]
    generation = get_engine().generations[message_id]
    assert len(generation.subscribers) == 1
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(5)  # the view's iterator was cancelled; the app returned
    assert generation.subscribers == set()
    assert not anthropic_settings.last_request.completed  # the reply is still running
    await wait_for_generation_end(message_id)
    stored = await Message.objects.aget(pk=message_id)
    assert stored.status == "complete"
    assert stored.content == anthropic_settings.last_request.sent_text
    assert len(anthropic_settings.last_request.sent) == 15
    assert anthropic_settings.disconnects == 0
    # The cross-process bridge (with REDIS_URL) keeps two tasks for the process's life:
    # stop it, then nothing of the request or the reply may be left running.
    await get_engine().close_bridge()
    await asyncio.sleep(0)  # let finished tasks be collected
    assert asyncio.all_tasks() == {asyncio.current_task()}
