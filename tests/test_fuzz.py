"""Property-based fuzzing of the message endpoints and the WebSocket (hypothesis).

Random Unicode (control characters and lone surrogates included), huge strings, random
and deeply nested JSON, and raw bytes: the answer is always a 2xx or a 4xx, never a 5xx
(on the socket: an ``error`` frame or a normal reply, never a crashed consumer), and a
refusal stores nothing.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import AsyncClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chat.engine import get_engine
from chat.models import Conversation, Message
from chatsite.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Every code point, lone surrogates and control characters included.
any_text = st.text(st.characters(exclude_categories=()), max_size=200)
tricky_text = st.one_of(
    any_text,
    st.text(
        st.sampled_from("\x00\x01\x1b\x7f\u200b\u202e\ufeff\ud800\udfff\n\r\t<>&\"'"), max_size=50
    ),
    st.integers(0, 40_000).map(lambda n: "é" * n),  # around MAX_MESSAGE_LENGTH
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(any_text, inner, max_size=5),
    max_leaves=30,
)
deeply_nested = st.integers(1, 50_000).map(lambda depth: "[" * depth + "]" * depth)


def encode(value: Any) -> bytes:
    """JSON as a client would send it (lone surrogates as \\u escapes)."""
    return json.dumps(value).encode()


bodies = st.one_of(
    tricky_text.map(lambda text: encode({"content": text})),
    json_values.map(lambda value: encode({"content": value})),
    json_values.map(encode),
    deeply_nested.map(str.encode),
    deeply_nested.map(lambda nest: f'{{"content": {nest}}}'.encode()),
    st.binary(max_size=300),
    st.integers(0, 3_000_000).map(lambda n: b'{"content": "' + b"a" * n + b'"}'),
)


@pytest.fixture
def fast_replies(settings: Any) -> None:
    """Replies that end at once, and no per-minute limit (the fuzzer sends many)."""
    settings.CHAT = {
        **settings.CHAT,
        "PROVIDER": "locmem",
        "PROVIDER_OPTIONS": {"chunks": ["ok"]},
        "MESSAGES_PER_MINUTE": None,
    }


@pytest.fixture
def user() -> Any:
    return get_user_model().objects.create_user("fuzzer", password="pw")


@pytest.fixture
def conversation(user: Any) -> Conversation:
    return Conversation.objects.create(owner=user, model="claude-sonnet-4-5")


async def settle() -> None:
    """Let any reply started by an example end, so the next example starts clean."""
    for generation in list(get_engine().generations.values()):
        if generation.task is not None:
            await generation.task


@FUZZ
@given(body=bodies, event_stream=st.booleans())
async def test_posting_any_body_is_never_a_server_error(
    fast_replies: None, user: Any, conversation: Conversation, body: bytes, event_stream: bool
) -> None:
    client = AsyncClient()
    await client.aforce_login(user)
    before = await Message.objects.acount()
    headers = {"accept": "text/event-stream"} if event_stream else {}
    response = await client.post(
        f"/api/conversations/{conversation.pk}/messages/",
        body,
        content_type="application/json",
        headers=headers,
    )
    if response.streaming:
        async for _ in response.streaming_content:
            pass
    await settle()
    assert response.status_code < 500, response.content[:300]
    stored = await Message.objects.acount() - before
    assert stored == (2 if response.status_code < 300 else 0)


@FUZZ
@given(
    message_id=st.integers(-(2**70), 2**70),
    offset=st.one_of(any_text, st.integers().map(str)),
    last_event_id=st.none() | any_text.filter(lambda t: t.isprintable() and t.isascii()),
)
@example(message_id=0, offset="\ud800", last_event_id=None)  # a lone surrogate (once failed here)
async def test_following_and_cancelling_any_id_is_never_a_server_error(
    fast_replies: None, user: Any, message_id: int, offset: str, last_event_id: str | None
) -> None:
    client = AsyncClient()
    await client.aforce_login(user)
    before = await Message.objects.acount()
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    # Encoded by hand: a lone surrogate cannot be UTF-8 encoded by the test client, but its
    # bytes (invalid UTF-8, percent-escaped) are what a client could send in its place.
    query = urlencode({"offset": offset.encode("utf-8", "surrogatepass")})
    for response in (
        await client.get(f"/api/messages/{message_id}/stream/?{query}", headers=headers),
        await client.post(f"/api/messages/{message_id}/cancel/"),
    ):
        if response.streaming:
            async for _ in response.streaming_content:
                pass
        assert response.status_code < 500
    assert await Message.objects.acount() == before


frames = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["message", "cancel", "resume", "bogus"])},
        optional={
            "content": json_values | tricky_text,
            "text": json_values,
            "message_id": json_values | st.integers(-(2**70), 2**70),
            "offset": json_values | st.integers(-(2**70), 2**70),
        },
    ).map(json.dumps),
    json_values.map(json.dumps),
    deeply_nested,
    # A real text frame is valid UTF-8 (the server checks): no lone surrogates here.
    st.text(st.characters(), max_size=200),
)


async def session_cookie(user: Any) -> bytes:
    client = AsyncClient()
    await client.aforce_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}".encode()


@FUZZ
@given(frame=frames, binary=st.booleans())
async def test_any_websocket_frame_gets_an_answer_not_a_crash(
    fast_replies: None, user: Any, conversation: Conversation, frame: str, binary: bool
) -> None:
    headers = [(b"origin", b"http://testserver"), (b"cookie", await session_cookie(user))]
    socket = WebsocketCommunicator(
        application, f"/ws/conversations/{conversation.pk}/", headers=headers
    )
    connected, _ = await socket.connect(timeout=5)
    assert connected
    before = await Message.objects.acount()
    try:
        kind = "bytes" if binary else "text"
        await socket.send_input(
            {"type": "websocket.receive", kind: frame.encode() if binary else frame}
        )
        answers = []
        while not await socket.receive_nothing(timeout=0.2, interval=0.02):
            answers.append(await socket.receive_output(timeout=1))
        await settle()
        # The consumer is still alive: a well-formed frame still gets its answer.
        await socket.send_to(text_data='{"type": "bogus"}')
        answer = json.loads((await socket.receive_output(timeout=5))["text"])
        while answer.get("type") != "error" or answer.get("message_id") is not None:
            answer = json.loads((await socket.receive_output(timeout=5))["text"])
        assert answer["error"]["type"] == "invalid_request"
    finally:
        await socket.disconnect()
    closes = [a for a in answers if a["type"] == "websocket.close"]
    assert not closes, closes
    texts = [json.loads(a["text"]) for a in answers if a.get("text")]
    refused = [t for t in texts if t["type"] == "error" and t.get("message_id") is None]
    stored = await Message.objects.acount() - before
    if refused:
        assert stored == 0, refused
    assert stored in (0, 2)
