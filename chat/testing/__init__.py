"""Test helpers: a fake Anthropic API server and pytest fixtures around it."""

from __future__ import annotations

from typing import Any

__all__ = ["FakeAnthropicServer", "RequestRecord", "tokenize"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m chat.testing.fake_anthropic` does not import the module twice.
    if name in __all__:
        from chat.testing import fake_anthropic

        return getattr(fake_anthropic, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
