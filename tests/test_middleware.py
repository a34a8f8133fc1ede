"""The inline middleware stack (chat/middleware.py) keeps Django's behaviour on a real server:
security headers, CSRF refusals, and sessions saved at login."""

from __future__ import annotations

import inspect
import re

import httpx2
import pytest
from django.contrib.auth import get_user_model

from chat.middleware import INLINE, InlineMiddlewareASGIHandler
from chat.testing.live_server import database_options, running_daphne

pytestmark = pytest.mark.django_db(transaction=True)


def test_handler_loads_inline_adapters_for_the_settings_paths(settings):
    handler = InlineMiddlewareASGIHandler()
    # The CSRF check runs as an async hook of the inline adapter (no thread hop).
    owners = [type(getattr(hook, "__self__", None)).__name__ for hook in handler._view_middleware]
    assert "InlineCsrfViewMiddleware" in owners
    assert all(inspect.iscoroutinefunction(hook) for hook in handler._view_middleware)
    assert all(path in INLINE for path in settings.MIDDLEWARE if "whitenoise" not in path.lower())


async def test_headers_csrf_and_login_through_the_real_server():
    await get_user_model().objects.acreate_user("alice", password="pw")
    with running_daphne(**database_options()) as server:
        async with httpx2.AsyncClient(base_url=server.url, timeout=20) as client:
            page = await client.get("/accounts/login/")
            assert page.status_code == 200
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["x-content-type-options"] == "nosniff"
            assert "default-src 'self'" in page.headers["content-security-policy"]
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            assert token is not None
            form = {"username": "alice", "password": "pw"}
            refused = await client.post(
                "/accounts/login/", data=form, headers={"Cookie": ""}, follow_redirects=False
            )
            assert refused.status_code == 403
            assert "sessionid" not in refused.cookies
            login = await client.post(
                "/accounts/login/",
                data={**form, "csrfmiddlewaretoken": token.group(1)},
                follow_redirects=False,
            )
            assert login.status_code == 302
            assert "sessionid" in login.cookies
            home = await client.get("/")
            assert home.status_code == 200
            assert "alice" in home.text
