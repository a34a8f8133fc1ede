"""The provider interface: an async iterator of text deltas, then one final event.

Modelled on Django's pluggable backends: a tiny abstract base, concrete providers chosen
from settings by short name or dotted path (see ``chat.providers.get_provider``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """One message of the history sent to the model."""

    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """Everything a provider needs to produce a reply."""

    model: str
    messages: tuple[ChatTurn, ...]
    system: str = ""
    max_tokens: int = 4096


@dataclass(slots=True)
class Usage:
    """Token counts, filled in by the provider as soon as it learns them."""

    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of reply text, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last event of a successful stream."""

    stop_reason: str | None
    usage: Usage = field(default_factory=Usage)


ProviderEvent = TextDelta | StreamEnd


class BaseProvider(ABC):
    """A source of streamed replies.

    ``stream`` is an async generator: it yields ``TextDelta`` events then exactly one
    ``StreamEnd``, and raises ``chat.errors.ProviderError`` subclasses on failure. It
    updates ``usage`` in place as soon as counts are known, so a reply that is cancelled
    or fails mid-stream still records what was known. Closing the generator early (or
    cancelling the task iterating it) must release the upstream connection.
    """

    name: str = "base"

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def stream(self, request: ChatRequest, *, usage: Usage) -> AsyncIterator[ProviderEvent]:
        """Stream the reply to ``request``."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release any resources (connections) the provider holds."""
