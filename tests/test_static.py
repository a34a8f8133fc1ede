"""Static files are served by WhiteNoise on the async stack; other requests skip it."""

from __future__ import annotations

from django.test import AsyncClient


async def test_static_file_is_served(settings):
    settings.WHITENOISE_USE_FINDERS = True
    response = await AsyncClient().get("/static/chat/css/chat.css")
    assert response.status_code == 200
    content = response.streaming_content
    if hasattr(content, "__aiter__"):
        body = b"".join([part async for part in content])
    else:
        body = b"".join(content)
    assert b"prefers-color-scheme" in body


async def test_missing_static_file_is_a_404(settings):
    settings.WHITENOISE_USE_FINDERS = True
    response = await AsyncClient().get("/static/chat/css/no-such-file.css")
    assert response.status_code == 404


async def test_other_requests_pass_through(settings):
    settings.WHITENOISE_USE_FINDERS = True
    response = await AsyncClient().get("/healthz")
    assert response.status_code in (200, 503)
