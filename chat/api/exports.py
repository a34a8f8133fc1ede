"""Conversation exports (JSON and Markdown), shared by the REST API and the admin actions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from chat.models import Conversation, Message
from chat.presenters import conversation_dict, message_dict

FORMATS = ("json", "markdown")
CONTENT_TYPES = {
    "json": "application/json; charset=utf-8",
    "markdown": "text/markdown; charset=utf-8",
}
EXTENSIONS = {"json": "json", "markdown": "md"}


def with_messages(qs: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """Prefetch each conversation's messages in order (two queries for any number)."""
    ordered = Message.objects.order_by("created_at", "id")
    return qs.prefetch_related(Prefetch("messages", queryset=ordered))


def export_dict(conversation: Conversation) -> dict[str, Any]:
    """One conversation with all its messages, in the API's JSON shapes."""
    return {
        "conversation": conversation_dict(conversation),
        "messages": [message_dict(m) for m in conversation.messages.all()],
        "exported_at": timezone.now().isoformat(),
    }


def export_markdown(conversation: Conversation) -> str:
    """One conversation as a readable Markdown transcript."""
    lines = [
        f"# {conversation.title or 'Untitled conversation'}",
        "",
        f"- Model: {conversation.model}",
        f"- Created: {conversation.created_at.isoformat()}",
    ]
    if conversation.system_prompt:
        lines.append(f"- System prompt: {' '.join(conversation.system_prompt.split())}")
    for message in conversation.messages.all():
        lines += ["", f"## {message.get_role_display()} · {message.created_at.isoformat()}", ""]
        lines.append(message.content or "_(no text)_")
        if message.status != Message.Status.COMPLETE:
            note = f"_[{message.status}"
            note += f": {message.error_message}]_" if message.error_message else "]_"
            lines += ["", note]
    return "\n".join(lines) + "\n"


def render(conversations: Iterable[Conversation], fmt: str, *, many: bool = True) -> str:
    """Conversations as one ``json`` or ``markdown`` document (JSON: a list if ``many``)."""
    items = list(conversations)
    if fmt == "markdown":
        return "\n---\n\n".join(export_markdown(c) for c in items)
    body: Any = [export_dict(c) for c in items] if many else export_dict(items[0])
    return json.dumps(body, ensure_ascii=False, indent=2) + "\n"


def filename(conversation: Conversation | None, fmt: str) -> str:
    """A safe download file name: the title's words, or a generic name for several."""
    stem = "conversations"
    if conversation is not None:
        words = re.sub(r"[^A-Za-z0-9]+", "-", conversation.title).strip("-").lower()[:60]
        stem = words or f"conversation-{conversation.pk}"
    return f"{stem}.{EXTENSIONS[fmt]}"
