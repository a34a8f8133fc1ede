"""A scripted in-memory provider for tests: replies with given chunks at a given pace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from chat import errors
from chat.providers.base import (
    BaseProvider,
    ChatRequest,
    ProviderEvent,
    StreamEnd,
    TextDelta,
    Usage,
)

ERRORS: dict[str, type[errors.ProviderError]] = {
    cls.type: cls
    for cls in (
        errors.AuthenticationError,
        errors.RateLimitError,
        errors.OverloadedError,
        errors.APIError,
        errors.ProviderConnectionError,
        errors.ProviderTimeoutError,
    )
}


class ScriptedProvider(BaseProvider):
    """Streams ``chunks`` (default: an echo of the prompt) with ``delay`` seconds between them.

    Options: ``chunks`` (list of str), ``delay`` (float), ``fail_after`` (int: raise after that
    many chunks) with ``error`` (an error type string). Every request is recorded in
    ``requests``, the class-level list ``ScriptedProvider.requests``.
    """

    name = "locmem"
    requests: list[ChatRequest] = []

    async def stream(self, request: ChatRequest, *, usage: Usage) -> AsyncIterator[ProviderEvent]:
        type(self).requests.append(request)
        opts: dict[str, Any] = self.options
        chunks = list(opts.get("chunks") or ["Echo: ", request.messages[-1].content])
        usage.input_tokens = sum(len(t.content) for t in request.messages)
        for index, chunk in enumerate(chunks):
            if opts.get("fail_after") == index:
                raise ERRORS[opts.get("error", "overloaded_error")]()
            await asyncio.sleep(float(opts.get("delay", 0)))
            yield TextDelta(chunk)
        usage.output_tokens = len(chunks)
        yield StreamEnd(stop_reason="end_turn", usage=usage)
