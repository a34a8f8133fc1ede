"""Server-rendered pages: the chat page (empty, or with one conversation open).

The page renders the sidebar and the latest messages of the open conversation; the
browser code (static/chat/js/) streams replies and pages older messages in through the
API. Everything the scripts need arrives in one ``json_script`` block.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from chat.conf import chat_settings
from chat.models import Conversation, Message

# How many messages the page renders; older ones are paged in on scroll.
PAGE_SIZE = 50
# How many conversations the sidebar lists.
SIDEBAR_SIZE = 100
# Placeholders the scripts fill in (the paths are the wire contract of the API).
ID = "{id}"
API_URLS = {
    "conversations": "/api/conversations/",
    "conversation": f"/api/conversations/{ID}/",
    "messages": f"/api/conversations/{ID}/messages/",
    "stream": f"/api/messages/{ID}/stream/",
    "cancel": f"/api/messages/{ID}/cancel/",
    "websocket": f"/ws/conversations/{ID}/",
}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The chat page with no conversation open: the first message starts one."""
    return render(request, "chat/home.html", page_context(request, None))


@login_required
def conversation(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """The chat page with one of the user's conversations open (another user's is a 404)."""
    conv = get_object_or_404(Conversation, pk=conversation_id, owner_id=request.user.pk)
    return render(request, "chat/home.html", page_context(request, conv))


def latest_messages(conv: Conversation) -> tuple[list[Message], bool]:
    """The conversation's latest ``PAGE_SIZE`` messages, oldest first, and whether more exist."""
    newest_first = list(conv.messages.order_by("-created_at", "-id")[: PAGE_SIZE + 1])
    has_older = len(newest_first) > PAGE_SIZE
    return list(reversed(newest_first[:PAGE_SIZE])), has_older


def streaming_reply(messages: list[Message]) -> Message | None:
    """The reply still streaming at the end of the thread, which the page re-attaches to."""
    for message in reversed(messages):
        if message.role == Message.Role.ASSISTANT:
            return message if message.status == Message.Status.STREAMING else None
    return None


def page_context(request: HttpRequest, conv: Conversation | None) -> dict[str, Any]:
    """Template context of the chat page, including the scripts' configuration."""
    messages, has_older = latest_messages(conv) if conv is not None else ([], False)
    streaming = streaming_reply(messages)
    page_url = reverse("chat:conversation", args=[uuid.UUID(int=0)])
    config = {
        "conversationId": str(conv.pk) if conv is not None else None,
        "title": conv.title if conv is not None else "",
        "transport": chat_settings.TRANSPORT,
        "maxLength": chat_settings.MAX_MESSAGE_LENGTH,
        "pageSize": PAGE_SIZE,
        "hasOlder": has_older,
        "oldestId": messages[0].pk if messages else None,
        # The offset counts code points, as the engine does (Python's len()).
        "streaming": (
            {
                "messageId": streaming.pk,
                "content": streaming.content,
                "offset": len(streaming.content),
            }
            if streaming
            else None
        ),
        "urls": {
            **API_URLS,
            "home": reverse("chat:home"),
            "page": page_url.replace(str(uuid.UUID(int=0)), ID),
        },
    }
    return {
        "conversations": Conversation.objects.filter(owner_id=request.user.pk)[:SIDEBAR_SIZE],
        "conversation": conv,
        "messages": messages,
        "has_older": has_older,
        "chat_config": config,
        # Empty shapes for the <template> elements the scripts clone.
        "blank_user": {"pk": None, "role": "user", "status": "complete", "content": ""},
        "blank_assistant": {"pk": None, "role": "assistant", "status": "streaming", "content": ""},
        "blank_conversation": {"pk": None, "title": ""},
    }
