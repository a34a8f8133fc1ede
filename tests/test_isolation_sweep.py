"""A sweep over the whole URL conf: another user's ids are a 404 everywhere, and no GET
changes anything."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

# The admin has its own permission model (staff only, covered by tests/test_admin.py).
SKIPPED_PREFIXES = ("admin/",)
PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")


def routes(resolver: URLResolver | None = None, prefix: str = "") -> Iterator[str]:
    """Every route of the URL conf, as a pattern string with its ``<converter:name>`` parts."""
    for entry in (resolver or get_resolver()).url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from routes(entry, route)
        elif isinstance(entry, URLPattern):
            yield route


def fill(route: str, ids: dict[str, Any]) -> str:
    """A concrete URL for ``route``: uuid parts get a conversation id, int parts a message id."""

    def value(match: re.Match[str]) -> str:
        converter = match.group("converter") or "str"
        return str(ids["uuid"] if converter == "uuid" else ids.get(converter, ids["int"]))

    path = PARAM.sub(value, route).lstrip("^").rstrip("$").replace("\\Z", "")
    return "/" + path


def snapshot() -> list[tuple[Any, ...]]:
    """Everything stored about conversations and messages."""
    return [
        *Conversation.objects.order_by("pk").values_list("pk", "title", "updated_at"),
        *Message.objects.order_by("pk").values_list("pk", "content", "status", "updated_at"),
    ]


@pytest.fixture
def alice_data() -> dict[str, Any]:
    alice = get_user_model().objects.create_user("alice", password="pw")
    conversation = Conversation.objects.create(owner=alice, title="secret", model="m")
    Message.objects.create(conversation=conversation, role="user", content="hello")
    reply = Message.objects.create(
        conversation=conversation, role="assistant", content="private reply", status="complete"
    )
    return {"user": alice, "uuid": conversation.pk, "int": reply.pk, "str": "x", "path": "x"}


def parametrised_routes() -> list[str]:
    """Routes that name a stored object (a conversation's uuid or a message's int id)."""
    return [
        r for r in routes() if re.search(r"<(uuid|int):", r) and not r.startswith(SKIPPED_PREFIXES)
    ]


def test_the_sweep_covers_the_object_urls():
    found = parametrised_routes()
    assert any("conversations/<uuid:conversation_id>/messages/" in r for r in found)
    assert any("messages/<int:message_id>/stream/" in r for r in found)
    assert any("messages/<int:message_id>/cancel/" in r for r in found)


@pytest.mark.parametrize("route", parametrised_routes())
@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_another_users_ids_are_404(alice_data, route, method):
    bob = get_user_model().objects.create_user("bob", password="pw")
    client = Client()
    client.force_login(bob)
    before = snapshot()
    url = fill(route, alice_data)
    # A valid body, so a refusal can only come from the ownership check.
    body = {"content": "hi", "title": "mine now"}
    response = getattr(client, method)(url, data=body, content_type="application/json")
    assert response.status_code in (404, 405), (url, response.status_code)
    assert b"private reply" not in b"".join(getattr(response, "streaming_content", [])) + (
        b"" if response.streaming else response.content
    )
    assert snapshot() == before


@pytest.mark.parametrize(
    "route", [r for r in routes() if not r.startswith(SKIPPED_PREFIXES) and "logout" not in r]
)
def test_get_has_no_side_effects(alice_data, route):
    client = Client()
    client.force_login(alice_data["user"])
    before = snapshot()
    client.get(fill(route, alice_data))
    assert snapshot() == before
