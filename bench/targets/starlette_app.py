"""What a user would pick instead: Starlette + sse-starlette relaying the same deltas.

``uvicorn bench.targets.starlette_app:app``; ``POST /relay`` with ``{"content": "..."}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from bench.targets.common import text_deltas


async def relay(request: Request) -> EventSourceResponse:
    """Stream the reply as default SSE events, then ``[DONE]``."""
    prompt = str((await request.json())["content"])

    async def events() -> AsyncIterator[dict[str, str]]:
        async for text in text_deltas(prompt):
            yield {"data": json.dumps({"chunk": text})}
        yield {"data": "[DONE]"}

    return EventSourceResponse(events())


app = Starlette(routes=[Route("/relay", relay, methods=["POST"])])
