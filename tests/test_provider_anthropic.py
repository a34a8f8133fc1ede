"""AnthropicProvider: the real SDK against the fake server on loopback (never the live API)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chat import errors
from chat.providers import get_provider
from chat.providers.anthropic import AnthropicProvider
from chat.providers.base import ChatRequest, ChatTurn, StreamEnd, TextDelta, Usage
from chat.testing.fake_anthropic import FakeAnthropicServer


def chat_request(prompt: str, *, system: str = "", max_tokens: int = 256) -> ChatRequest:
    """A one-turn request."""
    turns = (ChatTurn("user", prompt),)
    return ChatRequest(model="claude-test", messages=turns, system=system, max_tokens=max_tokens)


@pytest.fixture
async def provider(anthropic_settings: FakeAnthropicServer) -> AsyncIterator[AnthropicProvider]:
    """A provider aimed at the fake server, closed after the test."""
    anthropic_settings.tps = 0  # fast unless a test paces it
    instance = AnthropicProvider()
    yield instance
    await instance.aclose()


async def collect(
    provider: AnthropicProvider, prompt: str, **kwargs: Any
) -> tuple[list[str], StreamEnd | None, Usage, Exception | None]:
    """Run a stream to its end: (delta texts, end event, usage, error raised)."""
    usage, texts, end = Usage(), [], None
    try:
        async for event in provider.stream(chat_request(prompt, **kwargs), usage=usage):
            if isinstance(event, TextDelta):
                texts.append(event.text)
            else:
                end = event
    except errors.ProviderError as exc:
        return texts, end, usage, exc
    return texts, end, usage, None


async def test_streams_deltas_in_order_with_usage(
    provider: AnthropicProvider, anthropic_settings: FakeAnthropicServer
) -> None:
    texts, end, usage, error = await collect(provider, "hi there [fake tokens=12]")
    record = anthropic_settings.last_request
    assert error is None
    assert texts == [text for text, _ in record.sent] and len(texts) == 12
    assert "".join(texts).startswith("Echo: hi there lorem")
    assert end is not None and end.stop_reason == "end_turn"
    assert usage.input_tokens == record_input_tokens(record.body) and usage.output_tokens == 12
    assert end.usage is usage


def record_input_tokens(body: dict[str, Any]) -> int:
    """The fake's input token estimate for a request body."""
    chars = len(body.get("system", "")) + sum(len(m["content"]) for m in body["messages"])
    return max(1, chars // 4)


async def test_first_delta_arrives_before_the_last_is_sent(
    provider: AnthropicProvider, anthropic_settings: FakeAnthropicServer
) -> None:
    arrivals: list[float] = []
    usage = Usage()
    async for event in provider.stream(chat_request("[fake tokens=15 tps=100]"), usage=usage):
        if isinstance(event, TextDelta):
            arrivals.append(time.time())
    sent = anthropic_settings.last_request.sent
    assert len(arrivals) == len(sent) == 15
    assert arrivals[0] < sent[-1][1]


async def test_request_shape_and_auth(
    provider: AnthropicProvider, anthropic_settings: FakeAnthropicServer
) -> None:
    await collect(provider, "plain")
    record = anthropic_settings.last_request
    assert record.body["model"] == "claude-test" and record.body["max_tokens"] == 256
    assert record.body["messages"] == [{"role": "user", "content": "plain"}]
    assert record.body["stream"] is True and "system" not in record.body
    assert record.headers["authorization"] == "Bearer test-key"
    await collect(provider, "with system", system="Be brief.")
    assert anthropic_settings.last_request.body["system"] == "Be brief."


async def test_unicode_and_html_pass_through(provider: AnthropicProvider) -> None:
    text = "<script>alert('x')</script> 😀👍🏽 naïve — ok"
    texts, _, _, error = await collect(provider, f'[fake text="{text}"]')
    assert error is None and "".join(texts) == text


async def test_max_tokens_stop_reason(provider: AnthropicProvider) -> None:
    texts, end, usage, _ = await collect(provider, "[fake tokens=10]", max_tokens=3)
    assert len(texts) == 3 and end is not None and end.stop_reason == "max_tokens"
    assert usage.output_tokens == 3


@pytest.mark.parametrize(
    ("fail", "error_type"),
    [
        ("401", errors.AuthenticationError),
        ("403", errors.PermissionDeniedError),
        ("400", errors.InvalidProviderRequest),
        ("404", errors.InvalidProviderRequest),
        ("429", errors.RateLimitError),
        ("529", errors.OverloadedError),
        ("500", errors.APIError),
    ],
)
async def test_status_errors_map_to_project_errors(
    provider: AnthropicProvider, fail: str, error_type: type[errors.ProviderError]
) -> None:
    texts, end, _, error = await collect(provider, f"[fake fail={fail}]")
    assert type(error) is error_type and texts == [] and end is None
    assert error.message


async def test_rate_limit_keeps_retry_after(provider: AnthropicProvider) -> None:
    *_, error = await collect(provider, "[fake fail=429 retry_after=7]")
    assert isinstance(error, errors.RateLimitError)
    assert error.type == "rate_limit_error" and error.retry_after == 7.0
    assert "7 s" in error.message


async def test_rejected_key(settings: Any, provider: AnthropicProvider) -> None:
    settings.CHAT = {**settings.CHAT, "ANTHROPIC_API_KEY": "bad-key"}
    *_, error = await collect(provider, "hello")
    assert isinstance(error, errors.AuthenticationError)
    assert "ANTHROPIC_API_KEY" in error.message


async def test_missing_key(settings: Any, provider: AnthropicProvider) -> None:
    settings.CHAT = {**settings.CHAT, "ANTHROPIC_API_KEY": None}
    *_, error = await collect(provider, "hello")
    assert isinstance(error, errors.AuthenticationError)


async def test_midstream_overloaded_after_partial_deltas(
    provider: AnthropicProvider, anthropic_settings: FakeAnthropicServer
) -> None:
    texts, end, usage, error = await collect(
        provider, "[fake tokens=10 fail=overloaded_midstream after=4]"
    )
    assert len(texts) == 4 and end is None
    assert isinstance(error, errors.OverloadedError) and error.type == "overloaded_error"
    assert usage.input_tokens is not None


async def test_dropped_connection_is_a_connection_error(provider: AnthropicProvider) -> None:
    texts, end, _, error = await collect(provider, "[fake tokens=10 fail=drop after=3]")
    assert len(texts) == 3 and end is None
    assert isinstance(error, errors.ProviderConnectionError)
    assert error.type == "connection_error"


async def test_unreachable_server_is_a_connection_error(
    settings: Any, provider: AnthropicProvider
) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.CHAT = {**settings.CHAT, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"}
    *_, error = await collect(provider, "hello")
    assert isinstance(error, errors.ProviderConnectionError)


async def test_slow_first_token_is_a_timeout(
    settings: Any, provider: AnthropicProvider, anthropic_settings: FakeAnthropicServer
) -> None:
    settings.CHAT = {**settings.CHAT, "ANTHROPIC_TIMEOUT": 0.2}
    *_, error = await collect(provider, "[fake ttft=10]")
    assert isinstance(error, errors.ProviderTimeoutError) and error.type == "timeout_error"
    assert await anthropic_settings.wait_for_disconnect()


async def test_stalled_stream_is_a_timeout(settings: Any, provider: AnthropicProvider) -> None:
    settings.CHAT = {**settings.CHAT, "ANTHROPIC_TIMEOUT": 0.2}
    texts, _, _, error = await collect(provider, "[fake tokens=10 fail=stall after=2]")
    assert len(texts) == 2
    assert isinstance(error, errors.ProviderTimeoutError)


def assert_closed_already(server: FakeAnthropicServer) -> None:
    """The upstream connection was closed by the time the stream's close returned.

    Waits while blocking this loop on purpose: a close merely scheduled on the loop (by
    the async-generator finalizer, say) cannot happen, so only an explicit close passes.
    """
    assert server.wait_for_disconnect_blocking(1, within=2.0)


async def test_leaving_early_closes_the_upstream_connection(
    provider: AnthropicProvider, anthropic_settings: FakeAnthropicServer
) -> None:
    anthropic_settings.tps = 50  # 100 tokens would take 2 s
    stream = provider.stream(chat_request("[fake tokens=100]"), usage=Usage())
    async with contextlib.aclosing(stream):
        async for _ in stream:
            break
    assert_closed_already(anthropic_settings)
    assert len(anthropic_settings.last_request.sent) < 100


async def test_aclose_closes_the_upstream_connection(
    provider: AnthropicProvider, anthropic_settings: FakeAnthropicServer
) -> None:
    anthropic_settings.tps = 50
    stream = provider.stream(chat_request("[fake tokens=100]"), usage=(usage := Usage()))
    assert isinstance(await anext(stream), TextDelta)
    await stream.aclose()
    assert_closed_already(anthropic_settings)
    assert usage.input_tokens is not None and usage.output_tokens is None


async def test_cancelling_the_task_closes_the_upstream_connection(
    provider: AnthropicProvider, anthropic_settings: FakeAnthropicServer
) -> None:
    anthropic_settings.tps = 50
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in provider.stream(chat_request("[fake tokens=100]"), usage=Usage()):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_closed_already(anthropic_settings)


async def test_get_provider_builds_one_per_loop(anthropic_settings: FakeAnthropicServer) -> None:
    provider = get_provider()
    assert isinstance(provider, AnthropicProvider) and get_provider() is provider
    try:
        texts, end, _, error = await collect(provider, "[fake tokens=2]")
        assert error is None and len(texts) == 2 and end is not None
    finally:
        await provider.aclose()


async def test_x_should_retry_false_stops_sdk_retries(
    settings: Any, provider: AnthropicProvider, anthropic_settings: FakeAnthropicServer
) -> None:
    settings.CHAT = {**settings.CHAT, "ANTHROPIC_MAX_RETRIES": 2}
    *_, error = await collect(provider, "[fake fail=529]")
    assert isinstance(error, errors.OverloadedError)
    assert len(anthropic_settings.requests) == 1
