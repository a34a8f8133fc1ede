"""What the peer relays share: one SDK client per process, and the request they send."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

import anthropic

MODEL = "claude-sonnet-4-5"
SYSTEM = "You are a helpful assistant."
_client: anthropic.AsyncAnthropic | None = None


def client() -> anthropic.AsyncAnthropic:
    """The process's SDK client (the server runs one event loop), built on first use."""
    global _client
    if _client is None:
        _client = anthropic.AsyncAnthropic(
            api_key=os.environ.get("ANTHROPIC_API_KEY", "bench"),
            base_url=os.environ["ANTHROPIC_BASE_URL"],
        )
    return _client


def prompt_of(body: bytes) -> str:
    """The ``content`` of a JSON request body."""
    return str(json.loads(body)["content"])


async def text_deltas(prompt: str) -> AsyncIterator[str]:
    """The reply's text deltas, through ``messages.create(stream=True)`` (the lean path)."""
    stream = await client().messages.create(
        model=MODEL,
        max_tokens=4096,
        system=SYSTEM,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
    )
    try:
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                yield event.delta.text
    finally:
        await stream.close()


def chunk_frame(text: str) -> bytes:
    """One SSE frame in the project's default-event shape."""
    return b"data: " + json.dumps({"chunk": text}).encode() + b"\n\n"
