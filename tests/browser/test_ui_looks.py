"""How the chat page looks and reads: accessibility (axe), phone width, screenshots.

The replies come from the demo provider, whose markdown shows every kind of block. Set
``SAVE_SCREENSHOTS=1`` to write the screenshots into docs/ (the README shows them);
otherwise they go to a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect
from ui_support import TIMEOUT_MS, login, open_page, send, wait_ready

from chat.models import Conversation

pytestmark = pytest.mark.django_db(transaction=True)
expect.set_options(timeout=TIMEOUT_MS)

DOCS = Path(__file__).resolve().parents[2] / "docs"
PROMPT = "How do I reverse a list in Python?"
OTHER_TITLES = ["Trip ideas for Lisbon", "Regex for email validation", "Explain decorators"]


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page, one line each."""
    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in {"serious", "critical"}
    ]


def reply(page: Any) -> Any:
    return page.locator(".msg--assistant").last


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return DOCS if os.environ.get("SAVE_SCREENSHOTS") else tmp_path


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_chat_page_mid_stream_and_finished(
    browser: Any, demo_server: str, user: Any, shots: Path, scheme: str
) -> None:
    for title in OTHER_TITLES:
        Conversation.objects.create(owner=user, title=title, model="claude-sonnet-4-5")
    context, page = open_page(browser, color_scheme=scheme)
    try:
        login(page, demo_server)
        assert serious_violations(page) == []
        send(page, PROMPT)
        page.wait_for_function(
            "() => { const r = [...document.querySelectorAll('.msg--assistant')].pop();"
            " return r && r.dataset.status === 'streaming'"
            " && r.querySelector('.msg__body').innerText.includes('inline code and'); }"
        )
        page.screenshot(path=shots / f"screenshot-{scheme}-streaming.png")
        expect(reply(page)).to_have_attribute("data-status", "complete")
        expect(reply(page).locator("pre .copy-button")).to_have_count(1)
        expect(reply(page).locator("a[href^='https://']")).to_have_attribute(
            "rel", "noopener noreferrer"
        )
        page.wait_for_timeout(300)  # let the last frame paint
        page.screenshot(path=shots / f"screenshot-{scheme}-finished.png")
        assert serious_violations(page) == []
        page.reload()
        wait_ready(page)
        assert serious_violations(page) == []
        assert list(page.errors) == [], page.errors
    finally:
        context.close()


def test_login_page_is_accessible(browser: Any, demo_server: str) -> None:
    context, page = open_page(browser)
    try:
        page.goto(f"{demo_server}/accounts/login/")
        assert serious_violations(page) == []
    finally:
        context.close()


def test_phone_width(browser: Any, demo_server: str, user: Any, shots: Path) -> None:
    Conversation.objects.create(owner=user, title=OTHER_TITLES[0], model="claude-sonnet-4-5")
    context, page = open_page(
        browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    try:
        login(page, demo_server)
        # The sidebar is a drawer behind a button.
        expect(page.get_by_role("link", name=OTHER_TITLES[0])).to_be_hidden()
        toggle = page.get_by_role("button", name="Show conversations")
        toggle.click()
        expect(page.get_by_role("link", name=OTHER_TITLES[0])).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.get_by_role("link", name=OTHER_TITLES[0])).to_be_hidden()
        send(page, PROMPT)
        expect(reply(page)).to_have_attribute("data-status", "complete")
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        expect(page.get_by_role("button", name="Send")).to_be_in_viewport()
        page.screenshot(path=shots / "screenshot-phone.png")
        assert serious_violations(page) == []
    finally:
        context.close()
