"""Fixtures and factories for the REST API and admin tests (a pytest plugin).

Registered by ``tests/conftest.py``. Users get a token client (``Authorization: Token``)
because that is what REST clients use; session clients are built where CSRF matters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from chat.models import Conversation, Message

User = get_user_model()


def make_user(username: str, **extra: Any) -> Any:
    """A user without a usable password (tests log in with ``force_login`` or a token)."""
    return User.objects.create_user(username, password=None, **extra)


def token_client(user: Any) -> APIClient:
    """An API client authenticated as ``user`` with a DRF token."""
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def make_conversation(owner: Any, title: str = "A chat", **extra: Any) -> Conversation:
    """A conversation on the default model."""
    extra.setdefault("model", "claude-sonnet-4-5")
    return Conversation.objects.create(owner=owner, title=title, **extra)


def add_message(
    conversation: Conversation,
    content: str = "Hello",
    *,
    role: str = Message.Role.USER,
    at: dt.datetime | None = None,
    **extra: Any,
) -> Message:
    """A stored message; ``at`` backdates it (created_at is auto_now_add)."""
    message = Message.objects.create(conversation=conversation, role=role, content=content, **extra)
    if at is not None:
        Message.objects.filter(pk=message.pk).update(created_at=at)
        message.refresh_from_db()
    return message


def add_reply(
    conversation: Conversation,
    content: str = "Hi there",
    *,
    input_tokens: int = 10,
    output_tokens: int = 20,
    **extra: Any,
) -> Message:
    """A finished assistant reply with token counts."""
    extra.setdefault("model", conversation.model)
    extra.setdefault("stop_reason", "end_turn")
    return add_message(
        conversation,
        content,
        role=Message.Role.ASSISTANT,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        **extra,
    )


def days_ago(days: int) -> dt.datetime:
    """Noon UTC ``days`` days ago."""
    now = timezone.now()
    return (now - dt.timedelta(days=days)).replace(hour=12, minute=0, second=0, microsecond=0)


@pytest.fixture
def clear_cache() -> Iterator[None]:
    """An empty cache: throttle history lives there, and user ids repeat between tests."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice(db: None) -> Any:
    """A regular user."""
    return make_user("alice")


@pytest.fixture
def bob(db: None) -> Any:
    """Another regular user (whose data alice must never see)."""
    return make_user("bob")


@pytest.fixture
def api(alice: Any) -> APIClient:
    """alice's token client."""
    return token_client(alice)


@pytest.fixture
def anon() -> APIClient:
    """An API client with no credentials."""
    return APIClient()
