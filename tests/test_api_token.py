"""The API token page and the ``api_token`` management command."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clear_cache")]

PAGE = "/api/token/"


@pytest.fixture
def browser(alice: Any) -> Client:
    """alice logged in, with CSRF checks on (as a real browser)."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


def csrf_post(client: Client, data: dict[str, str]) -> Any:
    page = client.get(PAGE)
    return client.post(PAGE, {**data, "csrfmiddlewaretoken": page.context["csrf_token"]})


def works(key: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/conversations/").status_code == 200


def test_page_requires_login() -> None:
    response = Client().get(PAGE)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_create_shows_the_key_once_and_it_works(browser: Client, alice: Any) -> None:
    assert b"You have no token" in browser.get(PAGE).content

    response = csrf_post(browser, {"action": "create"})

    key = Token.objects.get(user=alice).key
    assert response.status_code == 200
    assert key.encode() in response.content
    assert works(key)
    later = browser.get(PAGE)
    assert key.encode() not in later.content
    assert b"You have a token" in later.content


def test_replace_invalidates_the_old_key(browser: Client, alice: Any) -> None:
    old = Token.objects.create(user=alice).key

    csrf_post(browser, {"action": "create"})

    new = Token.objects.get(user=alice).key
    assert new != old
    assert not works(old)
    assert works(new)


def test_revoke(browser: Client, alice: Any) -> None:
    key = Token.objects.create(user=alice).key

    response = csrf_post(browser, {"action": "revoke"})

    assert response.status_code == 302
    assert not Token.objects.filter(user=alice).exists()
    assert not works(key)


def test_post_without_csrf_is_refused(browser: Client, alice: Any) -> None:
    response = browser.post(PAGE, {"action": "create"})

    assert response.status_code == 403
    assert not Token.objects.filter(user=alice).exists()


def test_unknown_action_is_400(browser: Client, alice: Any) -> None:
    assert csrf_post(browser, {"action": "steal"}).status_code == 400
    assert not Token.objects.filter(user=alice).exists()


def test_one_users_page_never_touches_anothers_token(browser: Client, bob: Any) -> None:
    theirs = Token.objects.create(user=bob).key

    csrf_post(browser, {"action": "revoke"})

    assert Token.objects.filter(key=theirs).exists()
    assert theirs.encode() not in browser.get(PAGE).content


def test_command_prints_creates_resets_and_revokes(alice: Any) -> None:
    def run(*args: str) -> str:
        out = io.StringIO()
        call_command("api_token", "alice", *args, stdout=out)
        return out.getvalue().strip()

    key = run()
    assert works(key)
    assert run() == key
    new = run("--reset")
    assert new != key
    assert not works(key)
    assert run("--revoke") == "Token revoked."
    assert not works(new)


def test_command_unknown_user() -> None:
    with pytest.raises(CommandError, match="No user"):
        call_command("api_token", "nobody")
