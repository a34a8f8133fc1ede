"""The offline default provider: a labelled, deterministic demo reply, streamed word by word.

It lets the whole product (streaming, markdown rendering, cancellation) run without an API
key. ``demo_reply_text`` and ``demo_tokens`` are pure so tests can predict every delta.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from chat.conf import chat_settings
from chat.providers.base import (
    BaseProvider,
    ChatRequest,
    ProviderEvent,
    StreamEnd,
    TextDelta,
    Usage,
)

# Words with their leading whitespace (newlines and indentation included); a trailing run
# of whitespace is its own token, so "".join(demo_tokens(text)) == text.
TOKEN_RE = re.compile(r"\s*\S+|\s+")

INTRO = (
    "*This is a demo reply.* No Anthropic API key is configured, so this answer comes from "
    "the built-in demo provider, not from Claude.\n\nYou wrote:\n\n"
)
SHOWCASE = """

Replies stream word by word and are rendered as markdown, for example:

- **bold** and *italic* text
- `inline code` and [links](https://docs.anthropic.com)
- lists like this one

```python
def greet(name: str) -> str:
    return f"Hello, {name}!"
```

To talk to Claude, set the `ANTHROPIC_API_KEY` environment variable (or \
`CHAT["ANTHROPIC_API_KEY"]` in the Django settings) and restart the server."""


def demo_reply_text(prompt: str) -> str:
    """The full demo reply to ``prompt``: a notice, the prompt quoted, some markdown, help."""
    lines = (prompt.strip() or "(an empty message)").splitlines()
    quoted = "\n".join(f"> {line}" if line.strip() else ">" for line in lines)
    return INTRO + quoted + SHOWCASE


def demo_tokens(text: str) -> list[str]:
    """Split text into the deltas the demo streams: words with their leading whitespace."""
    return TOKEN_RE.findall(text)


def estimate_input_tokens(request: ChatRequest) -> int:
    """A rough input token count (about four characters per token)."""
    chars = len(request.system) + sum(len(turn.content) for turn in request.messages)
    return max(1, round(chars / 4))


def last_user_text(request: ChatRequest) -> str:
    """The text of the most recent user message ("" if there is none)."""
    return next((t.content for t in reversed(request.messages) if t.role == "user"), "")


class DemoProvider(BaseProvider):
    """Streams ``demo_reply_text`` at ``DEMO_WORDS_PER_SECOND`` (option ``words_per_second``)."""

    name = "demo"

    @property
    def words_per_second(self) -> float:
        """The pace; zero or less streams without pausing."""
        return float(self.options.get("words_per_second", chat_settings.DEMO_WORDS_PER_SECOND))

    async def stream(self, request: ChatRequest, *, usage: Usage) -> AsyncIterator[ProviderEvent]:
        """Yield the demo reply word by word; cancellation lands in the sleep between words."""
        tokens = demo_tokens(demo_reply_text(last_user_text(request)))
        usage.input_tokens = estimate_input_tokens(request)
        usage.output_tokens = 0
        pace = self.words_per_second
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, token in enumerate(tokens):
            # Scheduled against the start time so the pace does not drift with slow consumers.
            delay = start + index / pace - loop.time() if pace > 0 else 0.0
            await asyncio.sleep(max(0.0, delay))
            usage.output_tokens = index + 1
            yield TextDelta(token)
        yield StreamEnd(stop_reason="end_turn", usage=usage)
