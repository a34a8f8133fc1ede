"""Test helpers: a fake Anthropic API server and pytest fixtures around it."""

from chat.testing.fake_anthropic import FakeAnthropicServer, RequestRecord, tokenize

__all__ = ["FakeAnthropicServer", "RequestRecord", "tokenize"]
