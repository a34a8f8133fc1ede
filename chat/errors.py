"""The project's exception types, each with a stable ``type`` string and HTTP status.

Providers raise ``ProviderError`` subclasses; the engine raises ``ChatError`` subclasses
for refusals. Transports turn both into ``{"error": {"type", "message"}}``.
"""

from __future__ import annotations


class ChatError(Exception):
    """Base of every error the product reports to a client."""

    type: str = "api_error"
    status: int = 500
    default_message = "Something went wrong."
    # Seconds after which trying again may succeed (sent as ``Retry-After``), if known.
    retry_after: float | None = None

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def as_dict(self) -> dict[str, str]:
        """The error body's inner object."""
        return {"type": self.type, "message": self.message}


class InvalidRequest(ChatError):
    """Bad input: nothing was stored."""

    type = "invalid_request"
    status = 400
    default_message = "The request was not valid."


class NotFound(ChatError):
    """Unknown id, or one that belongs to someone else."""

    type = "not_found"
    status = 404
    default_message = "Not found."


class Conflict(ChatError):
    """A reply is already running in this conversation."""

    type = "conflict"
    status = 409
    default_message = "A reply is already being generated in this conversation."


class TooManyGenerations(ChatError):
    """The per-user cap on concurrent replies is reached."""

    type = "rate_limit_error"
    status = 429
    default_message = "You have too many replies running at once; wait for one to finish."


class RateLimited(ChatError):
    """The user sends messages faster than ``MESSAGES_PER_MINUTE``: nothing was stored."""

    type = "rate_limit_error"
    status = 429
    default_message = "You are sending messages too fast; wait a moment."

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExceeded(ChatError):
    """The user's ``DAILY_TOKEN_QUOTA`` is used up: nothing was stored."""

    type = "quota_exceeded"
    status = 429
    default_message = "You have used your tokens for today; the quota resets at midnight UTC."

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderError(ChatError):
    """An upstream (model provider) failure."""

    type = "api_error"
    status = 502
    default_message = "The model provider returned an error."

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthenticationError(ProviderError):
    type = "authentication_error"
    default_message = "The Anthropic API key was rejected. Check ANTHROPIC_API_KEY."


class PermissionDeniedError(ProviderError):
    type = "permission_error"
    default_message = "The Anthropic API key is not allowed to use this model."


class RateLimitError(ProviderError):
    type = "rate_limit_error"
    default_message = "The model provider is rate limiting requests. Try again shortly."


class OverloadedError(ProviderError):
    type = "overloaded_error"
    default_message = "The model is overloaded right now. Try again in a moment."


class APIError(ProviderError):
    type = "api_error"
    default_message = "The model provider returned an error."


class InvalidProviderRequest(ProviderError):
    type = "invalid_request_error"
    default_message = "The model provider refused the request."


class ProviderConnectionError(ProviderError):
    type = "connection_error"
    default_message = "Could not reach the model provider, or the connection dropped."


class ProviderTimeoutError(ProviderError):
    type = "timeout_error"
    default_message = "The model provider took too long to answer."


class Interrupted(ChatError):
    """The process generating a reply went away before it finished."""

    type = "interrupted"
    status = 500
    default_message = "The reply was interrupted because the server restarted."
