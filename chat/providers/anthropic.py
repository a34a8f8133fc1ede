"""Claude through the official SDK: raw stream events in, ``TextDelta``/``StreamEnd`` out.

Uses ``messages.create(stream=True)`` rather than ``messages.stream``: we only need the
text deltas and usage, and skipping the SDK's message accumulation halves its CPU cost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import anthropic
import httpx2

from chat.conf import chat_settings
from chat.errors import (
    APIError,
    AuthenticationError,
    InvalidProviderRequest,
    OverloadedError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
)
from chat.providers.base import (
    BaseProvider,
    ChatRequest,
    ProviderEvent,
    StreamEnd,
    TextDelta,
    Usage,
)

STATUS_ERRORS: dict[int, type[ProviderError]] = {
    400: InvalidProviderRequest,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: InvalidProviderRequest,
    413: InvalidProviderRequest,
    429: RateLimitError,
    529: OverloadedError,
}
# A mid-stream ``event: error`` arrives with the stream's status (200): go by its type.
TYPE_ERRORS: dict[str, type[ProviderError]] = {
    "invalid_request_error": InvalidProviderRequest,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "not_found_error": InvalidProviderRequest,
    "request_too_large": InvalidProviderRequest,
    "rate_limit_error": RateLimitError,
    "overloaded_error": OverloadedError,
    "api_error": APIError,
}
# The SDK wraps errors before the response starts; once streaming, httpx2's own errors
# (RemoteProtocolError on a dropped connection, ReadTimeout) escape unwrapped.
UPSTREAM_ERRORS = (anthropic.AnthropicError, httpx2.HTTPError)


class AnthropicProvider(BaseProvider):
    """Streams replies from the Anthropic Messages API (or anything speaking it)."""

    name = "anthropic"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._client: anthropic.AsyncAnthropic | None = None

    def client(self) -> anthropic.AsyncAnthropic:
        """The SDK client, built on first use from the current settings."""
        if self._client is None:
            api_key, timeout = chat_settings.ANTHROPIC_API_KEY, chat_settings.ANTHROPIC_TIMEOUT
            if not api_key:
                raise AuthenticationError(
                    "No Anthropic API key is configured. Set ANTHROPIC_API_KEY, "
                    "or use the demo provider."
                )
            self._client = anthropic.AsyncAnthropic(
                api_key=api_key,
                base_url=chat_settings.ANTHROPIC_BASE_URL or None,
                max_retries=int(chat_settings.ANTHROPIC_MAX_RETRIES),
                timeout=None if timeout is None else float(timeout),
            )
        return self._client

    async def stream(self, request: ChatRequest, *, usage: Usage) -> AsyncIterator[ProviderEvent]:
        """Stream the reply; leaving early or cancelling closes the upstream connection."""
        try:
            stream = await self.client().messages.create(**request_params(request), stream=True)
        except UPSTREAM_ERRORS as exc:
            raise map_error(exc) from exc
        stop_reason: str | None = None
        finished = False
        try:
            async for event in stream:
                # Most frequent first: one delta per token.
                if event.type == "content_block_delta":
                    if event.delta.type == "text_delta":
                        yield TextDelta(event.delta.text)
                elif event.type == "message_start":
                    usage.input_tokens = event.message.usage.input_tokens
                elif event.type == "message_delta":
                    stop_reason = event.delta.stop_reason
                    usage.output_tokens = event.usage.output_tokens
                elif event.type == "message_stop":
                    finished = True
        except UPSTREAM_ERRORS as exc:
            raise map_error(exc) from exc
        finally:
            await stream.close()
        if not finished:
            raise ProviderConnectionError(
                "The model provider's reply ended before it was complete."
            )
        yield StreamEnd(stop_reason=stop_reason, usage=usage)

    async def aclose(self) -> None:
        """Close the SDK client and its connection pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()


def request_params(request: ChatRequest) -> dict[str, Any]:
    """The Messages API arguments for a request (no system prompt if it is empty)."""
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": [{"role": turn.role, "content": turn.content} for turn in request.messages],
    }
    if request.system:
        params["system"] = request.system
    return params


def map_error(exc: Exception) -> ProviderError:
    """Translate an SDK or httpx2 exception into the project's provider error."""
    if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
        return ProviderTimeoutError()
    if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
        return ProviderConnectionError()
    if isinstance(exc, anthropic.CredentialsError):
        return AuthenticationError()
    if isinstance(exc, anthropic.APIStatusError):
        return _status_error(exc)
    return APIError(f"The model provider returned an unexpected error: {exc}")


def _status_error(exc: anthropic.APIStatusError) -> ProviderError:
    """The error for an HTTP error status, or for an error event inside a stream."""
    cls = STATUS_ERRORS.get(exc.status_code) or TYPE_ERRORS.get(exc.type or "", APIError)
    retry_after = _retry_after(exc.response.headers)
    if cls is InvalidProviderRequest and exc.api_message:
        message = f"The model provider refused the request: {exc.api_message}"
    elif cls is RateLimitError and retry_after is not None:
        message = f"The model provider is rate limiting requests. Try again in {retry_after:g} s."
    elif cls is APIError:
        where = f"HTTP {exc.status_code}" if exc.status_code >= 400 else "mid-reply"
        message = f"The model provider returned an error ({where}). Try again."
    else:
        message = None  # the class's own message says what to do
    return cls(message, retry_after=retry_after)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (HTTP dates are ignored)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return float(headers[name]) * scale
        except (KeyError, ValueError):
            continue
    return None
