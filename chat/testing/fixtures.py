"""Pytest fixtures: a fake Anthropic API, and settings that point the provider at it.

Registered by ``tests/conftest.py`` with ``pytest_plugins = ["chat.testing.fixtures"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from chat.db import close_db_connection
from chat.testing.fake_anthropic import FakeAnthropicServer


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropicServer]:
    """A fake Anthropic API on loopback, on its own thread so it outlives any test loop."""
    server = FakeAnthropicServer().start_in_thread()
    try:
        yield server
    finally:
        server.stop_thread()


@pytest.fixture
def anthropic_settings(settings: Any, fake_anthropic: FakeAnthropicServer) -> FakeAnthropicServer:
    """Select the Anthropic provider, aimed at ``fake_anthropic`` with retries off."""
    settings.CHAT = {
        **(getattr(settings, "CHAT", None) or {}),
        "PROVIDER": "anthropic",
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
        "ANTHROPIC_MAX_RETRIES": 0,
    }
    return fake_anthropic


@pytest.fixture(autouse=True)
def _close_engine_connection() -> Iterator[None]:
    """Close the engine thread's database connection after each test.

    The engine writes on its own thread (``chat.db``); its connection must not outlive
    the test database it was opened on.
    """
    yield
    close_db_connection()


@pytest.fixture
def user() -> Any:
    """A user, ``alice``."""
    return get_user_model().objects.create_user("alice", password="pw")


@pytest.fixture
def conversation(user: Any) -> Any:
    """An empty conversation of ``user``."""
    from chat.models import Conversation

    return Conversation.objects.create(owner=user, model="claude-sonnet-4-5")


@pytest.fixture
def scripted(settings: Any) -> Any:
    """Use the scripted in-memory provider (``locmem``); returns a function to set its options.

    By default it replies "Hello wörld 👋" in three chunks, 10 ms apart.
    """
    from chat.providers.locmem import ScriptedProvider

    def configure(**options: Any) -> None:
        settings.CHAT = {**settings.CHAT, "PROVIDER": "locmem", "PROVIDER_OPTIONS": options}

    ScriptedProvider.requests.clear()
    configure(chunks=["Hel", "lo ", "wörld 👋"], delay=0.01)
    return configure
