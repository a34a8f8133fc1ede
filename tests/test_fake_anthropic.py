"""The fake Anthropic server: wire protocol, scripting, auth, failures and observability."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import anthropic
import httpx2
import pytest

from chat.testing.fake_anthropic import (
    FakeAnthropicServer,
    ScriptError,
    parse_directive,
    reply_tokens,
    tokenize,
)

STREAM_ORDER = ["message_start", "content_block_start", "ping"]
END_ORDER = ["content_block_stop", "message_delta", "message_stop"]


def body(prompt: str = "hello", *, stream: bool = True) -> dict[str, Any]:
    """A minimal Messages API request body."""
    messages = [{"role": "user", "content": prompt}]
    return {"model": "claude-test", "max_tokens": 100, "messages": messages, "stream": stream}


def parse_sse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, JSON data) for each event of an SSE body."""
    events = []
    for block in data.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line)
        if fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def raw_exchange(port: int, requests: list[bytes]) -> bytes:
    """Send requests one after another on one socket; everything read until EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for request in requests:
        writer.write(request)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


def http_request(payload: dict[str, Any], headers: dict[str, str], close: bool = False) -> bytes:
    """A raw HTTP/1.1 POST /v1/messages."""
    data = json.dumps(payload).encode()
    lines = ["POST /v1/messages HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(data)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += ["Connection: close"] if close else []
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


@pytest.fixture
async def server() -> Any:
    """An in-process fake server on the test's own loop, fast by default."""
    async with FakeAnthropicServer(tps=0) as fake:
        yield fake


@pytest.fixture
async def http(server: FakeAnthropicServer) -> Any:
    """A raw httpx2 client aimed at the fake server."""
    async with httpx2.AsyncClient(base_url=server.base_url) as client:
        yield client


def test_tokenize_round_trips_any_text() -> None:
    text = "  Hi <script>alert('x')</script>\n\n😀 emoji\tand  spaces  "
    tokens = tokenize(text)
    assert "".join(tokens) == text
    assert tokens[:2] == ["  Hi", " <script>alert('x')</script>"]


def test_token_count_without_text_gives_exactly_n_tokens() -> None:
    assert len(reply_tokens("a b c", None, 300)) == 300
    assert reply_tokens("a b c", None, 2) == ["Echo:", " a"]
    assert reply_tokens("ignored", "one two", 5) == ["one", " two", "one", " two", "one"]
    assert "".join(reply_tokens("what is up", None, None)) == "Echo: what is up"


def test_directive_is_parsed_and_removed_from_the_prompt() -> None:
    script, prompt = parse_directive(
        "Tell me\n[fake tokens=30 tps=50 ttft=0.1 fail=drop after=5 text=\"a ]b 'c'\"]\nthanks"
    )
    assert script == {
        "tokens": 30,
        "tps": 50.0,
        "ttft": 0.1,
        "fail": "drop",
        "after": 5,
        "text": "a ]b 'c'",
    }
    assert prompt == "Tell me\n\nthanks"
    assert parse_directive("an [ordinary] bracket") == ({}, "an [ordinary] bracket")
    with pytest.raises(ScriptError):
        parse_directive("[fake tokenz=3]")
    with pytest.raises(ScriptError):
        parse_directive("[fake fail=explode]")


async def test_stream_has_the_real_event_sequence(
    server: FakeAnthropicServer, http: httpx2.AsyncClient
) -> None:
    response = await http.post(
        "/v1/messages",
        json=body("hi [fake tokens=4]"),
        headers={"x-api-key": "k"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.content)
    names = [name for name, _ in events]
    assert names == [*STREAM_ORDER, *["content_block_delta"] * 4, *END_ORDER]
    assert all(data["type"] == name for name, data in events)
    message = events[0][1]["message"]
    assert message["role"] == "assistant" and message["model"] == "claude-test"
    assert message["content"] == [] and message["usage"]["input_tokens"] >= 1
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    deltas = [data for name, data in events if name == "content_block_delta"]
    assert "".join(d["delta"]["text"] for d in deltas) == "Echo: hi lorem ipsum"
    assert [d["sent_at"] for d in deltas] == [t for _, t in server.last_request.sent]
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"] == {"output_tokens": 4}


async def test_non_streaming_reply_and_max_tokens(http: httpx2.AsyncClient) -> None:
    payload = {**body("x [fake tokens=9]", stream=False), "max_tokens": 3}
    response = await http.post("/v1/messages", json=payload, headers={"x-api-key": "k"})
    message = response.json()
    assert message["type"] == "message" and message["id"].startswith("msg_")
    assert message["content"] == [{"type": "text", "text": "Echo: x lorem"}]
    assert message["stop_reason"] == "max_tokens"
    assert message["stop_sequence"] is None
    assert message["usage"]["output_tokens"] == 3


async def test_sdk_parses_stream_with_extra_sent_at_field(server: FakeAnthropicServer) -> None:
    text = "<script>alert('x')</script> 😀 naïve\nline"
    client = anthropic.AsyncAnthropic(api_key="k", base_url=server.base_url, max_retries=0)
    script = json.dumps({"text": text})
    stream = await client.messages.create(
        **body("ignored"),
        extra_headers={"x-fake-script": script},
    )
    received = [e.delta.text async for e in stream if e.type == "content_block_delta"]
    await client.close()
    assert "".join(received) == text
    assert received == tokenize(text)


@pytest.mark.parametrize(
    "auth", [{"x-api-key": "sk-1"}, {"Authorization": "Bearer sk-1"}], ids=["x-api-key", "bearer"]
)
async def test_both_auth_headers_are_accepted(server: FakeAnthropicServer, auth: dict) -> None:
    data = await raw_exchange(server.port, [http_request(body("hi"), auth, close=True)])
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"event: message_stop" in data
    assert data.endswith(b"\r\n0\r\n\r\n")  # chunked, properly terminated


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "x-api-key header is required"),
        ({"x-api-key": "bad-key"}, "invalid x-api-key"),
        ({"Authorization": "Bearer bad-key"}, "invalid x-api-key"),
    ],
)
async def test_rejected_keys_get_the_real_401_shape(
    http: httpx2.AsyncClient, headers: dict[str, str], message: str
) -> None:
    response = await http.post("/v1/messages", json=body(), headers=headers)
    assert response.status_code == 401
    assert response.headers["x-should-retry"] == "false"
    error = response.json()
    assert error["type"] == "error"
    assert error["error"] == {"type": "authentication_error", "message": message}


async def test_valid_key_restricts_keys(
    server: FakeAnthropicServer, http: httpx2.AsyncClient
) -> None:
    server.valid_key = "right"
    wrong = await http.post("/v1/messages", json=body(), headers={"x-api-key": "wrong"})
    right = await http.post("/v1/messages", json=body(), headers={"x-api-key": "right"})
    assert (wrong.status_code, right.status_code) == (401, 200)


async def test_scripted_status_failures(http: httpx2.AsyncClient) -> None:
    headers = {"x-api-key": "k", "x-fake-script": json.dumps({"fail": "429", "retry_after": 7})}
    limited = await http.post("/v1/messages", json=body(), headers=headers)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    overloaded = await http.post(
        "/v1/messages", json=body("[fake fail=overloaded]"), headers=headers
    )
    # The header wins over the directive.
    assert overloaded.status_code == 429
    overloaded = await http.post(
        "/v1/messages", json=body("[fake fail=529]"), headers={"x-api-key": "k"}
    )
    assert overloaded.status_code == 529
    assert overloaded.json()["error"]["type"] == "overloaded_error"


async def test_should_retry_header_is_configurable(
    server: FakeAnthropicServer, http: httpx2.AsyncClient
) -> None:
    server.should_retry = None
    response = await http.post(
        "/v1/messages", json=body("[fake fail=500]"), headers={"x-api-key": "k"}
    )
    assert "x-should-retry" not in response.headers
    response = await http.post(
        "/v1/messages", json=body("[fake fail=500 should_retry=true]"), headers={"x-api-key": "k"}
    )
    assert response.headers["x-should-retry"] == "true"


async def test_bad_requests_get_400(http: httpx2.AsyncClient) -> None:
    missing = await http.post("/v1/messages", json={"model": "m"}, headers={"x-api-key": "k"})
    assert missing.status_code == 400
    assert missing.json()["error"]["type"] == "invalid_request_error"
    typo = await http.post("/v1/messages", json=body("[fake tokenz=1]"), headers={"x-api-key": "k"})
    assert "tokenz" in typo.json()["error"]["message"]
    elsewhere = await http.get("/v1/models", headers={"x-api-key": "k"})
    assert elsewhere.status_code == 404


async def test_midstream_error_event_after_n_tokens(http: httpx2.AsyncClient) -> None:
    payload = body("[fake tokens=10 fail=overloaded_midstream after=3]")
    response = await http.post("/v1/messages", json=payload, headers={"x-api-key": "k"})
    names = [name for name, _ in parse_sse(response.content)]
    assert names == [*STREAM_ORDER, *["content_block_delta"] * 3, "error"]
    assert parse_sse(response.content)[-1][1]["error"]["type"] == "overloaded_error"


async def test_drop_closes_without_terminating_chunk(server: FakeAnthropicServer) -> None:
    request = http_request(body("[fake tokens=10 fail=drop after=2]"), {"x-api-key": "k"})
    data = await raw_exchange(server.port, [request])
    assert data.count(b"event: content_block_delta") == 2
    assert not data.endswith(b"0\r\n\r\n")
    assert len(server.last_request.sent) == 2 and not server.last_request.completed


async def test_keep_alive_serves_several_requests_per_connection(
    server: FakeAnthropicServer,
) -> None:
    first = http_request(body("one", stream=False), {"x-api-key": "k"})
    second = http_request(body("two"), {"x-api-key": "k"}, close=True)
    data = await raw_exchange(server.port, [first, second])
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert [r.body["messages"][0]["content"] for r in server.requests] == ["one", "two"]


async def test_requests_are_recorded(server: FakeAnthropicServer, http: httpx2.AsyncClient) -> None:
    await http.post("/v1/messages", json=body("rec [fake tokens=3]"), headers={"x-api-key": "k"})
    record = server.last_request
    assert record.headers["x-api-key"] == "k"
    assert record.body["messages"][0]["content"] == "rec [fake tokens=3]"
    assert record.script == {"tokens": 3}
    assert record.sent_text == "Echo: rec lorem"
    assert record.completed and not record.client_disconnected and server.disconnects == 0


async def test_client_disconnect_is_detected_promptly(server: FakeAnthropicServer) -> None:
    server.tps = 20  # 100 tokens would take 5 s
    request = http_request(body("[fake tokens=100]"), {"x-api-key": "k"})
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request)
    await reader.readuntil(b"event: content_block_delta")
    writer.close()
    assert await server.wait_for_disconnect(within=1.0)
    record = server.last_request
    assert record.client_disconnected and not record.completed
    assert len(record.sent) < 100


async def test_disconnect_during_ttft_is_detected(server: FakeAnthropicServer) -> None:
    request = http_request(body("[fake ttft=30]"), {"x-api-key": "k"})
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request)
    await asyncio.sleep(0.05)
    writer.close()
    assert await server.wait_for_disconnect(within=1.0)


async def test_malformed_request_gets_hung_up_on(server: FakeAnthropicServer) -> None:
    assert await raw_exchange(server.port, [b"nonsense\r\n\r\n"]) == b""
    good = http_request(body("still fine", stream=False), {"x-api-key": "k"}, close=True)
    assert (await raw_exchange(server.port, [good])).startswith(b"HTTP/1.1 200 OK")


def test_thread_server_outlives_event_loops() -> None:
    with FakeAnthropicServer(tps=0) as server:

        async def one_call() -> str:
            client = anthropic.AsyncAnthropic(api_key="k", base_url=server.base_url, max_retries=0)
            message = await client.messages.create(**body("loop", stream=False))
            await client.close()
            return message.content[0].text

        assert asyncio.run(one_call()) == "Echo: loop"
        assert asyncio.run(one_call()) == "Echo: loop"
        assert server.wait_for_disconnect_blocking(0, within=0.1)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_fixture_runs_in_a_thread(fake_anthropic: FakeAnthropicServer) -> None:
    assert fake_anthropic.base_url == f"http://127.0.0.1:{fake_anthropic.port}"
    assert fake_anthropic.port != 0
