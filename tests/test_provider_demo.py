"""DemoProvider: deterministic text, pace, usage and prompt cancellation."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from chat.providers import get_provider
from chat.providers.base import ChatRequest, ChatTurn, StreamEnd, TextDelta, Usage
from chat.providers.demo import DemoProvider, demo_reply_text, demo_tokens, estimate_input_tokens


def chat_request(*prompts: str, system: str = "") -> ChatRequest:
    """A request whose user turns are ``prompts`` (with assistant turns between)."""
    turns: list[ChatTurn] = []
    for index, prompt in enumerate(prompts):
        turns += [ChatTurn("assistant", "ok")] if index else []
        turns.append(ChatTurn("user", prompt))
    return ChatRequest(model="demo", messages=tuple(turns), system=system)


async def run(provider: DemoProvider, request: ChatRequest) -> tuple[list[str], StreamEnd, Usage]:
    """All deltas, the end event and the usage of one stream."""
    usage, texts, ends = Usage(), [], []
    async for event in provider.stream(request, usage=usage):
        if isinstance(event, TextDelta):
            texts.append(event.text)
        else:
            ends.append(event)
    assert len(ends) == 1
    return texts, ends[0], usage


def test_reply_text_is_deterministic_and_labelled() -> None:
    text = demo_reply_text("What is 2+2?\n\nThanks")
    assert text == demo_reply_text("What is 2+2?\n\nThanks")
    assert text.startswith("*This is a demo reply.*")
    assert "No Anthropic API key is configured" in text
    assert "> What is 2+2?\n>\n> Thanks\n" in text
    assert "\n- **bold**" in text
    assert "```python\ndef greet(name: str) -> str:\n" in text
    assert "`ANTHROPIC_API_KEY`" in text


def test_reply_quotes_any_text_verbatim() -> None:
    prompt = "<script>alert('x')</script> {braces} 😀"
    assert f"> {prompt}\n" in demo_reply_text(prompt)
    assert "> (an empty message)" in demo_reply_text("  ")


def test_tokens_rebuild_the_text() -> None:
    text = demo_reply_text("hello\n  indented")
    tokens = demo_tokens(text)
    assert "".join(tokens) == text
    assert all(token.strip() for token in tokens)  # no whitespace-only deltas
    assert "\n    return" in tokens  # indentation travels with the word


async def test_streams_the_expected_deltas_and_usage() -> None:
    request = chat_request("first", "second question", system="Be nice.")
    texts, end, usage = await run(DemoProvider(words_per_second=0), request)
    assert texts == demo_tokens(demo_reply_text("second question"))
    assert end.stop_reason == "end_turn" and end.usage is usage
    assert usage.output_tokens == len(texts)
    assert usage.input_tokens == estimate_input_tokens(request) == round(30 / 4)


async def test_paced_at_words_per_second() -> None:
    provider = DemoProvider(words_per_second=400)
    started = time.monotonic()
    texts, _, _ = await run(provider, chat_request("pace"))
    # The first word goes out at once, then one every 1/400 s.
    assert time.monotonic() - started >= (len(texts) - 1) / 400 * 0.9


def test_pace_comes_from_settings_unless_overridden(settings: Any) -> None:
    settings.CHAT = {**settings.CHAT, "DEMO_WORDS_PER_SECOND": 12}
    assert DemoProvider().words_per_second == 12.0
    assert DemoProvider(words_per_second=5).words_per_second == 5.0


async def test_get_provider_returns_the_demo_by_default(settings: Any) -> None:
    settings.CHAT = {**settings.CHAT, "PROVIDER": None, "ANTHROPIC_API_KEY": None}
    assert isinstance(get_provider(), DemoProvider)


async def test_cancellation_is_prompt() -> None:
    provider = DemoProvider(words_per_second=1)  # a second between words
    usage = Usage()
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in provider.stream(chat_request("cancel me"), usage=usage):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.5
    assert usage.output_tokens == 1


async def test_closing_early_keeps_the_usage_so_far() -> None:
    usage = Usage()
    stream = DemoProvider(words_per_second=0).stream(chat_request("stop"), usage=usage)
    for _ in range(3):
        await anext(stream)
    await stream.aclose()
    assert usage.output_tokens == 3 and usage.input_tokens == 1
