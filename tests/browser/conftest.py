"""Browser-test fixtures: Debian's Chromium driven by Playwright, against a real Daphne server.

One browser per test module; one server (and test database) per test. Replies come from
the fake Anthropic server (``fake``) or the demo provider (``demo_server``). Without
Chromium the tests skip, except under CI, where they must run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ui_support import CHROMIUM, CHROMIUM_ARGS, PASSWORD, open_page

from chat.testing.fake_anthropic import FakeAnthropicServer

ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for the whole module."""
    if not os.path.exists(CHROMIUM):
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: the browser tests must run in CI")
        pytest.skip(f"{message}: browser tests skipped")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread, which makes Django
    # refuse the (synchronous) ORM calls of the tests and fixtures unless told otherwise.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv(ASYNC_UNSAFE, "true")
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def server_environment(
    transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], None]:
    """Prepare the server subprocess's environment; call the result once it has started.

    Static files are served without collectstatic. The server must not inherit the test
    process's ``DJANGO_ALLOW_ASYNC_UNSAFE`` (it would hide async-safety bugs), so that is
    removed while it starts and put back for the test after.
    """
    monkeypatch.setenv("DJANGO_STATIC_FINDERS", "1")
    unsafe = os.environ.get(ASYNC_UNSAFE)
    monkeypatch.delenv(ASYNC_UNSAFE, raising=False)

    def started() -> None:
        if unsafe is not None:
            monkeypatch.setenv(ASYNC_UNSAFE, unsafe)

    return started


@pytest.fixture
def fake(anthropic_settings: FakeAnthropicServer) -> FakeAnthropicServer:
    """The fake Anthropic API (fast by default; tests set ``default_script`` to pace it)."""
    anthropic_settings.default_script = {"tps": 400}
    return anthropic_settings


@pytest.fixture
def server(
    fake: FakeAnthropicServer, server_environment: Callable[[], None], daphne_server: str
) -> str:
    """A Daphne server whose replies come from ``fake``."""
    server_environment()
    return daphne_server


@pytest.fixture
def demo_settings(settings: Any) -> None:
    """The demo provider at a pace a screenshot can catch mid-reply."""
    settings.CHAT = {"PROVIDER": "demo", "DEMO_WORDS_PER_SECOND": 30.0}


@pytest.fixture
def demo_server(
    demo_settings: None, server_environment: Callable[[], None], daphne_server: str
) -> str:
    """A Daphne server whose replies come from the demo provider."""
    server_environment()
    return daphne_server


@pytest.fixture
def user(transactional_db: None, django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in its own context; fails the test on any script error or dialog."""
    context, page = open_page(browser)
    try:
        yield page
        assert list(page.errors) == [], page.errors
    finally:
        context.close()
