"""The limit: a bare ASGI app relaying the SDK's text deltas as SSE (no framework, no DB).

``uvicorn bench.targets.raw_asgi:app``; ``POST /relay`` with ``{"content": "..."}``.
"""

from __future__ import annotations

from typing import Any

from bench.targets.common import chunk_frame, prompt_of, text_deltas

HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
]


async def read_body(receive: Any) -> bytes:
    """The whole request body."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Relay one reply per request; a lifespan scope is acknowledged and ignored."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    prompt = prompt_of(await read_body(receive))
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    async for text in text_deltas(prompt):
        await send({"type": "http.response.body", "body": chunk_frame(text), "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
