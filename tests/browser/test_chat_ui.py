"""The chat page in a real browser: streaming, stop, re-attach, WebSocket, safety, errors.

Playwright's sync API cannot run inside an event loop, so these are plain tests; the server
is a Daphne subprocess on the (committed) test database, hence ``transaction=True``.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect
from ui_support import (
    TIMEOUT_MS,
    DroppingProxy,
    last_assistant,
    login,
    normalized,
    open_page,
    send,
    wait_ready,
)

from chat.models import Conversation, Message
from chat.testing.fake_anthropic import FakeAnthropicServer

pytestmark = pytest.mark.django_db(transaction=True)
expect.set_options(timeout=TIMEOUT_MS)

REPLY = ".msg--assistant"


def reply_text(page: Any) -> str:
    return normalized(page.locator(f"{REPLY} .msg__body").last.inner_text())


def wait_for_status(page: Any, status: str) -> None:
    expect(page.locator(REPLY).last).to_have_attribute("data-status", status)


def wait_for_text(page: Any, minimum: int = 1) -> None:
    page.wait_for_function(
        "n => { const b = [...document.querySelectorAll('.msg--assistant .msg__body')].pop();"
        " return b && b.innerText.length >= n; }",
        arg=minimum,
    )


def use_websocket(page: Any) -> None:
    switch = page.get_by_role("switch", name="WebSocket")
    switch.check()
    expect(switch).to_be_checked()


def test_reply_streams_grows_finishes_and_is_stored(
    page: Any, server: str, user: Any, fake: FakeAnthropicServer
) -> None:
    fake.default_script = {"tokens": 40, "tps": 16, "ttft": 0.6}
    login(page, server)
    send(page, "Hello streaming world")
    expect(page.locator(".msg--user").last).to_contain_text("Hello streaming world")
    expect(page.locator(".msg__typing").last).to_be_visible()
    expect(page.locator(".msg__typing").last).to_have_text("Claude is typing…")
    samples: list[int] = []
    while page.locator(REPLY).last.get_attribute("data-status") == "streaming":
        samples.append(len(reply_text(page)))
        page.wait_for_timeout(120)
    growing = [n for n in samples if n > 0]
    assert len(set(growing)) >= 3, f"the text did not grow over time: {samples}"
    assert growing == sorted(growing)
    wait_for_status(page, "complete")
    expect(page.locator(".msg__typing").last).to_be_hidden()
    stored = last_assistant(status="complete")
    assert reply_text(page) == normalized(stored.content)
    assert page.url.endswith(f"/c/{stored.conversation_id}/")
    # The new conversation got its title from the first message.
    expect(page.locator(".conv__link").first).to_have_text("Hello streaming world")
    page.reload()
    wait_for_status(page, "complete")
    assert reply_text(page) == normalized(stored.content)
    expect(page.locator(".msg--user .msg__body")).to_have_text(["Hello streaming world"])


def test_stop_keeps_partial_text_marked_stopped(
    page: Any, server: str, user: Any, fake: FakeAnthropicServer
) -> None:
    fake.default_script = {"tokens": 400, "tps": 20}
    login(page, server)
    send(page, "Tell me a long story")
    wait_for_text(page, 20)
    page.get_by_role("button", name="Stop").click()
    wait_for_status(page, "cancelled")
    expect(page.locator(f"{REPLY} .msg__badge").last).to_have_text("Stopped")
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    stored = last_assistant(status="cancelled")
    assert 20 <= len(stored.content) < len(" ".join(["lorem"] * 400))
    assert reply_text(page) == normalized(stored.content)
    page.reload()
    expect(page.locator(f"{REPLY} .msg__badge").last).to_be_visible()


@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_reload_mid_reply_reattaches_without_gaps_or_repeats(
    page: Any, server: str, user: Any, fake: FakeAnthropicServer, transport: str
) -> None:
    fake.default_script = {"tokens": 120, "tps": 15}
    login(page, server)
    if transport == "websocket":
        use_websocket(page)
    send(page, "Count slowly")
    wait_for_text(page, 40)
    page.reload()
    if transport == "websocket":
        expect(page.get_by_role("switch", name="WebSocket")).to_be_checked()
    # Still streaming after the reload: the page re-attached to the running reply.
    wait_for_status(page, "streaming")
    wait_for_status(page, "complete")
    stored = last_assistant(status="complete")
    assert reply_text(page) == normalized(stored.content)
    assert len(stored.content.split()) == 120


def test_websocket_reply_streams_in_two_tabs(browser: Any, server: str, user: Any) -> None:
    context, first = open_page(browser)
    try:
        login(first, server)
        use_websocket(first)
        send(first, "Hello from the first tab")
        wait_for_status(first, "complete")
        second = context.new_page()  # same session and stored transport choice
        second.goto(first.url)
        wait_ready(second)
        expect(second.get_by_role("switch", name="WebSocket")).to_be_checked()
        second.wait_for_timeout(500)  # let its socket connect
        send(first, "[fake tokens=100 tps=20] And again")
        for tab in (first, second):
            expect(tab.locator(".msg--user")).to_have_count(2)
            expect(tab.locator(REPLY)).to_have_count(2)
            wait_for_status(tab, "streaming")
        for tab in (first, second):
            wait_for_status(tab, "complete")
        stored = last_assistant(status="complete")
        assert reply_text(first) == reply_text(second) == normalized(stored.content)
        assert list(first.errors) == [], first.errors
    finally:
        context.close()


def test_html_in_messages_and_replies_renders_as_text(
    page: Any, server: str, user: Any, fake: FakeAnthropicServer
) -> None:
    payload = "<img src=x onerror=alert(1)> and <script>alert(2)</script> done"
    login(page, server)
    send(page, payload)  # the fake echoes the prompt back: "Echo: <payload>"
    wait_for_status(page, "complete")
    for _ in range(2):  # streamed (marked + DOMPurify), then server-rendered after a reload
        assert payload in reply_text(page)
        assert payload in page.locator(".msg--user .msg__body").last.inner_text()
        assert page.locator(".messages img, .messages script").count() == 0
        page.reload()
        wait_for_status(page, "complete")
    # The page fixture fails the test if any dialog (alert) opened.


def test_upstream_error_shows_inline_and_retry_works(
    page: Any, server: str, user: Any, fake: FakeAnthropicServer
) -> None:
    fake.default_script = {"tps": 200, "tokens": 30, "fail": "overloaded_midstream", "after": 5}
    login(page, server)
    send(page, "Please answer")
    wait_for_status(page, "error")
    error = page.locator(f"{REPLY} .msg__error").last
    expect(error).to_be_visible()
    expect(error).not_to_be_empty()
    assert last_assistant(status="error").error_type
    fake.default_script = {"tps": 200, "tokens": 12}
    error.get_by_role("button", name="Retry").click()
    expect(page.locator(REPLY)).to_have_count(2)
    wait_for_status(page, "complete")
    stored = last_assistant(status="complete")
    assert reply_text(page) == normalized(stored.content)
    assert stored.content.startswith("Echo: Please answer")


def test_failed_send_keeps_the_text_with_retry(
    page: Any, server: str, user: Any, fake: FakeAnthropicServer
) -> None:
    login(page, server)
    page.route(
        "**/messages/",
        lambda route: route.abort() if route.request.method == "POST" else route.continue_(),
    )
    send(page, "Do not lose me")
    failed = page.locator('.msg--user[data-status="failed"]')
    expect(failed).to_contain_text("Do not lose me")
    expect(failed.locator(".msg__error")).to_be_visible()
    page.errors.clear()  # the browser logs the aborted request: expected here
    page.unroute("**/messages/")
    failed.get_by_role("button", name="Retry").click()
    wait_for_status(page, "complete")
    expect(page.locator(".msg--user .msg__body")).to_have_text(["Do not lose me"])


def test_keyboard_only_send_and_stop(
    page: Any, server: str, user: Any, fake: FakeAnthropicServer
) -> None:
    fake.default_script = {"tokens": 400, "tps": 20}
    login(page, server)
    # The message box has focus on load; Shift+Enter is a newline, Enter sends.
    page.keyboard.type("First line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    assert page.locator("#composer-input").input_value() == "First line\nsecond line"
    page.keyboard.press("Enter")
    wait_for_text(page, 10)
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent.trim()")
    assert focused == "Stop"
    page.keyboard.press("Enter")
    wait_for_status(page, "cancelled")
    assert last_assistant(status="cancelled")
    expect(page.locator(".msg--user .msg__body").last).to_have_text("First line\nsecond line")


def test_scrolled_up_reader_is_not_yanked_down(
    page: Any, server: str, user: Any, fake: FakeAnthropicServer
) -> None:
    fake.default_script = {"tokens": 600, "tps": 60}
    page.set_viewport_size({"width": 900, "height": 500})
    login(page, server)
    send(page, "A long answer please")
    page.wait_for_function(
        "() => { const t = document.getElementById('thread');"
        " return t.scrollHeight > t.clientHeight + 200; }"
    )
    thread = page.locator("#thread")
    box = thread.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -200)
    jump = page.get_by_role("button", name="Jump to latest")
    expect(jump).to_be_visible()
    before = thread.evaluate("t => t.scrollTop")
    page.wait_for_timeout(600)
    assert thread.evaluate("t => t.scrollTop") == before
    jump.click()
    expect(jump).to_be_hidden()
    at_bottom = "t => t.scrollHeight - t.scrollTop - t.clientHeight < 50"
    assert thread.evaluate(at_bottom)
    page.get_by_role("button", name="Stop").click()
    wait_for_status(page, "cancelled")


def test_older_messages_page_in_on_scroll(page: Any, server: str, user: Any) -> None:
    conversation = Conversation.objects.create(owner=user, title="Long one", model="m")
    for i in range(70):
        Message.objects.create(conversation=conversation, role="user", content=f"note {i}")
    login(page, server)
    page.goto(f"{server}/c/{conversation.pk}/")
    wait_ready(page)
    messages = page.locator(".msg--user")
    expect(messages).to_have_count(50)
    page.locator("#thread").evaluate("t => { t.scrollTop = 0; }")
    expect(messages).to_have_count(70)
    expect(messages.first.locator(".msg__body")).to_have_text("note 0")
    expect(page.locator("#older")).to_be_hidden()


def test_sidebar_rename_and_delete(page: Any, server: str, user: Any) -> None:
    keep = Conversation.objects.create(owner=user, title="Keep me", model="m")
    gone = Conversation.objects.create(owner=user, title="Delete me", model="m")
    login(page, server)
    page.goto(f"{server}/c/{keep.pk}/")
    wait_ready(page)
    page.get_by_role("button", name="Rename conversation: Keep me").click()
    page.get_by_label("Conversation title").fill("Renamed <b>safely</b>")
    page.keyboard.press("Enter")
    expect(page.locator("#chat-title")).to_have_text("Renamed <b>safely</b>")
    page.get_by_role("button", name="Delete conversation: Delete me").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.locator(".conv")).to_have_count(1)
    keep.refresh_from_db()
    assert keep.title == "Renamed <b>safely</b>"
    assert not Conversation.objects.filter(pk=gone.pk).exists()
    page.reload()
    expect(page.locator(".conv__link")).to_have_text(["Renamed <b>safely</b>"])


@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_network_drop_mid_reply_reconnects_and_resumes(
    page: Any, server: str, user: Any, fake: FakeAnthropicServer, transport: str
) -> None:
    fake.default_script = {"tokens": 90, "tps": 20}
    proxy = DroppingProxy(server)
    try:
        login(page, proxy.url)
        if transport == "websocket":
            use_websocket(page)
        send(page, "Keep going")
        wait_for_text(page, 40)
        before = proxy.connections
        proxy.drop()
        wait_for_status(page, "complete")
        assert proxy.connections > before, "the page did not reconnect"
        # The browser logs the cut connection itself: expected here.
        page.errors[:] = [e for e in page.errors if "net::ERR_" not in e and "WebSocket" not in e]
    finally:
        proxy.close()
    stored = last_assistant(status="complete")
    assert reply_text(page) == normalized(stored.content)
    assert len(stored.content.split()) == 90


@pytest.fixture
def short_limit(settings: Any, fake: FakeAnthropicServer) -> int:
    """A 50-character message limit (set before the server starts)."""
    settings.CHAT = {**settings.CHAT, "MAX_MESSAGE_LENGTH": 50}
    return 50


def test_composer_shows_the_limit_as_it_nears_and_refuses_beyond(
    page: Any, short_limit: int, server: str, user: Any
) -> None:
    login(page, server)
    box = page.locator("#composer-input")
    counter = page.locator("#composer-counter")
    box.fill("a" * 30)
    expect(counter).to_be_hidden()
    box.fill("a" * 45)
    expect(counter).to_have_text("45 / 50")
    box.fill("a" * 55)
    expect(counter).to_have_text("55 / 50")
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    box.press("Enter")
    expect(page.locator(".msg")).to_have_count(0)
    assert box.input_value() == "a" * 55  # nothing lost
