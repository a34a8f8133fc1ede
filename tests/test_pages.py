"""The server-rendered pages: login, the chat page, isolation, escaping and markdown."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from django.test import Client
from django.test.utils import override_settings

from chat.markdown import render_markdown
from chat.models import Conversation, Message
from chat.pages import PAGE_SIZE

pytestmark = pytest.mark.django_db
XSS = '<img src=x onerror=alert(1)><script>alert("x")</script>'


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def bob(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("bob", password="pw-bob-123")


@pytest.fixture
def alice_client(client: Client, alice: Any) -> Client:
    client.force_login(alice)
    return client


def make_conversation(owner: Any, title: str = "Trip plans") -> Conversation:
    return Conversation.objects.create(owner=owner, title=title, model="claude-sonnet-4-5")


def add(conv: Conversation, role: str, content: str, **fields: Any) -> Message:
    return Message.objects.create(conversation=conv, role=role, content=content, **fields)


def page_config(html: str) -> dict[str, Any]:
    match = re.search(
        r'<script id="chat-config" type="application/json">(.*?)</script>', html, re.S
    )
    assert match, "the page has no chat-config json_script block"
    return json.loads(match.group(1))


def thread_html(html: str) -> str:
    """The rendered thread only (not the <template> elements the scripts clone)."""
    start = html.index('id="messages"')
    return html[start : html.index('id="empty-state"')]


# -- access -------------------------------------------------------------------------


def test_pages_require_login(client: Client, alice: Any) -> None:
    conv = make_conversation(alice)
    for url in ("/", f"/c/{conv.pk}/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_login_page_renders_a_labelled_form_with_csrf(client: Client) -> None:
    response = client.get("/accounts/login/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in html
    assert '<label for="id_username">Username</label>' in html
    assert '<label for="id_password">Password</label>' in html
    assert "chat/css/chat.css" in html


def test_logging_in_lands_on_the_chat_page(client: Client, alice: Any) -> None:
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "pw-alice-123"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/"
    assert 'id="composer-input"' in response.content.decode()


def test_wrong_password_shows_an_error(client: Client, alice: Any) -> None:
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert "didn't match" in response.content.decode()


def test_another_users_conversation_is_404(alice_client: Client, bob: Any) -> None:
    conv = make_conversation(bob, title="Bob's secret")
    add(conv, "user", "bob's private words")
    response = alice_client.get(f"/c/{conv.pk}/")
    assert response.status_code == 404
    assert b"private words" not in response.content


def test_unknown_conversation_is_404(alice_client: Client) -> None:
    assert alice_client.get(f"/c/{uuid.uuid4()}/").status_code == 404


def test_sidebar_lists_only_my_conversations_newest_first(
    alice_client: Client, alice: Any, bob: Any
) -> None:
    make_conversation(alice, title="Older one")
    make_conversation(alice, title="Newer one")
    make_conversation(bob, title="Bob's conversation")
    html = alice_client.get("/").content.decode()
    assert html.index("Newer one") < html.index("Older one")
    assert "Bob&#x27;s conversation" not in html
    assert "Bob's conversation" not in html


# -- the thread ---------------------------------------------------------------------


def test_conversation_page_renders_history_and_config(alice_client: Client, alice: Any) -> None:
    conv = make_conversation(alice)
    add(conv, "user", "Where should we go?")
    add(conv, "assistant", "Try **Lisbon**.")
    response = alice_client.get(f"/c/{conv.pk}/")
    html = response.content.decode()
    thread = thread_html(html)
    assert "Where should we go?" in thread
    assert "<strong>Lisbon</strong>" in thread
    assert 'aria-current="page"' in html
    config = page_config(html)
    assert config["conversationId"] == str(conv.pk)
    assert config["transport"] == "sse"
    assert config["maxLength"] == 32_000
    assert config["streaming"] is None
    assert config["hasOlder"] is False
    assert config["urls"]["stream"] == "/api/messages/{id}/stream/"
    assert config["urls"]["page"] == "/c/{id}/"


@override_settings(CHAT={"TRANSPORT": "websocket", "MAX_MESSAGE_LENGTH": 500})
def test_config_follows_the_chat_settings(alice_client: Client) -> None:
    config = page_config(alice_client.get("/").content.decode())
    assert config["transport"] == "websocket"
    assert config["maxLength"] == 500
    assert config["conversationId"] is None


def test_a_streaming_reply_is_passed_for_reattaching(alice_client: Client, alice: Any) -> None:
    conv = make_conversation(alice)
    add(conv, "user", "Tell me a story")
    reply = add(conv, "assistant", "Once upon a tîme 🐉", status=Message.Status.STREAMING)
    html = alice_client.get(f"/c/{conv.pk}/").content.decode()
    streaming = page_config(html)["streaming"]
    # Offsets count code points, as the server's stream ids do (the dragon is one, not the
    # two UTF-16 units a browser's String.length would count).
    assert streaming == {"messageId": reply.pk, "content": reply.content, "offset": 18}
    assert f'data-message-id="{reply.pk}" data-role="assistant" data-status="streaming"' in html


def test_long_threads_render_only_the_latest_page(alice_client: Client, alice: Any) -> None:
    conv = make_conversation(alice)
    messages = [add(conv, "user", f"message number {i}") for i in range(PAGE_SIZE + 5)]
    html = alice_client.get(f"/c/{conv.pk}/").content.decode()
    thread = thread_html(html)
    assert "message number 4<" not in thread
    assert "message number 5<" in thread
    assert f"message number {PAGE_SIZE + 4}<" in thread
    config = page_config(html)
    assert config["hasOlder"] is True
    assert config["oldestId"] == messages[5].pk


def test_stopped_and_failed_replies_are_marked(alice_client: Client, alice: Any) -> None:
    conv = make_conversation(alice)
    add(conv, "user", "one")
    add(conv, "assistant", "partial", status=Message.Status.CANCELLED)
    add(conv, "user", "two")
    add(
        conv,
        "assistant",
        "",
        status=Message.Status.ERROR,
        error_type="overloaded_error",
        error_message="Anthropic is overloaded; try again in a moment.",
    )
    thread = thread_html(alice_client.get(f"/c/{conv.pk}/").content.decode())
    assert '<p class="msg__badge">Stopped</p>' in thread
    assert "Anthropic is overloaded; try again in a moment." in thread
    assert 'data-action="retry"' in thread


# -- safety -------------------------------------------------------------------------


def test_user_text_and_titles_are_escaped(alice_client: Client, alice: Any) -> None:
    conv = make_conversation(alice, title=f"</script>{XSS}")
    add(conv, "user", XSS)
    add(conv, "assistant", XSS)
    html = alice_client.get(f"/c/{conv.pk}/").content.decode()
    assert "<img src=x" not in html
    assert "<script>alert" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in thread_html(html)
    # json_script escapes "<" so the title cannot close the config block.
    assert page_config(html)["title"].startswith("</script>")


def test_the_page_has_no_inline_script_or_handler(alice_client: Client, alice: Any) -> None:
    conv = make_conversation(alice)
    add(conv, "user", "hi")
    add(conv, "assistant", "hello [link](https://example.com)")
    html = alice_client.get(f"/c/{conv.pk}/").content.decode()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert 'type="module" src=' in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"\son[a-z]+=", html)
    assert not re.search(r"\sstyle=", html)


def test_pages_send_a_content_security_policy(alice_client: Client) -> None:
    policy = alice_client.get("/").headers.get("Content-Security-Policy", "")
    assert "script-src 'self'" in policy


# -- markdown -----------------------------------------------------------------------


def test_markdown_renders_the_usual_blocks() -> None:
    html = render_markdown(
        "# Title\n\n- one\n- two\n\n1. first\n\n`code` and **bold**\n\n"
        "```python\nprint('hi')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    )
    for fragment in (
        "<h1>Title</h1>",
        "<li>one</li>",
        "<ol>",
        "<code>code</code>",
        "<strong>bold</strong>",
        "<pre><code>print('hi')",
        "<table>",
        "<td>1</td>",
    ):
        assert fragment in html, fragment


def test_markdown_escapes_raw_html() -> None:
    html = render_markdown(f"Look: {XSS}\n\n<div onclick=x>block</div>")
    assert "<img" not in html
    assert "<script" not in html
    assert "<div" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_markdown_links_open_safely_and_drop_dangerous_schemes() -> None:
    html = render_markdown(
        "[ok](https://example.com) [bad](javascript:alert(1)) ![i](https://x/y.png)"
    )
    assert '<a href="https://example.com" target="_blank" rel="noopener noreferrer">ok</a>' in html
    assert 'href="javascript' not in html
    assert "[bad](javascript:alert(1))" in html  # left as text
    assert "<img" not in html


def test_markdown_template_filter_output_is_sanitised(alice_client: Client, alice: Any) -> None:
    conv = make_conversation(alice)
    add(conv, "assistant", "[x](javascript:alert(1)) <a href='https://evil' onclick='x'>a</a>")
    thread = thread_html(alice_client.get(f"/c/{conv.pk}/").content.decode())
    assert 'href="javascript' not in thread
    assert "<a href='https://evil'" not in thread
    assert "&lt;a href=" in thread
